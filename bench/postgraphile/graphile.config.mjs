// PostGraphile v5 over ordergraph's tables, for bench/compare.py (installed into bench/.peers/).
// Reads the database URL, port and pool size from OG_BENCH_DATABASE_URL, OG_BENCH_PORT and
// OG_BENCH_POOL. Smart tags give the log a relation to its order (order_events.order_id has no
// foreign key in schema.sql) and let clients order a timeline by stream_version.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { jsonPgSmartTags } from "postgraphile/utils";

const tags = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      order_events: {
        tags: {
          foreignKey: "(order_id) references orders_current (order_id)|@fieldName order|@foreignFieldName events",
        },
        attribute: { stream_version: { tags: { behavior: ["+orderBy", "+filterBy"] } } },
      },
    },
  },
});

/** @type {GraphileConfig.Preset} */
export default {
  extends: [PostGraphileAmberPreset],
  plugins: [tags],
  pgServices: [
    makePgService({
      connectionString: process.env.OG_BENCH_DATABASE_URL,
      schemas: ["public"],
      poolConfig: { max: Number(process.env.OG_BENCH_POOL ?? 10) },
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.OG_BENCH_PORT ?? 5678),
    graphqlPath: "/graphql",
    watch: false,
  },
  grafast: { explain: false },
};
