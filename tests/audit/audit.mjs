// The GraphQL-over-HTTP spec's own audit (npm graphql-http, `auditServer`) against a running
// server; prints one JSON line per audit: {id, name, status: ok|notice|warn|error, reason}.
//
//   node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
const results = await auditServer({ url });
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") line.reason = result.reason;
  process.stdout.write(JSON.stringify(line) + "\n");
}
