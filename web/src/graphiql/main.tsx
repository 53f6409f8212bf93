// The offline GraphiQL page served at GET /graphql: every asset (editor, workers, fonts) comes
// from this bundle, so the IDE works without internet access.
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { GraphiQL, HISTORY_PLUGIN } from "graphiql";
import "graphiql/setup-workers/vite";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createFetcher } from "./fetcher";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./graphiql.css";

// Two starting tabs: a query to run at once, and a subscription that shows live updates.
const defaultTabs = [
  {
    query: `query RecentOrders {
  orders(first: 5) {
    nodes {
      id
      status
      totalAmount
      currency
      customer { name }
      lastEventAt
    }
    pageInfo { hasNextPage endCursor }
  }
}
`,
  },
  {
    query: `subscription StatusChanges {
  orderStatusChanged {
    previousStatus
    status
    order { id totalAmount currency }
  }
}
`,
  },
];

const fetcher = createFetcher(new URL("/graphql", window.location.href).href);
const plugins = [HISTORY_PLUGIN, explorerPlugin()];

createRoot(document.getElementById("graphiql")!).render(
  <StrictMode>
    <GraphiQL fetcher={fetcher} plugins={plugins} defaultTabs={defaultTabs} shouldPersistHeaders />
  </StrictMode>,
);
