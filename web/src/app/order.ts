// The order page: a summary, the event timeline, and a slider over stream versions that shows
// the order's state after any event (Order.stateAt). New events arrive live through orderEvents.
import { request, subscribe } from "./api";
import { statusBadge } from "./board";
import { h } from "./dom";
import { dateTime, money, relative } from "./format";
import {
  EVENT_ORDER,
  type EventOrderResult,
  LIVE_EVENTS,
  type LiveEvent,
  ORDER,
  ORDER_EVENTS,
  type OrderDetail,
  type OrderEvent,
  type OrderEventsResult,
  type OrderResult,
  type OrderState,
  STATE_AT,
  type StateAtResult,
} from "./queries";
import { boardHref, orderHref } from "./routes";
import { eventList, lateness, timeAxes } from "./timeline";

async function loadEvents(orderId: string): Promise<OrderEvent[]> {
  const events: OrderEvent[] = [];
  let after: string | null = null;
  for (;;) {
    const { order }: OrderEventsResult = await request<OrderEventsResult>(ORDER_EVENTS, { id: orderId, after });
    if (!order) return events;
    events.push(...order.events.nodes);
    if (!order.events.pageInfo.hasNextPage) return events;
    after = order.events.pageInfo.endCursor;
  }
}

function fact(term: string, ...detail: (Node | string)[]): HTMLElement {
  return h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, ...detail));
}

function summary(order: OrderDetail): HTMLElement {
  return h(
    "section",
    { class: "order-head" },
    h("a", { class: "back", href: boardHref({}) }, "← Board"),
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, "Order ", h("span", { class: "mono" }, order.id)),
      statusBadge(order.status),
    ),
    h(
      "dl",
      { class: "facts" },
      fact(
        "Customer",
        h(
          "a",
          { href: boardHref({ customerId: order.customer.id }), title: order.customer.email },
          order.customer.name,
        ),
      ),
      fact("Total", money(order.totalAmount, order.currency)),
      fact("Authorized", money(order.authorizedAmount, order.currency)),
      fact("Captured", money(order.capturedAmount, order.currency)),
      fact("Refunded", money(order.refundedAmount, order.currency)),
      fact("Placed", h("time", { datetime: order.placedAt }, dateTime(order.placedAt))),
      fact(
        "Last event",
        h("time", { datetime: order.lastEventAt, title: dateTime(order.lastEventAt) }, relative(order.lastEventAt)),
      ),
      fact("Version", String(order.version)),
    ),
  );
}

