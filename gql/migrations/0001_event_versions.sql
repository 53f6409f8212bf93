-- 0001: event versions. Added the migrations table and the current schema_version of each
-- event type (OrderCancelled 2: `reasonCode` is required); every read of the log goes
-- through og_upcast since. Stored events are left as they were written.
--
-- Steps hold what changes existing tables and their data; functions, triggers and reference
-- rows come from schema.sql and gql/catalogue.py, applied again by every `migrate`.

create table if not exists og_migrations (
    version    int primary key,
    name       text not null,
    applied_at timestamptz not null default now()
);

create table if not exists event_schema_versions (
    event_type     text primary key,
    schema_version int not null constraint event_schema_versions_positive check (schema_version >= 1)
);
