// Two entry points, one build: the web app (index.html) and the offline GraphiQL page
// (graphiql.html). The output lands in the Python package so that running the server needs no
// node; asset URLs start with /static/ because gql/web.py mounts that directory there.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const server = process.env.ORDERGRAPH_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/static/",
  build: {
    outDir: here("../gql/static"),
    emptyOutDir: true,
    // The IDE bundles Monaco; a few large chunks are expected there.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: { index: here("index.html"), graphiql: here("graphiql.html") },
      onwarn(warning, warn) {
        // GraphiQL's dependencies carry React Server Components directives, meaningless here.
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
  worker: { format: "es" },
  // The dev server's dependency pre-bundling cannot follow `?worker` imports, which GraphiQL's
  // Monaco worker setup uses; serve that module as it is.
  optimizeDeps: { exclude: ["@graphiql/react"] },
  // `npm run dev` serves the sources with hot reload and forwards the API to a running server.
  server: {
    proxy: { "/graphql": { target: server, ws: true } },
  },
});
