// A front-end's live timeline, as the npm `graphql-ws` client runs it: retried forever, a fresh
// token on every (re)connect, and the subscription resumed from the last globalPosition it saw.
// Prints one JSON line per event, connection and close, for the test that drives it.
//
//   node follow.mjs <graphql-ws client.js> <ws url> <order id> <after> <token>…
import { pathToFileURL } from "node:url";

const [clientModule, url, orderId, after, ...tokens] = process.argv.slice(2);
const { createClient } = await import(pathToFileURL(clientModule).href);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

let connects = 0;
const client = createClient({
  url,
  webSocketImpl: globalThis.WebSocket,
  retryAttempts: Number.POSITIVE_INFINITY,
  shouldRetry: () => true,
  retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
  // the next token each time; the last one is kept for any later reconnect
  connectionParams: () => ({ Authorization: `Bearer ${tokens[Math.min(connects++, tokens.length - 1)]}` }),
  on: {
    connected: () => print({ connected: connects }),
    closed: (event) => print({ closed: event.code }),
  },
});

// graphql-ws sends this same payload again after every reconnect: moving `after` along
// makes the resubscription continue where the last socket stopped
const payload = {
  query: `subscription($orderId: UUID, $after: String) {
    orderEvents(orderId: $orderId, after: $after) { id globalPosition } }`,
  variables: { orderId, after },
};
client.subscribe(payload, {
  next: ({ data, errors }) => {
    if (errors) return print({ errors });
    payload.variables.after = data.orderEvents.globalPosition;
    print({ event: data.orderEvents.globalPosition });
  },
  error: (error) => print({ error: String(error?.message ?? error?.code ?? error) }),
  complete: () => print({ complete: true }),
});
