// Talking to ordergraph: GraphQL over HTTP for reads, graphql-ws for live updates.
import { createClient } from "graphql-ws";
import { authHeaders } from "./session";

class GraphQLError extends Error {}

export async function request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: {
      accept: "application/graphql-response+json, application/json",
      "content-type": "application/json",
      ...authHeaders(),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length) throw new GraphQLError(body.errors.map((error) => error.message).join("; "));
  if (!body.data) throw new GraphQLError(`HTTP ${response.status}`);
  return body.data;
}

export type LinkState = "connecting" | "live" | "offline";
const linkListeners = new Set<(state: LinkState) => void>();
let linkState: LinkState = "connecting";

function setLinkState(state: LinkState): void {
  linkState = state;
  for (const listener of linkListeners) listener(state);
}

/** Calls `listener` now and on every change of the WebSocket's state; returns an unsubscribe. */
export function watchLink(listener: (state: LinkState) => void): () => void {
  linkListeners.add(listener);
  listener(linkState);
  return () => linkListeners.delete(listener);
}

const socketUrl = new URL("/graphql", window.location.href);
socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";

// Connected eagerly and kept open (every view subscribes), pinged so that a dead link is noticed,
// and retried forever with graphql-ws's randomised back-off: an operator's board heals by itself.
const client = createClient({
  url: socketUrl.href,
  lazy: false,
  keepAlive: 10_000,
  retryAttempts: Number.POSITIVE_INFINITY,
  shouldRetry: () => true,
  // read on every (re)connect: a socket closed at its token's expiry (4403) resumes with the
  // token pasted since
  connectionParams: () => authHeaders(),
  on: {
    connecting: () => setLinkState("connecting"),
    connected: () => setLinkState("live"),
    closed: () => setLinkState("offline"),
  },
});

/**
 * Starts a subscription; `onData` receives each result's data. Returns the unsubscribe.
 *
 * With `cursorOf`, the subscription resumes without loss: graphql-ws sends the same payload
 * again after every reconnect, so keeping its `after` variable at the cursor of the last result
 * (`cursorOf(data)`) makes the resubscription continue where the last socket stopped.
 */
export function subscribe<T>(
  query: string,
  variables: Record<string, unknown>,
  onData: (data: T) => void,
  cursorOf?: (data: T) => string | null,
): () => void {
  const payload = { query, variables: { ...variables } };
  return client.subscribe<T>(payload, {
    next: (result) => {
      if (!result.data) return;
      const cursor = cursorOf?.(result.data);
      if (cursor) payload.variables.after = cursor;
      onData(result.data);
    },
    error: (error) => console.error("subscription failed", error),
    complete: () => undefined,
  });
}
