"""ordergraph over HTTP and WebSocket: a request from the socket to its answer.

uvicorn (started by `ordergraph serve`, gql/serve.py) hands each connection's ASGI scope to
the app that `app.create_app` builds. The app is a stack of layers, outermost first, and each
one may answer a request itself and stop it there:

0. `requestlog.RequestLog` (only with ORDERGRAPH_LOG_REQUESTS): the request's id, and one
   log line once it is answered.
1. `guard.SiteGuard`: the `Host` must be an allowed name (else 421) and a browser's `Origin`
   the server itself or an allowed origin (else 403; a WebSocket is closed with 4403).
2. `access.Authenticate`: a GraphQL request's bearer token becomes its Identity on the scope
   (else 401 UNAUTHENTICATED); `/metrics` checks its own token when one is configured.
3. `disconnect.CancelOnDisconnect`: once the body is read, a client that goes away cancels
   the work, and with it the SQL statement being awaited.
4. `graphql.CompiledFront`: a `POST /graphql` whose document has compiled SQL is answered
   from the raw ASGI messages: one statement, no starlette on the way.
5. starlette: `health.MetricsMiddleware` times the request, then the routes:
   - `GET|POST /graphql` → `graphql.graphql_endpoint`: the same reading of the request as
     the front (params, media type), the compiled answer when there is one, else strawberry's
     executor and the resolvers (gql/schema/); a browser's GET without a query gets the
     offline GraphiQL page (`pages`);
   - `WS /graphql` → `websocket`: subscriptions, fed by the live hub (gql/live.py);
   - `/healthz`, `/readyz`, `/metrics` → `health`;
   - `/` and `/static` → `pages`: the web app and its assets.

Both /graphql answers pick where a read runs once per request (`positions.route_read`: a
replica, or the primary when a request's position token is not replayed there in time) and
say who served it; a mutation's answer carries its position token (gql/store/replicas.py).

Every GraphQL operation, whichever of the ways above it takes (the compiled front, the
endpoint, SSE, each WebSocket subscribe), passes `gate.Gate` before it runs: a document sent
by id is read from the trusted documents, trusted-only mode refuses the others, and the
caller's rate limits are charged (429 RATE_LIMITED when spent).

Errors a client sees carry the codes listed in gql/errors.py.
"""
