// An order's events drawn as a timeline: a business-time vs recording-time chart on top, then
// one card per event with its typed data, its two timestamps, and its correlation/causation links.
import { h, svg } from "./dom";
import { dateTime, duration, money, shortId, splitPascal } from "./format";
import { COMMON_EVENT_FIELDS, type OrderEvent } from "./queries";

/** Recorded more than this after it occurred: the producer sent it late. */
const LATE_RECORDING_MS = 60_000;

export interface Lateness {
  /** occurredAt earlier than the occurredAt of an event before it in the stream */
  outOfOrder: boolean;
  /** recordedAt - occurredAt */
  lagMs: number;
}

export function lateness(events: OrderEvent[]): Map<string, Lateness> {
  const result = new Map<string, Lateness>();
  let latestOccurred = Number.NEGATIVE_INFINITY;
  for (const event of events) {
    const occurred = Date.parse(event.occurredAt);
    result.set(event.id, { outOfOrder: occurred < latestOccurred, lagMs: Date.parse(event.recordedAt) - occurred });
    latestOccurred = Math.max(latestOccurred, occurred);
  }
  return result;
}

function isLate(late: Lateness): boolean {
  return late.outOfOrder || late.lagMs > LATE_RECORDING_MS;
}

/** Two time axes, occurred above and recorded below; a slanted line is an event recorded late. */
export function timeAxes(events: OrderEvent[], late: Map<string, Lateness>): SVGElement {
  const times = events.flatMap((event) => [Date.parse(event.occurredAt), Date.parse(event.recordedAt)]);
  const [first, last] = [Math.min(...times), Math.max(...times)];
  const [left, right, top, bottom] = [90, 980, 26, 84];
  const x = (iso: string): number => left + ((Date.parse(iso) - first) / Math.max(last - first, 1)) * (right - left);
  const chart = svg("svg", { class: "axes", viewBox: "0 0 1000 110", role: "img", "aria-label": "Occurred and recorded times" });
  for (const [y, label] of [[top, "Occurred"], [bottom, "Recorded"]] as const) {
    chart.append(
      svg("text", { x: 0, y: y + 4, class: "axis-label" }, document.createTextNode(label)),
      svg("line", { x1: left, x2: right, y1: y, y2: y, class: "axis" }),
    );
  }
  for (const event of events) {
    const flagged = isLate(late.get(event.id)!) ? " late" : "";
    const tip = svg("title", {}, document.createTextNode(`v${event.streamVersion} ${splitPascal(event.__typename)}`));
    chart.append(
      svg(
        "g",
        { class: `axis-event${flagged}`, "data-version": event.streamVersion },
        tip,
        svg("line", { x1: x(event.occurredAt), x2: x(event.recordedAt), y1: top, y2: bottom }),
        svg("circle", { cx: x(event.occurredAt), cy: top, r: 5 }),
        svg("circle", { cx: x(event.recordedAt), cy: bottom, r: 5 }),
      ),
    );
  }
  chart.append(
    svg("text", { x: left, y: 106, class: "axis-tick" }, document.createTextNode(dateTime(new Date(first).toISOString()))),
    svg("text", { x: right, y: 106, class: "axis-tick end" }, document.createTextNode(dateTime(new Date(last).toISOString()))),
  );
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

export interface TimelineHandlers {
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
        cause ? `v${cause.streamVersion} ${splitPascal(cause.__typename)}` : h("span", { class: "mono" }, shortId(causationId)),
      ),
    );
  }
  if (event.actor) parts.push(h("span", { class: "actor" }, `by ${event.actor.type} `, h("span", { class: "mono" }, event.actor.id)));
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
  const lag = late.lagMs > LATE_RECORDING_MS ? h("span", { class: "flag" }, `recorded ${duration(late.lagMs)} later`) : null;
  return h(
    "dl",
    { class: "event-times" },
    h("div", {}, h("dt", {}, "Occurred"), h("dd", {}, h("time", { datetime: event.occurredAt }, dateTime(event.occurredAt)))),
    h("div", {}, h("dt", {}, "Recorded"), h("dd", {}, h("time", { datetime: event.recordedAt }, dateTime(event.recordedAt)), lag)),
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
          class: isLate(flags) ? "event is-late" : "event",
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
            flags.outOfOrder ? h("span", { class: "badge badge-late", title: "Occurred before an earlier event in the stream" }, "Out of order") : null,
            flags.lagMs > LATE_RECORDING_MS ? h("span", { class: "badge badge-late" }, "Late") : null,
            h("button", { class: "button button-quiet show-state", type: "button", onclick: () => handlers.select(event.streamVersion) }, "Show state"),
          ),
          times(event, flags),
          eventData(event, currency),
          links(event, byId, handlers),
        ),
      );
    }),
  );
}
