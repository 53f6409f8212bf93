// The GraphiQL fetcher: queries and mutations over HTTP POST, subscriptions over graphql-ws.
// GraphiQL's stock fetcher sends the header editor's headers over HTTP only; here they also
// become the WebSocket `connection_init` payload, so authentication works for subscriptions.
import type { Fetcher, FetcherOpts, FetcherParams, SyncExecutionResult } from "@graphiql/toolkit";
import { getOperationAST, parse } from "graphql";
import { type Client, createClient } from "graphql-ws";

type Headers = Record<string, string>;

function isSubscription(params: FetcherParams): boolean {
  try {
    const operation = getOperationAST(parse(params.query), params.operationName ?? undefined);
    return operation?.operation === "subscription";
  } catch {
    return false; // let the server report the syntax error
  }
}

function websocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function stringHeaders(opts?: FetcherOpts): Headers {
  const headers: Headers = {};
  for (const [name, value] of Object.entries(opts?.headers ?? {})) headers[name] = String(value);
  return headers;
}

export function createFetcher(url: string): Fetcher {
  // One socket per distinct set of headers: changing a header reconnects with the new payload.
  let socket: { client: Client; key: string } | undefined;

  function client(headers: Headers): Client {
    const key = JSON.stringify(headers);
    if (socket?.key !== key) {
      void socket?.client.dispose();
      socket = { client: createClient({ url: websocketUrl(url), connectionParams: headers }), key };
    }
    return socket.client;
  }

  return (params, opts) => {
    const headers = stringHeaders(opts);
    if (isSubscription(params)) {
      const request = { query: params.query, operationName: params.operationName, variables: params.variables };
      // graphql-ws yields formatted (JSON) results, which is what GraphiQL renders; the toolkit's
      // type names graphql-js's class instead.
      return client(headers).iterate(request) as AsyncIterable<unknown> as SyncExecutionResult;
    }
    return fetch(url, {
      method: "POST",
      headers: {
        accept: "application/graphql-response+json, application/json",
        "content-type": "application/json",
        ...headers,
      },
      body: JSON.stringify(params),
    }).then((response) => response.json());
  };
}
