// An order's events drawn as a timeline: a business-time vs recording-time chart on top, then
// one card per event with its typed data, its two timestamps, and its correlation/causation links.
import { h, svg } from "./dom";
import { dateTime, duration, money, shortId, splitPascal } from "./format";
import { COMMON_EVENT_FIELDS, type OrderEvent } from "./queries";

/** Recorded this much later than the stream's events before it were: the producer sent it late. */
export const LATE_RECORDING_MS = 5 * 60_000;

interface Lateness {
  /** occurredAt earlier than the occurredAt of an event before it in the stream */
  outOfOrder: boolean;
  /** recordedAt - occurredAt */
  lagMs: number;
  /** its lag grew by more than LATE_RECORDING_MS over the event before it: history recorded
   * in one go (an import, demo data) is not late, however long ago it occurred */
  recordedLate: boolean;
}

export function lateness(events: OrderEvent[]): Map<string, Lateness> {
  const result = new Map<string, Lateness>();
  let latestOccurred = Number.NEGATIVE_INFINITY;
  let previousLag: number | null = null;
  for (const event of events) {
    const occurred = Date.parse(event.occurredAt);
    const lagMs = Date.parse(event.recordedAt) - occurred;
    const outOfOrder = occurred < latestOccurred;
    const recordedLate = previousLag !== null && lagMs > previousLag + LATE_RECORDING_MS;
    result.set(event.id, { outOfOrder, lagMs, recordedLate });
    latestOccurred = Math.max(latestOccurred, occurred);
    previousLag = lagMs;
  }
  return result;
}

/**
 * Business time against recording order: each event is a dot on the occurred-at axis (to scale)
 * joined to its place in the stream (evenly spaced, as recorded). Crossing lines are events that
 * arrived out of order.
 */
