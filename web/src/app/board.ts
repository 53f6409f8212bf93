// The live order board: one column per status, keyset-paginated, each with the count of its
// orders, kept current by the orderStatusChanged subscription (an order moves columns, a new
// order appears in PLACED) and by item events and refunds (a card changes in place). Both
// subscriptions start after the log position the first screen was read at, and resume from
// the last event they received after a reconnect: no change is missed or counted twice.
import { request, subscribe } from "./api";
import { h } from "./dom";
import { humanize, money, relative, shortId } from "./format";
import {
  type BoardScreen,
  boardScreen,
  CUSTOMER,
  type CustomerResult,
  ITEM_CHANGES,
  type ItemChange,
  ORDERS,
  type OrderCard,
  type OrderStatus,
  type OrdersResult,
  STATUS_CHANGES,
  STATUSES,
  type StatusChange,
} from "./queries";
import { type BoardFilter, boardHref, orderHref } from "./routes";

const PAGE_SIZE = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Column {
  status: OrderStatus;
  total: number | null;
  cards: Map<string, HTMLElement>;
  cursor: string | null;
  hasNext: boolean;
  loading: boolean;
  failed: boolean;
  list: HTMLOListElement;
  count: HTMLElement;
  more: HTMLButtonElement;
}

export function statusBadge(status: OrderStatus | null): HTMLElement {
  return h("span", { class: `badge status-${status ?? "NONE"}` }, status ? humanize(status) : "Not placed");
}

function card(order: OrderCard, fresh: boolean): HTMLElement {
  const units = order.items.reduce((sum, item) => sum + item.quantity, 0);
  return h(
    "li",
    { class: fresh ? "card card-fresh" : "card", "data-order-id": order.id },
    h("a", { class: "card-link", href: orderHref(order.id) }, h("span", { class: "mono" }, shortId(order.id))),
    h("span", { class: "card-amount" }, money(order.totalAmount, order.currency)),
    h(
      "a",
      {
        class: "card-customer",
        href: boardHref({ customerId: order.customer.id }),
        title: "Show this customer's orders",
      },
      order.customer.name,
    ),
    h(
      "span",
      { class: "card-meta" },
      `${units} ${units === 1 ? "item" : "items"} · `,
      Number(order.refundedAmount) > 0 ? `${money(order.refundedAmount, order.currency)} refunded · ` : "",
      h("time", { datetime: order.lastEventAt, "data-relative": "" }, relative(order.lastEventAt)),
    ),
  );
}

function updateCount(column: Column): void {
  const loaded = column.cards.size;
  column.count.textContent = column.total === null ? "…" : String(column.total);
  column.more.hidden = !column.hasNext && !column.failed;
  column.more.textContent = column.failed ? "Could not load: retry" : "Load more";
  column.list.classList.toggle("is-empty", loaded === 0 && !column.loading);
}

async function loadPage(column: Column, filter: BoardFilter): Promise<void> {
  if (column.loading) return;
  column.loading = true;
  column.more.disabled = true;
  try {
    const { orders } = await request<OrdersResult>(ORDERS, {
      first: PAGE_SIZE,
      after: column.cursor,
      status: [column.status],
      customerId: filter.customerId ?? null,
    });
    addPage(column, orders);
    column.failed = false;
  } catch (error) {
    column.failed = true;
    console.error(`loading ${column.status} orders failed`, error);
  } finally {
    column.loading = false;
    column.more.disabled = false;
    updateCount(column);
  }
}

function addPage(column: Column, orders: OrdersResult["orders"]): void {
  for (const order of orders.nodes) {
    if (column.cards.has(order.id)) continue; // arrived live before its page did
    const element = card(order, false);
    column.cards.set(order.id, element);
    column.list.append(element);
  }
  column.cursor = orders.pageInfo.endCursor;
  column.hasNext = orders.pageInfo.hasNextPage;
}

/** The first screen: every column's first page and count, then the live updates after it. */
async function loadScreen(columns: Map<OrderStatus, Column>, filter: BoardFilter): Promise<string> {
  const screen = await request<BoardScreen>(boardScreen([...columns.keys()]), {
    first: PAGE_SIZE,
    customerId: filter.customerId ?? null,
  });
  for (const column of columns.values()) {
    const loaded = screen[column.status];
    if (!loaded) continue;
    addPage(column, loaded);
    column.total = loaded.totalCount;
    updateCount(column);
  }
  return screen.logPosition;
}

function columnView(status: OrderStatus, filter: BoardFilter): [Column, HTMLElement] {
  const list = h("ol", { class: "card-list", "aria-label": `${humanize(status)} orders` });
  const column: Column = {
    status,
    total: null,
    cards: new Map(),
    cursor: null,
    hasNext: false,
    loading: false,
    failed: false,
    list,
    count: h("span", { class: "column-count" }, "…"),
    more: h("button", { class: "button button-quiet more", type: "button", hidden: true }, "Load more"),
  };
  column.more.addEventListener("click", () => void loadPage(column, filter));
  const section = h(
    "section",
    { class: "column", "data-status": status },
    h(
      "header",
      { class: "column-head" },
      h("span", { class: `dot status-${status}` }),
      h("h2", {}, humanize(status)),
      column.count,
    ),
    h("div", { class: "column-body" }, list, column.more),
  );
  return [column, section];
}

