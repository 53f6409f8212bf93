// A front-end's live feed over SSE, as the npm `graphql-sse` client runs it (distinct
// connections): retried forever, a fresh token on every (re)connect, and the last
// globalPosition it saw sent as Last-Event-ID, so that the server resumes right after it.
// Prints one JSON line per event and connection, for the test that drives it.
//
//   node stream.mjs <graphql-sse client.mjs> <http url> <after> <token>…
import { pathToFileURL } from "node:url";

const [clientModule, url, after, ...tokens] = process.argv.slice(2);
const { createClient } = await import(pathToFileURL(clientModule).href);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

let connects = 0;
let lastEventId = null; // graphql-sse does not read SSE ids: each event's globalPosition is its id
const client = createClient({
  url,
  retryAttempts: Number.POSITIVE_INFINITY,
  retry: () => new Promise((resolve) => setTimeout(resolve, 100)),
  headers: () => {
    const token = tokens[Math.min(connects++, tokens.length - 1)];
    return { authorization: `Bearer ${token}`, ...(lastEventId ? { "last-event-id": lastEventId } : {}) };
  },
  on: { connected: () => print({ connected: connects }) },
});

client.subscribe(
  {
    query: `subscription($after: String) { orderEvents(after: $after) { id globalPosition } }`,
    variables: { after },
  },
  {
    next: ({ data, errors }) => {
      if (errors) return print({ error: errors });
      lastEventId = data.orderEvents.globalPosition;
      print({ event: lastEventId });
    },
    error: (error) => print({ error: String(error?.message ?? error) }),
    complete: () => print({ complete: true }),
  },
);
