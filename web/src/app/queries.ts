// The GraphQL documents the app sends, with the shapes they return.

export const STATUSES = ["PLACED", "PAYMENT_AUTHORIZED", "PAID", "SHIPPED", "CANCELLED"] as const;
export type OrderStatus = (typeof STATUSES)[number];

interface OrderItem {
  sku: string;
  quantity: number;
  unitPrice: string;
  lineTotal: string;
}

export interface OrderCard {
  id: string;
  status: OrderStatus;
  currency: string;
  totalAmount: string;
  refundedAmount: string;
  lastEventAt: string;
  customer: { id: string; name: string };
  items: { quantity: number }[];
}

const CARD_FIELDS = `id status currency totalAmount refundedAmount lastEventAt customer { id name } items { quantity }`;

interface Page<T> {
  nodes: T[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export const ORDERS = `query BoardColumn($first: Int!, $after: String, $status: [OrderStatus!], $customerId: UUID) {
  orders(first: $first, after: $after, status: $status, customerId: $customerId) {
    nodes { ${CARD_FIELDS} }
    pageInfo { hasNextPage endCursor }
  }
}`;
export type OrdersResult = { orders: Page<OrderCard> };

export type Column = Page<OrderCard> & { totalCount: number };

/**
 * The board's first screen in one request: the first page and the count of each status shown,
 * and the log's position, after which the live updates follow without a gap.
 */
export function boardScreen(statuses: readonly OrderStatus[]): string {
  const columns = statuses.map(
    (status) => `${status}: orders(first: $first, status: [${status}], customerId: $customerId) {
    nodes { ${CARD_FIELDS} }
    pageInfo { hasNextPage endCursor }
    totalCount
  }`,
  );
  return `query Board($first: Int!, $customerId: UUID) {
  logPosition
  ${columns.join("\n  ")}
}`;
}
export type BoardScreen = { logPosition: string } & Partial<Record<OrderStatus, Column>>;

export const CUSTOMER = `query Customer($id: UUID!) { customer(id: $id) { id name email } }`;
export type CustomerResult = { customer: { id: string; name: string; email: string } | null };

export const STATUS_CHANGES = `subscription Board($after: String) {
  orderStatusChanged(after: $after) { previousStatus status event { globalPosition } order { ${CARD_FIELDS} } }
}`;
export type StatusChange = {
  orderStatusChanged: {
    previousStatus: OrderStatus | null;
    status: OrderStatus;
    event: { globalPosition: string };
    order: OrderCard;
  };
};

/** Item events and refunds change a card's amounts and item count but not its column; a
 * forgotten customer changes the name it shows. */
export const ITEM_CHANGES = `subscription BoardItems($after: String) {
  orderEvents(types: [ITEM_ADDED_TO_ORDER, ITEM_REMOVED_FROM_ORDER, REFUND_ISSUED, CUSTOMER_FORGOTTEN], after: $after) {
    globalPosition order { ${CARD_FIELDS} }
  }
}`;
export type ItemChange = { orderEvents: { globalPosition: string; order: OrderCard } };

/** Each event type's own data, asked for with one inline fragment per type. */
const EVENT_DATA: Record<string, string> = {
  OrderPlaced: "customerId currency items { sku quantity unitPrice }",
  ItemAddedToOrder: "sku quantity unitPrice",
  ItemRemovedFromOrder: "sku quantity",
  PaymentAuthorized: "amount paymentProvider authorizationId",
  PaymentCaptured: "amount",
  PaymentCaptureReversed: "amount reason",
  OrderShipped: "carrier trackingNumber shippedItems { sku quantity }",
  OrderCancelled: "reason",
  RefundIssued: "amount reason",
};

const EVENT_FIELDS = `__typename id streamVersion globalPosition type occurredAt recordedAt correlationId causationId
  actor { type id }
  ${Object.entries(EVENT_DATA)
    .map(([type, fields]) => `... on ${type} { ${fields} }`)
    .join("\n  ")}`;

/** The fields every event has; the rest of an event object is its typed data. */
export const COMMON_EVENT_FIELDS = new Set([
  "__typename",
  "id",
  "streamVersion",
  "globalPosition",
  "type",
  "occurredAt",
  "recordedAt",
  "correlationId",
  "causationId",
  "actor",
]);

export interface OrderEvent {
  __typename: string;
  id: string;
  streamVersion: number;
  /** the event's place in the whole log: the cursor a subscription resumes after (not shown) */
  globalPosition: string;
  type: string;
  occurredAt: string;
  recordedAt: string;
  correlationId: string | null;
  causationId: string | null;
  actor: { type: string; id: string } | null;
  [data: string]: unknown;
}

export interface OrderDetail extends OrderCard {
  version: number;
  placedAt: string;
  authorizedAmount: string;
  capturedAmount: string;
  customer: { id: string; name: string; email: string };
}

export const ORDER = `query Order($id: UUID!) {
  order(id: $id) {
    id status currency totalAmount authorizedAmount capturedAmount refundedAmount version placedAt lastEventAt
    customer { id name email }
    items { quantity }
  }
}`;
export type OrderResult = { order: OrderDetail | null };

export const ORDER_EVENTS = `query Timeline($id: UUID!, $after: String) {
  order(id: $id) {
    events(first: 100, after: $after) {
      nodes { ${EVENT_FIELDS} }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;
export type OrderEventsResult = { order: { events: Page<OrderEvent> } | null };

/** From `after` (the last event the page has) on: nothing recorded since is missed. */
export const LIVE_EVENTS = `subscription Timeline($orderId: UUID!, $after: String) {
  orderEvents(orderId: $orderId, after: $after) { ${EVENT_FIELDS} }
}`;
export type LiveEvent = { orderEvents: OrderEvent };

export interface OrderState {
  status: OrderStatus | null;
  version: number;
  totalAmount: string;
  authorizedAmount: string;
  capturedAmount: string;
  refundedAmount: string;
  items: OrderItem[];
}

export const STATE_AT = `query StateAt($id: UUID!, $version: Int!) {
  order(id: $id) {
    stateAt(version: $version) {
      status version totalAmount authorizedAmount capturedAmount refundedAmount
      items { sku quantity unitPrice lineTotal }
    }
  }
}`;
export type StateAtResult = { order: { stateAt: OrderState } | null };

export const EVENT_ORDER = `query EventOrder($id: UUID!) { event(id: $id) { orderId } }`;
export type EventOrderResult = { event: { orderId: string } | null };