function stateView(state: OrderState, currency: string): HTMLElement {
  const amount = (value: string): string => money(value, currency);
  return h(
    "div",
    { class: "state", "data-version": state.version },
    h(
      "dl",
      { class: "state-facts" },
      fact("Status", statusBadge(state.status)),
      fact("Total", amount(state.totalAmount)),
      fact("Authorized", amount(state.authorizedAmount)),
      fact("Captured", amount(state.capturedAmount)),
      fact("Refunded", amount(state.refundedAmount)),
    ),
    state.items.length
      ? h(
          "table",
          { class: "items" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "SKU"),
              h("th", { class: "num" }, "Qty"),
              h("th", { class: "num" }, "Unit price"),
              h("th", { class: "num" }, "Line total"),
            ),
          ),
          h(
            "tbody",
            {},
            state.items.map((item) =>
              h(
                "tr",
                {},
                h("td", { class: "mono" }, item.sku),
                h("td", { class: "num" }, String(item.quantity)),
                h("td", { class: "num" }, amount(item.unitPrice)),
                h("td", { class: "num" }, amount(item.lineTotal)),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No items."),
  );
}

/** Renders the order page into `root`; returns the function that stops its live updates. */
export function renderOrder(root: HTMLElement, orderId: string, initialVersion?: number): () => void {
  let stopped = false;
  let unsubscribe = (): void => undefined;
  root.replaceChildren(h("p", { class: "loading" }, "Loading order…"));

  Promise.all([request<OrderResult>(ORDER, { id: orderId }), loadEvents(orderId)]).then(
    ([{ order }, events]) => {
      if (stopped) return;
      if (!order) {
        root.replaceChildren(
          h(
            "div",
            { class: "empty-state" },
            h("h1", {}, "Order not found"),
            h("a", { href: boardHref({}) }, "Back to the board"),
          ),
        );
        return;
      }
      const page = new OrderPage(root, order, events);
      page.show(initialVersion ?? order.version);
      // resumes after the last loaded event (events appended since the load are replayed), and
      // after a reconnect from the last one received
      const after = events.at(-1)?.globalPosition ?? null;
      unsubscribe = subscribe<LiveEvent>(
        LIVE_EVENTS,
        { orderId, after },
        ({ orderEvents }) => page.receive(orderEvents),
        ({ orderEvents }) => orderEvents.globalPosition,
      );
    },
    (error: Error) => {
      if (!stopped)
        root.replaceChildren(h("p", { class: "loading error" }, `Could not load the order: ${error.message}`));
    },
  );

  return () => {
    stopped = true;
    unsubscribe();
  };
}

class OrderPage {
  private readonly states = new Map<number, Promise<OrderState>>();
  private readonly slider = h("input", {
    type: "range",
    class: "slider",
    min: 1,
    step: 1,
    list: "versions",
    "aria-label": "Stream version",
  });
  private readonly ticks = h("datalist", { id: "versions" });
  private readonly caption = h("p", { class: "slider-caption" });
  private readonly stateSlot = h("div", { class: "state-slot" });
  private readonly head = h("div");
  private readonly timeline = h("section", { class: "timeline", "aria-label": "Event timeline" });
  private version = 1;

  constructor(
    root: HTMLElement,
    private order: OrderDetail,
    private events: OrderEvent[],
  ) {
    this.slider.addEventListener("input", () => this.show(Number(this.slider.value)));
    const panel = h(
      "aside",
      { class: "state-panel" },
      h("h2", {}, "State over time"),
      this.caption,
      this.slider,
      this.ticks,
      h("div", { class: "slider-ends" }, h("span", {}, "first event"), h("span", {}, "latest")),
      this.stateSlot,
    );
    root.replaceChildren(
      h("div", { class: "order-page" }, this.head, h("div", { class: "order-body" }, this.timeline, panel)),
    );
    this.draw();
  }

  private draw(): void {
    this.head.replaceChildren(summary(this.order));
    this.slider.max = String(this.events.length);
    this.ticks.replaceChildren(...this.events.map((event) => h("option", { value: event.streamVersion })));
    this.slider.disabled = this.events.length < 2;
    const handlers = { select: (version: number) => this.show(version), openEvent: (id: string) => void openEvent(id) };
    const late = [...lateness(this.events).values()];
    const outOfOrder = late.filter((flags) => flags.outOfOrder).length;
    const recordedLate = late.filter((flags) => flags.recordedLate).length;
    const counts = [`${this.events.length} events`];
    if (outOfOrder) counts.push(`${outOfOrder} out of order`);
    if (recordedLate) counts.push(`${recordedLate} recorded late`);
    this.timeline.replaceChildren(
      h(
        "header",
        { class: "timeline-head" },
        h("h2", {}, "Timeline"),
        h("span", { class: "muted" }, counts.join(" · ")),
      ),
      this.events.length ? timeAxes(this.events, lateness(this.events)) : "",
      eventList(this.events, this.order.currency, handlers),
    );
    this.mark();
  }

  /** Moves the slider to `version` and shows the state the stream had there. */
  show(version: number): void {
    this.version = Math.min(Math.max(version, 1), Math.max(this.events.length, 1));
    this.slider.value = String(this.version);
    const event = this.events[this.version - 1];
    this.caption.replaceChildren(
      h("strong", {}, `Version ${this.version}`),
      ` of ${this.events.length}`,
      event ? h("span", { class: "muted" }, ` · after ${event.type.toLowerCase().replaceAll("_", " ")}`) : "",
    );
    history.replaceState(null, "", orderHref(this.order.id, this.version));
    this.mark();
    const wanted = this.version;
    this.stateAt(wanted).then(
      (state) => {
        if (wanted === this.version) this.stateSlot.replaceChildren(stateView(state, this.order.currency));
      },
      (error: Error) => this.stateSlot.replaceChildren(h("p", { class: "error" }, error.message)),
    );
  }

  private stateAt(version: number): Promise<OrderState> {
    let state = this.states.get(version);
    if (!state) {
      state = request<StateAtResult>(STATE_AT, { id: this.order.id, version }).then(({ order }) => order!.stateAt);
      this.states.set(version, state);
    }
    return state;
  }

  /** Dims the events after the shown version, in the list and on the chart. */
  private mark(): void {
    for (const element of this.timeline.querySelectorAll<Element>("[data-version]")) {
      const version = Number(element.getAttribute("data-version"));
      element.classList.toggle("is-after", version > this.version);
      element.classList.toggle("is-current", version === this.version);
    }
  }

  receive(event: OrderEvent): void {
    if (this.events.some((known) => known.id === event.id)) return;
    const following = this.version === this.events.length;
    this.events = [...this.events, event].sort((a, b) => a.streamVersion - b.streamVersion);
    void request<OrderResult>(ORDER, { id: this.order.id }).then(({ order }) => {
      if (order) this.order = order;
      this.draw();
    });
    this.draw();
    if (following) this.show(this.events.length);
  }
}

async function openEvent(eventId: string): Promise<void> {
  const { event } = await request<EventOrderResult>(EVENT_ORDER, { id: eventId });
  if (event) window.location.hash = orderHref(event.orderId);
}