export function timeAxes(events: OrderEvent[], late: Map<string, Lateness>): SVGElement {
  const occurred = events.map((event) => Date.parse(event.occurredAt));
  const [first, last] = [Math.min(...occurred), Math.max(...occurred)];
  const [left, right, top, bottom] = [120, 975, 22, 86];
  const span = (fraction: number): number => left + fraction * (right - left);
  const atTime = (time: number): number => span(last > first ? (time - first) / (last - first) : 0.5);
  const atVersion = (index: number): number => span(events.length > 1 ? index / (events.length - 1) : 0.5);
  const labelEvery = Math.ceil(events.length / 24);
  const text = (attrs: Record<string, string | number>, content: string): SVGElement =>
    svg("text", attrs, document.createTextNode(content));

  const chart = svg("svg", {
    class: "axes",
    viewBox: "0 0 1000 118",
    role: "img",
    "aria-label": "Occurred time against recording order",
  });
  chart.append(
    text({ x: 0, y: top + 4, class: "axis-label" }, "Occurred"),
    text({ x: 0, y: bottom + 4, class: "axis-label" }, "Recorded order"),
    svg("line", { x1: left, x2: right, y1: top, y2: top, class: "axis" }),
    svg("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }),
    text({ x: left, y: top - 9, class: "axis-tick" }, dateTime(new Date(first).toISOString())),
    text({ x: right, y: top - 9, class: "axis-tick end" }, dateTime(new Date(last).toISOString())),
  );
  events.forEach((event, index) => {
    const flags = late.get(event.id)!;
    const name = `v${event.streamVersion} ${splitPascal(event.__typename)}`;
    const group = svg(
      "g",
      { class: flags.outOfOrder ? "axis-event late" : "axis-event", "data-version": event.streamVersion },
      svg("title", {}, document.createTextNode(`${name}, occurred ${dateTime(event.occurredAt)}`)),
      svg("line", { x1: atTime(occurred[index]), x2: atVersion(index), y1: top, y2: bottom }),
      svg("circle", { cx: atTime(occurred[index]), cy: top, r: 5 }),
      svg("circle", { cx: atVersion(index), cy: bottom, r: 5 }),
    );
    if (index % labelEvery === 0) {
      group.append(text({ x: atVersion(index), y: bottom + 22, class: "axis-tick middle" }, `v${event.streamVersion}`));
    }
    chart.append(group);
  });
  return chart;
}

/** "unitPrice" → "Unit price". */
function label(field: string): string {
  return splitPascal(field.charAt(0).toUpperCase() + field.slice(1));
}

type Line = { sku: string; quantity: number; unitPrice?: string };

function value(field: string, data: unknown, currency: string): Node | string {
  if (data === null || data === undefined) return "—";
  if (Array.isArray(data)) {
    const lines = data as Line[];
    if (!lines.length) return "none";
    return h(
      "ul",
      { class: "lines" },
      lines.map((line) =>
        h(
          "li",
          {},
          `${line.quantity} × `,
          h("span", { class: "mono" }, line.sku),
          line.unitPrice === undefined ? "" : ` @ ${money(line.unitPrice, currency)}`,
        ),
      ),
    );
  }
  if (field === "amount" || field === "unitPrice") return money(String(data), currency);
  if (field.endsWith("Id")) return h("span", { class: "mono" }, String(data));
  return String(data);
}

function eventData(event: OrderEvent, currency: string): HTMLElement | null {
  const fields = Object.keys(event).filter((field) => !COMMON_EVENT_FIELDS.has(field));
  if (!fields.length) return null;
  return h(
    "dl",
    { class: "event-data" },
    fields.map((field) => h("div", {}, h("dt", {}, label(field)), h("dd", {}, value(field, event[field], currency)))),
  );
}

interface TimelineHandlers {
  /** an event's "show state" action */
  select(version: number): void;
  /** a causation id that is not in this stream */
  openEvent(eventId: string): void;
}

function links(event: OrderEvent, byId: Map<string, OrderEvent>, handlers: TimelineHandlers): HTMLElement {
  const parts: Node[] = [];
  if (event.correlationId) {
    const id = event.correlationId;
    parts.push(
      h(
        "button",
        {
          class: "chip",
          type: "button",
          title: `Correlation ${id}: highlight the events it groups`,
          "data-correlation": id,
          onclick: (click: Event) => highlightCorrelation(click.currentTarget as HTMLElement, id),
        },
        "correlation ",
        h("span", { class: "mono" }, shortId(id)),
      ),
    );
  }
  if (event.causationId) {
    const cause = byId.get(event.causationId);
    const causationId = event.causationId;
    parts.push(
      h(
        "button",
        {
          class: "chip",
          type: "button",
          title: `Caused by event ${causationId}`,
          onclick: () => (cause ? focusEvent(cause.id) : handlers.openEvent(causationId)),
        },
        "caused by ",
        cause
          ? `v${cause.streamVersion} ${splitPascal(cause.__typename)}`
          : h("span", { class: "mono" }, shortId(causationId)),
      ),
    );
  }
  if (event.actor)
    parts.push(h("span", { class: "actor" }, `by ${event.actor.type} `, h("span", { class: "mono" }, event.actor.id)));
  parts.push(h("span", { class: "event-id mono", title: "Event id" }, event.id));
  return h("footer", { class: "event-links" }, parts);
}

function highlightCorrelation(chip: HTMLElement, correlationId: string): void {
  const timeline = chip.closest(".timeline")!;
  const on = !chip.classList.contains("is-active");
  for (const other of timeline.querySelectorAll<HTMLElement>("[data-correlation]")) {
    other.classList.toggle("is-active", on && other.dataset.correlation === correlationId);
  }
  for (const item of timeline.querySelectorAll<HTMLElement>(".event")) {
    item.classList.toggle("is-correlated", on && item.dataset.correlation === correlationId);
  }
}

function focusEvent(eventId: string): void {
  const item = document.getElementById(`event-${eventId}`);
  if (!item) return;
  item.scrollIntoView({ behavior: "smooth", block: "center" });
  item.classList.remove("is-flashing");
  void item.offsetWidth; // restart the animation
  item.classList.add("is-flashing");
}

function times(event: OrderEvent, late: Lateness): HTMLElement {
  const lag = late.recordedLate ? h("span", { class: "flag" }, `${duration(late.lagMs)} after it occurred`) : null;
  return h(
    "dl",
    { class: "event-times" },
    h(
      "div",
      {},
      h("dt", {}, "Occurred"),
      h("dd", {}, h("time", { datetime: event.occurredAt }, dateTime(event.occurredAt))),
    ),
    h(
      "div",
      {},
      h("dt", {}, "Recorded"),
      h("dd", {}, h("time", { datetime: event.recordedAt }, dateTime(event.recordedAt)), lag),
    ),
  );
}

export function eventList(events: OrderEvent[], currency: string, handlers: TimelineHandlers): HTMLElement {
  const late = lateness(events);
  const byId = new Map(events.map((event) => [event.id, event]));
  return h(
    "ol",
    { class: "events" },
    events.map((event) => {
      const flags = late.get(event.id)!;
      return h(
        "li",
        {
          class: flags.outOfOrder ? "event is-late" : "event",
          id: `event-${event.id}`,
          "data-version": event.streamVersion,
          "data-type": event.type,
          "data-correlation": event.correlationId ?? undefined,
        },
        h("span", { class: "event-dot", "aria-hidden": "true" }),
        h(
          "article",
          { class: "event-card" },
          h(
            "header",
            { class: "event-head" },
            h("span", { class: "version" }, `v${event.streamVersion}`),
            h("h3", {}, splitPascal(event.__typename)),
            flags.outOfOrder
              ? h(
                  "span",
                  { class: "badge badge-late", title: "Occurred before an event that the stream recorded earlier" },
                  "Late · out of order",
                )
              : null,
            flags.recordedLate
              ? h(
                  "span",
                  { class: "badge badge-lag", title: `Recorded ${duration(flags.lagMs)} after it occurred` },
                  "Recorded late",
                )
              : null,
            h(
              "button",
              {
                class: "button button-quiet show-state",
                type: "button",
                onclick: () => handlers.select(event.streamVersion),
              },
              "Show state",
            ),
          ),
          times(event, flags),
          eventData(event, currency),
          links(event, byId, handlers),
        ),
      );
    }),
  );
}
