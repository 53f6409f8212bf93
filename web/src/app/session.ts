// Who is using the app: a bearer token, pasted or given once as ?token=, kept in session storage.
const KEY = "ordergraph.token";

export interface Who {
  role: string;
  label: string;
}

/** Takes `?token=` from the address once (then drops it from the address bar). */
function adoptUrlToken(): void {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given === null) return;
  if (given.trim()) sessionStorage.setItem(KEY, given.trim());
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.href);
}

adoptUrlToken();

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string | null): void {
  if (value && value.trim()) sessionStorage.setItem(KEY, value.trim());
  else sessionStorage.removeItem(KEY);
}

/** The Authorization header of every request, when there is a token. */
export function authHeaders(): Record<string, string> {
  const current = token();
  return current ? { authorization: `Bearer ${current}` } : {};
}

/** What the token says about its holder (for display only: the server verifies it). */
export function who(): Who | null {
  const current = token();
  if (!current) return null;
  try {
    const part = current.split(".")[1] ?? "";
    const claims = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
    const role = String(claims.role ?? "unknown");
    const label =
      role === "customer"
        ? `customer ${String(claims.customer_id ?? "").slice(0, 8)}`
        : role === "service"
          ? `service (${String(claims.scope ?? "")})`
          : role;
    return { role, label };
  } catch {
    return { role: "unknown", label: "unreadable token" };
  }
}