function statusToggles(filter: BoardFilter): HTMLElement {
  const shown = new Set(filter.statuses);
  return h(
    "div",
    { class: "toggles", role: "group", "aria-label": "Statuses shown" },
    STATUSES.map((status) => {
      const next = new Set(shown);
      if (shown.has(status)) next.delete(status);
      else next.add(status);
      return h(
        "a",
        {
          class: "toggle",
          href: boardHref({ ...filter, statuses: STATUSES.filter((s) => next.has(s)) }),
          "aria-pressed": shown.has(status) ? "true" : "false",
        },
        h("span", { class: `dot status-${status}` }),
        humanize(status),
      );
    }),
  );
}

function customerFilter(filter: BoardFilter): HTMLElement {
  if (filter.customerId) {
    const name = h("strong", {}, shortId(filter.customerId));
    request<CustomerResult>(CUSTOMER, { id: filter.customerId })
      .then(({ customer }) => {
        name.textContent = customer ? customer.name : "unknown customer";
      })
      .catch(() => undefined);
    return h(
      "div",
      { class: "filter-chip" },
      "Customer ",
      name,
      h(
        "a",
        {
          class: "chip-clear",
          href: boardHref({ ...filter, customerId: undefined }),
          "aria-label": "Clear customer filter",
        },
        "×",
      ),
    );
  }
  const input = h("input", {
    class: "input",
    name: "customer",
    placeholder: "Filter by customer ID",
    "aria-label": "Customer ID",
    spellcheck: "false",
    autocomplete: "off",
  });
  return h(
    "form",
    {
      class: "customer-form",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const value = input.value.trim();
        input.setCustomValidity(UUID.test(value) ? "" : "Enter a customer UUID");
        if (input.reportValidity()) window.location.hash = boardHref({ ...filter, customerId: value });
      },
    },
    input,
  );
}

/** Renders the board into `root`; returns the function that stops its live updates. */
export function renderBoard(root: HTMLElement, filter: BoardFilter): () => void {
  const columns = new Map<OrderStatus, Column>();
  const sections = filter.statuses.map((status) => {
    const [column, section] = columnView(status, filter);
    columns.set(status, column);
    return section;
  });
  root.replaceChildren(
    h(
      "div",
      { class: "board-page" },
      h(
        "div",
        { class: "toolbar" },
        h("h1", { class: "page-title" }, "Orders"),
        statusToggles(filter),
        customerFilter(filter),
      ),
      sections.length
        ? h("div", { class: "columns", style: `--columns: ${sections.length}` }, sections)
        : h("p", { class: "empty-state" }, "Pick at least one status to see orders."),
    ),
  );

  // Loads the next page when the bottom of a column scrolls into view.
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const column = columns.get((entry.target.closest(".column") as HTMLElement).dataset.status as OrderStatus);
      if (entry.isIntersecting && column?.hasNext && !column.failed) void loadPage(column, filter);
    }
  });
  for (const column of columns.values()) observer.observe(column.more);

  // The position of the last change applied to each order: a change seen twice (the first
  // screen already counted it) moves nothing.
  const applied = new Map<string, string>();
  const onStatusChange = ({ orderStatusChanged: change }: StatusChange): void => {
    const { order } = change;
    if (filter.customerId && order.customer.id !== filter.customerId) return;
    const position = change.event.globalPosition;
    if ((applied.get(order.id) ?? "") >= position) return;
    applied.set(order.id, position);
    const source = change.previousStatus ? columns.get(change.previousStatus) : undefined;
    if (source?.total) source.total -= 1;
    for (const column of columns.values()) {
      column.cards.get(order.id)?.remove();
      column.cards.delete(order.id);
      updateCount(column);
    }
    const target = columns.get(change.status);
    if (!target) return;
    if (target.total !== null) target.total += 1;
    const element = card(order, true);
    target.cards.set(order.id, element);
    target.list.prepend(element);
    updateCount(target);
  };
  const onItemChange = ({ orderEvents: { order } }: ItemChange): void => {
    for (const column of columns.values()) {
      const shown = column.cards.get(order.id);
      if (!shown || order.status !== column.status) continue;
      const element = card(order, true);
      shown.replaceWith(element);
      column.cards.set(order.id, element);
    }
  };

  let stopped = false;
  let unsubscribe = (): void => undefined;
  let unsubscribeItems = (): void => undefined;
  void loadScreen(columns, filter).then(
    (position) => {
      if (stopped) return;
      unsubscribe = subscribe<StatusChange>(
        STATUS_CHANGES,
        { after: position },
        onStatusChange,
        (data) => data.orderStatusChanged.event.globalPosition,
      );
      unsubscribeItems = subscribe<ItemChange>(
        ITEM_CHANGES,
        { after: position },
        onItemChange,
        (data) => data.orderEvents.globalPosition,
      );
    },
    (error: unknown) => {
      console.error("loading the board failed", error);
      for (const column of columns.values()) {
        column.failed = true;
        updateCount(column);
      }
    },
  );

  const clock = window.setInterval(() => {
    for (const time of root.querySelectorAll<HTMLTimeElement>("time[data-relative]")) {
      time.textContent = relative(time.dateTime);
    }
  }, 15_000);

  return () => {
    stopped = true;
    unsubscribe();
    unsubscribeItems();
    observer.disconnect();
    window.clearInterval(clock);
  };
}
