// Hash routes: `#/` (the board, with its filters in the query) and `#/orders/<id>`.
// Hash routing keeps the server's job to one page: GET / serves index.html for every view.
import { type OrderStatus, STATUSES } from "./queries";

export interface BoardFilter {
  statuses: OrderStatus[];
  customerId?: string;
}

type Route = { view: "board"; filter: BoardFilter } | { view: "order"; orderId: string; version?: number };

export function parseRoute(hash: string): Route {
  const [path, query = ""] = hash.replace(/^#/, "").split("?", 2);
  const params = new URLSearchParams(query);
  const order = /^\/orders\/([^/]+)$/.exec(path);
  if (order) {
    const version = Number.parseInt(params.get("version") ?? "", 10);
    return {
      view: "order",
      orderId: decodeURIComponent(order[1]),
      version: Number.isNaN(version) ? undefined : version,
    };
  }
  const wanted = params.get("status")?.split(",");
  const statuses = wanted ? STATUSES.filter((status) => wanted.includes(status)) : [...STATUSES];
  return { view: "board", filter: { statuses, customerId: params.get("customer") ?? undefined } };
}

export function boardHref(filter: Partial<BoardFilter>): string {
  const params = new URLSearchParams();
  if (filter.statuses && filter.statuses.length !== STATUSES.length) params.set("status", filter.statuses.join(","));
  if (filter.customerId) params.set("customer", filter.customerId);
  const query = params.toString();
  return query ? `#/?${query.replaceAll("%2C", ",")}` : "#/";
}

export function orderHref(orderId: string, version?: number): string {
  return version === undefined ? `#/orders/${orderId}` : `#/orders/${orderId}?version=${version}`;
}
