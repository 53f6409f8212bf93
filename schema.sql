-- ordergraph: the whole database schema, as a new database gets it, and as every
-- `ordergraph migrate` re-applies it. Tables are created when missing (a database made by an
-- earlier release gets its changes to existing tables from the numbered steps in
-- gql/migrations first); functions, triggers and reference rows are applied again from their
-- definitions here every time, so a rule change ships without copying functions.
--
-- What differs by event type is declared once, in gql/catalogue.py: `ordergraph migrate`
-- generates its SQL (og_check, og_evolve, og_upcast, the read model's columns, the state
-- machine's and the grants' rows) and applies it where the `@catalogue` line stands below;
-- `ordergraph schema --sql` prints the whole. The database enforces every rule for every
-- writer, plain SQL INSERTs included. Python maps the named failures (`constraint` of each
-- error) to the API error codes in gql/errors.py.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

-- ---------------------------------------------------------------------------------------
-- Roles (cluster-wide, shared by every ordergraph database on the server):
--   ordergraph_owner  owns every object below; migrations run as it
--   ordergraph_app    what the server connects as: owns nothing, reads, appends events and
--                     registers customers, keeps stream consumers' positions; no UPDATE,
--                     DELETE or TRUNCATE on anything else
-- Creating them needs CREATEROLE the first time; og_apply_privileges() (end of file) grants.
-- ---------------------------------------------------------------------------------------
-- The tables and sequences that are ordergraph's, named once: ownership passes to the owner
-- and privileges are granted from this list, and nothing else in the schema is touched.
create or replace function og_relations() returns text[] language sql immutable as $$
    select array['order_statuses', 'order_transitions', 'currencies', 'customers',
                 'order_events', 'orders_current', 'order_events_position_seq', 'access_roles',
                 'append_grants', 'event_schema_versions', 'og_migrations', 'og_schema',
                 'order_tallies', 'stream_consumers', 'stream_consumers_consumer_id_seq',
                 'consumer_parked', 'customer_keys', 'og_secrets']
$$;

do $$
declare
    wanted text;
    r record;
begin
    foreach wanted in array array['ordergraph_owner', 'ordergraph_app'] loop
        if not exists (select from pg_roles where rolname = wanted) then
            begin
                execute format('create role %I %s', wanted,
                               case wanted when 'ordergraph_app' then 'login' else 'nologin' end);
            exception when duplicate_object or unique_violation then
                null;  -- another database's migration created it meanwhile
            end;
        end if;
    end loop;
    execute format('grant usage, create on schema %I to ordergraph_owner', current_schema());
    -- objects created before the roles existed pass to the owner
    for r in select format('alter %s %s owner to ordergraph_owner',
                           case c.relkind when 'S' then 'sequence' else 'table' end,
                           c.oid::regclass) as ddl
             from pg_class c
             where c.relnamespace = current_schema()::regnamespace and c.relkind in ('r', 'S')
               and c.relname = any(og_relations())
               and c.relowner <> 'ordergraph_owner'::regrole
             union all
             select format('alter %s %s owner to ordergraph_owner',
                           case p.prokind when 'a' then 'aggregate' else 'function' end,
                           p.oid::regprocedure)
             from pg_proc p
             where p.pronamespace = current_schema()::regnamespace and p.proname like 'og\_%'
               and p.proowner <> 'ordergraph_owner'::regrole loop
        execute r.ddl;
    end loop;
    if pg_has_role('ordergraph_owner', 'member') then
        set local role ordergraph_owner;  -- what follows runs as (and is owned by) the owner
    end if;
end $$;

-- ---------------------------------------------------------------------------------------
-- Vocabulary and the state machine (data, read by the checks below and by `ordergraph`)
-- ---------------------------------------------------------------------------------------
create table if not exists order_statuses (
    status   text primary key,
    is_final boolean not null
);

create table if not exists order_transitions (
    event_type  text not null,
    from_status text references order_statuses,      -- null: a new stream
    to_status   text not null references order_statuses,
    constraint order_transitions_key unique nulls not distinct (event_type, from_status)
);

-- The current schema_version of each event type's payload. Writers that give no version
-- write this one; events stored with an older one are upcast when read (og_upcast).
create table if not exists event_schema_versions (
    event_type     text primary key,
    schema_version int not null constraint event_schema_versions_positive check (schema_version >= 1)
);

-- Currencies: the ISO 4217 codes in use, with their minor units (decimals an amount may
-- have). Orders name one; every amount of the order follows its minor units. SIX's list
-- (tests/test_money.py compares them), and ANG and BGN, withdrawn since, kept so that orders
-- placed in them stay readable and refundable.
create table if not exists currencies (
    code        text primary key constraint currencies_code_valid check (code ~ '^[A-Z]{3}$'),
    minor_units int not null constraint currencies_minor_units_valid check (minor_units between 0 and 4)
);

with wanted (code, minor_units) as (values
    ('AED', 2), ('AFN', 2), ('ALL', 2), ('AMD', 2), ('ANG', 2), ('AOA', 2), ('ARS', 2), ('AUD', 2),
    ('AWG', 2), ('AZN', 2), ('BAM', 2), ('BBD', 2), ('BDT', 2), ('BGN', 2), ('BHD', 3), ('BIF', 0),
    ('BMD', 2), ('BND', 2), ('BOB', 2), ('BOV', 2), ('BRL', 2), ('BSD', 2), ('BTN', 2), ('BWP', 2),
    ('BYN', 2), ('BZD', 2), ('CAD', 2), ('CDF', 2), ('CHE', 2), ('CHF', 2), ('CHW', 2), ('CLF', 4),
    ('CLP', 0), ('CNY', 2), ('COP', 2), ('COU', 2), ('CRC', 2), ('CUP', 2), ('CVE', 2), ('CZK', 2),
    ('DJF', 0), ('DKK', 2), ('DOP', 2), ('DZD', 2), ('EGP', 2), ('ERN', 2), ('ETB', 2), ('EUR', 2),
    ('FJD', 2), ('FKP', 2), ('GBP', 2), ('GEL', 2), ('GHS', 2), ('GIP', 2), ('GMD', 2), ('GNF', 0),
    ('GTQ', 2), ('GYD', 2), ('HKD', 2), ('HNL', 2), ('HTG', 2), ('HUF', 2), ('IDR', 2), ('ILS', 2),
    ('INR', 2), ('IQD', 3), ('IRR', 2), ('ISK', 0), ('JMD', 2), ('JOD', 3), ('JPY', 0), ('KES', 2),
    ('KGS', 2), ('KHR', 2), ('KMF', 0), ('KPW', 2), ('KRW', 0), ('KWD', 3), ('KYD', 2), ('KZT', 2),
    ('LAK', 2), ('LBP', 2), ('LKR', 2), ('LRD', 2), ('LSL', 2), ('LYD', 3), ('MAD', 2), ('MDL', 2),
    ('MGA', 2), ('MKD', 2), ('MMK', 2), ('MNT', 2), ('MOP', 2), ('MRU', 2), ('MUR', 2), ('MVR', 2),
    ('MWK', 2), ('MXN', 2), ('MXV', 2), ('MYR', 2), ('MZN', 2), ('NAD', 2), ('NGN', 2), ('NIO', 2),
    ('NOK', 2), ('NPR', 2), ('NZD', 2), ('OMR', 3), ('PAB', 2), ('PEN', 2), ('PGK', 2), ('PHP', 2),
    ('PKR', 2), ('PLN', 2), ('PYG', 0), ('QAR', 2), ('RON', 2), ('RSD', 2), ('RUB', 2), ('RWF', 0),
    ('SAR', 2), ('SBD', 2), ('SCR', 2), ('SDG', 2), ('SEK', 2), ('SGD', 2), ('SHP', 2), ('SLE', 2),
    ('SOS', 2), ('SRD', 2), ('SSP', 2), ('STN', 2), ('SVC', 2), ('SYP', 2), ('SZL', 2), ('THB', 2),
    ('TJS', 2), ('TMT', 2), ('TND', 3), ('TOP', 2), ('TRY', 2), ('TTD', 2), ('TWD', 2), ('TZS', 2),
    ('UAH', 2), ('UGX', 0), ('USD', 2), ('USN', 2), ('UYI', 0), ('UYU', 2), ('UYW', 4), ('UZS', 2),
    ('VED', 2), ('VES', 2), ('VND', 0), ('VUV', 0), ('WST', 2), ('XAD', 2), ('XAF', 0), ('XCD', 2), ('XCG', 2),
    ('XOF', 0), ('XPF', 0), ('YER', 2), ('ZAR', 2), ('ZMW', 2), ('ZWG', 2)
)
insert into currencies (code, minor_units) select code, minor_units from wanted
on conflict (code) do update set minor_units = excluded.minor_units
    where currencies.minor_units <> excluded.minor_units;

-- ---------------------------------------------------------------------------------------
-- Access: the roles a verified token may name, and which role may append which event type.
-- Data, read by og_authorize below (the database's check, for every append) and by the
-- GraphQL layer (to answer FORBIDDEN before it asks the database).
-- ---------------------------------------------------------------------------------------
create table if not exists access_roles (
    role                text primary key,
    reads_all           boolean not null,  -- false: only its own customer's rows
    registers_customers boolean not null,
    acts_for_others     boolean not null   -- may name an `actor` other than itself
);

create table if not exists append_grants (
    role        text not null references access_roles,
    scope       text not null default '',  -- a service's scope; '' for the other roles
    event_type  text not null,
    own_orders  boolean not null,           -- only orders (and new orders) of its own customer
    from_status text references order_statuses, -- null: wherever the state machine allows
    constraint append_grants_key primary key (role, scope, event_type)
);

with wanted (role, reads_all, registers_customers, acts_for_others) as (values
    ('customer', false, false, false),
    ('service',  true,  false, true),
    ('staff',    true,  false, false),
    ('admin',    true,  true,  true)
)
insert into access_roles (role, reads_all, registers_customers, acts_for_others)
select * from wanted
on conflict (role) do update set reads_all = excluded.reads_all,
    registers_customers = excluded.registers_customers, acts_for_others = excluded.acts_for_others
    where (access_roles.reads_all, access_roles.registers_customers, access_roles.acts_for_others)
          is distinct from (excluded.reads_all, excluded.registers_customers, excluded.acts_for_others);

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------
-- The numbered upgrade steps (gql/migrations) this database has: all of them when it was
-- created from this file.
create table if not exists og_migrations (
    version    int primary key,
    name       text not null,
    applied_at timestamptz not null default now()
);

-- What the last `migrate` applied of this file and the declarations (a digest of their
-- text): a server refuses a database whose functions are not this release's.
create table if not exists og_schema (
    digest     text not null,
    applied_at timestamptz not null default now()
);

-- A customer's personal data is sealed (gql/store/personal.py): `name` and `email` hold
-- AES-256-GCM ciphertexts under the customer's key in `customer_keys`; `email_index` is the
-- keyed blind index that keeps addresses unique. Forgetting a customer (og_forget_customer)
-- deletes its key and clears its index: the ciphertexts stay, and nobody can open them.
create table if not exists customers (
    customer_id   uuid primary key,
    registered_at timestamptz not null default now(),
    name          bytea not null,
    email         bytea not null,
    email_index   bytea constraint customers_email_index_valid check (octet_length(email_index) = 32),
    forgotten_at  timestamptz,
    constraint customers_forgotten check ((forgotten_at is null) = (email_index is not null)),
    -- what the database can still check of a sealed value: its size (nonce and tag: 28
    -- bytes, a name of 1 to 200 characters, an e-mail of 5 to 320, up to 4 bytes each)
    constraint customers_sealed_size check (octet_length(name) between 29 and 828
                                            and octet_length(email) between 33 and 1308)
);
create unique index if not exists customers_email_index_key on customers (email_index);

-- One key per customer that is not forgotten; the server inserts it with the customer and
-- reads it to open the customer's fields. Only og_forget_customer deletes one.
create table if not exists customer_keys (
    customer_id uuid primary key constraint customer_keys_customer_fkey references customers,
    key         bytea not null constraint customer_keys_key_valid check (octet_length(key) = 32),
    created_at  timestamptz not null default now()
);

-- The database's own secrets, made once: `email_index` keys the e-mails' blind index.
create table if not exists og_secrets (
    name  text primary key,
    value bytea not null
);
insert into og_secrets (name, value)
values ('email_index', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
on conflict (name) do nothing;

create sequence if not exists order_events_position_seq;

-- Counts and sums kept as each append writes them, so that totals cost the same on a large
-- log as on a small one: every append inserts the change it makes (og_tally: an order that
-- moves leaves one status and joins another, its amounts with it; one more event of its type),
-- and og_compact_tallies() folds the changes into one row per (status, currency, event type)
-- now and then. Inserts only: concurrent appends never wait on each other here. The money
-- columns are the read model's (added by the declarations' part below).
create table if not exists order_tallies (
    status     text,  -- null: a row that counts events only
    currency   text,
    event_type text,  -- null: a row that counts orders only
    orders     bigint not null default 0,
    events     bigint not null default 0
);
-- folding deletes as many rows as appends inserted: vacuum after every 10,000, not after a
-- fifth of the table (a few dozen rows once folded)
alter table order_tallies set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
                               autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000);

-- The log. Columns a writer may set: event_id, order_id, event_type, occurred_at,
-- correlation_id, causation_id, actor_type, actor_id, customer_id (OrderPlaced only),
-- payload, schema_version. The append trigger sets stream_version (or checks it),
-- global_position, log_xid, recorded_at and status, so no writer can forge them.
create table if not exists order_events (
    event_id        uuid not null constraint order_events_pkey primary key,
    order_id        uuid not null,
    stream_version  bigint not null,
    global_position bigint not null,
    -- the writing transaction's id, raised to the stream's previous event when lower, so
    -- that (log_xid, global_position) orders the log as readers may safely see it
    log_xid         xid8 not null,
    event_type      text not null,
    occurred_at     timestamptz not null default now(),
    recorded_at     timestamptz not null default now(),
    correlation_id  uuid,
    causation_id    uuid,
    actor_type      text constraint order_events_actor_type_valid check (length(actor_type) <= 100),
    actor_id        text constraint order_events_actor_id_valid check (length(actor_id) <= 200),
    customer_id     uuid not null constraint order_events_customer_fkey references customers,
    payload         jsonb not null default '{}'
        constraint order_events_payload_size check (octet_length(payload::text) <= 65536),
    schema_version  int not null default 1,
    -- promoted from the payload for filtering and constraints (the payload is the truth):
    -- og_promote sets them from each event's data as the declarations say; the declarations
    -- add any other column they promote (gql/store/rules.py)
    amount          numeric,
    currency        text,
    authorization_id text,
    -- the order's status after this event, as og_evolve folded it when it was appended (set
    -- by the append trigger; a value given by a writer is overwritten)
    status          text not null constraint order_events_status_fkey references order_statuses,
    -- the W3C traceparent of the span that appended the event (null when not traced):
    -- relays and live deliveries continue that trace (gql/traces.py)
    trace_parent    text constraint order_events_trace_parent_valid
        check (trace_parent ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'),
    constraint order_events_stream_version_key unique (order_id, stream_version)
);
-- business time within a sane range: no year 0001, nothing past 9999
do $$ begin
    if not exists (select from pg_constraint where conname = 'order_events_occurred_at_range') then
        alter table order_events add constraint order_events_occurred_at_range
            check (occurred_at >= '1970-01-01T00:00:00Z' and occurred_at < '10000-01-01T00:00:00Z');
    end if;
end $$;
create index if not exists order_events_log_idx on order_events (log_xid, global_position);
create index if not exists order_events_type_recorded_idx on order_events (event_type, recorded_at);
create index if not exists order_events_order_type_idx
    on order_events (order_id, event_type, stream_version desc);
create index if not exists order_events_correlation_idx
    on order_events (correlation_id) where correlation_id is not null;
create index if not exists order_events_customer_idx on order_events (customer_id);

-- Durable consumers that stream the log out (NATS JetStream, webhooks; gql/relay.py). Each
-- has a name, a filter and a position: every event up to (after_xid, after_seq) in the log's
-- safe order is delivered (or parked). The one process running a consumer holds the session
-- advisory lock (og_consumer_lock) on the connection that moves its position, so two
-- processes never both deliver and a takeover resumes from here.
create table if not exists stream_consumers (
    name        text primary key
        constraint stream_consumers_name_valid check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    consumer_id int generated always as identity constraint stream_consumers_id_key unique,
    sink        text not null constraint stream_consumers_sink_valid check (sink in ('nats', 'webhook')),
    types       text[],  -- the event types it delivers; null: every type
    after_xid   xid8 not null default '0',
    after_seq   bigint not null default 0,
    delivered   bigint not null default 0,
    created_at  timestamptz not null default now(),
    moved_at    timestamptz,  -- when the position last moved
    stopped     text  -- why it stopped (a sink that stops at an event it could not deliver)
);

-- Events a sink gave up on (a webhook after its last attempt): listed, and delivered again
-- by the consumer's running relay once `replay` is set (`ordergraph consumers replay`).
create table if not exists consumer_parked (
    consumer        text not null references stream_consumers on delete cascade on update cascade,
    event_id        uuid not null,  -- no foreign key: TRUNCATE on the log must meet its own guard
    log_xid         xid8 not null,
    global_position bigint not null,
    attempts        int not null,
    last_error      text not null,
    parked_at       timestamptz not null default now(),
    replay          boolean not null default false,
    primary key (consumer, event_id)
);

-- ---------------------------------------------------------------------------------------
-- Failures: every refusal names its rule in `constraint`, with JSON extensions in `detail`
-- ---------------------------------------------------------------------------------------
-- Parameters are prefixed `p_` throughout, so that no parameter is ever taken for a column
-- (in a LANGUAGE sql function a column of the same name would silently win);
-- tests/test_sql_functions.py holds every function to it.
create or replace function og_fail(p_code text, p_message text, p_extensions jsonb default '{}')
returns void language plpgsql as $$
begin
    raise exception using message = p_message, constraint = p_code, detail = p_extensions::text;
end $$;

create or replace function og_bad_input(p_field text, p_message text) returns void
language sql as $$ select og_fail('bad_user_input', p_message, jsonb_build_object('field', p_field)) $$;

-- ---------------------------------------------------------------------------------------
-- The kinds of event data (gql/declaration.py): each reads one key of a payload, refuses a
-- value that is not of its kind (BAD_USER_INPUT naming the field) and returns it typed
-- ---------------------------------------------------------------------------------------
-- A required non-empty string of at most 200 characters.
create or replace function og_text(p_payload jsonb, p_key text, p_field text default null) returns text
language plpgsql immutable as $$
declare
    v jsonb := p_payload -> p_key;
    f text := coalesce(p_field, p_key);
begin
    if v is null or jsonb_typeof(v) <> 'string' or btrim(v #>> '{}') = '' then
        perform og_bad_input(f, format('%s is required', f));
    elsif length(v #>> '{}') > 200 then
        perform og_bad_input(f, format('%s is longer than 200 characters', f));
    end if;
    return v #>> '{}';
end $$;

-- Money: a non-negative decimal of at most 15 digits before the point, given as a string
-- of digits (preferred) or a JSON number; no exponent, no sign, no spaces.
create or replace function og_money(p_payload jsonb, p_key text, p_field text default null) returns numeric
language plpgsql immutable as $$
declare
    v jsonb := p_payload -> p_key;
    f text := coalesce(p_field, p_key);
    t text := v #>> '{}';
begin
    if v is null or jsonb_typeof(v) not in ('string', 'number') or t !~ '^-?[0-9]+(\.[0-9]+)?$' then
        perform og_bad_input(f, format('%s must be a decimal amount such as "12.50" (digits and a '
                                       'point; no exponent, no spaces)', f));
    elsif t like '-%' then
        perform og_bad_input(f, format('%s must not be negative', f));
    elsif t !~ '^[0-9]{1,15}(\.|$)' then
        perform og_bad_input(f, format('%s has more than 15 digits before the decimal point', f));
    end if;
    return t::numeric;
end $$;

-- The decimals an amount of a currency may have (null: not an ISO 4217 code we know): the
-- `currencies` table written out as one constant (a jsonb object, which finds a key by binary
-- search) that PostgreSQL inlines where it is called: the fold calls it for every event, and
-- a lookup would cost a query each time. Written again from the table by every migrate, like
-- every function here.
do $$ begin
    execute format($f$
        create or replace function og_minor_units(p_currency text) returns int
        language sql immutable as $body$ select (%L::jsonb ->> p_currency)::int $body$
        $f$, (select jsonb_object_agg(c.code, c.minor_units) from currencies c));
end $$;
-- Helpers the append path calls are PL/pgSQL where they read a table or a set: PL/pgSQL keeps
-- their plans for the session, where a LANGUAGE sql function is planned again in every
-- transaction that calls it from PL/pgSQL.

-- An amount of the order's currency: a known ISO 4217 code, and no more decimals than it has.
create or replace function og_amount(p_payload jsonb, p_key text, p_currency text,
                                     p_field text default null)
returns numeric language plpgsql stable as $$
declare
    amount numeric := og_money(p_payload, p_key, p_field);
    minor int := og_minor_units(p_currency);
begin
    if minor is null then
        perform og_bad_input('currency', format('currency %s is not an ISO 4217 code', p_currency));
    elsif scale(amount) > minor then
        perform og_bad_input(coalesce(p_field, p_key), format('%s has %s decimals; %s amounts have at most %s',
            coalesce(p_field, p_key), scale(amount), p_currency, minor));
    end if;
    return amount;
end $$;

-- An amount as the API writes it: with exactly its currency's minor units ("300" JPY,
-- "4.50" EUR, "3.600" KWD).
create or replace function og_money_text(p_amount numeric, p_currency text) returns text
language plpgsql stable as $$
begin
    return round(p_amount, coalesce(og_minor_units(p_currency), scale(p_amount)))::text;
end $$;

create or replace function og_quantity(p_payload jsonb, p_key text, p_field text default null) returns int
language plpgsql immutable as $$
declare
    v jsonb := p_payload -> p_key;
    f text := coalesce(p_field, p_key);
begin
    if v is null or jsonb_typeof(v) <> 'number' or (v #>> '{}') !~ '^-?[0-9]+$'
       or (v #>> '{}')::numeric <= 0 then
        perform og_bad_input(f, format('%s must be a whole number greater than 0', f));
    elsif (v #>> '{}')::numeric > 1000000 then
        perform og_bad_input(f, format('%s must be at most 1000000', f));
    end if;
    return (v #>> '{}')::int;
end $$;

create or replace function og_currency(p_payload jsonb, p_key text) returns text
language plpgsql stable as $$
begin
    if og_minor_units(p_payload ->> p_key) is null then
        perform og_bad_input(p_key, format('%s must be an ISO 4217 code such as "EUR"', p_key));
    end if;
    return p_payload ->> p_key;
end $$;

-- A UUID written as text, or null when the text is not one.
create or replace function og_uuid(p_text text) returns uuid language sql immutable as $$
    select case when p_text ~* '^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$' then p_text::uuid end
$$;

create or replace function og_customer(p_payload jsonb, p_key text) returns uuid
language plpgsql immutable as $$
declare
    id uuid := og_uuid(p_payload ->> p_key);
begin
    if id is null then
        perform og_bad_input(p_key, format('%s must be a customer''s id (a UUID)', p_key));
    end if;
    return id;
end $$;

-- One of a fixed list of codes.
create or replace function og_code(p_payload jsonb, p_key text, p_codes text[]) returns text
language plpgsql immutable as $$
begin
    if coalesce(p_payload ->> p_key, '') <> all(p_codes) then
        perform og_bad_input(p_key, format('%s must be one of %s', p_key, array_to_string(p_codes, ', ')));
    end if;
    return p_payload ->> p_key;
end $$;

-- ---------------------------------------------------------------------------------------
-- Items: a jsonb array of {sku, quantity, unitPrice}, one line per sku
-- ---------------------------------------------------------------------------------------
create or replace function og_items_total(p_items jsonb) returns numeric
language plpgsql immutable as $$
declare
    total numeric := 0;
    n int;
begin
    for n in 0 .. jsonb_array_length(p_items) - 1 loop
        total := total + (p_items -> n ->> 'quantity')::numeric * (p_items -> n ->> 'unitPrice')::numeric;
    end loop;
    return total;
end $$;

create or replace function og_items_add(p_items jsonb, p_sku text, p_quantity int, p_unit_price numeric)
returns jsonb language plpgsql immutable as $$
declare
    n int;
begin
    for n in 0 .. jsonb_array_length(p_items) - 1 loop
        if p_items -> n ->> 'sku' = p_sku then
            return jsonb_set(p_items, array[n::text, 'quantity'],
                             to_jsonb((p_items -> n ->> 'quantity')::int + p_quantity));
        end if;
    end loop;
    return p_items || jsonb_build_array(jsonb_build_object(
        'sku', p_sku, 'quantity', p_quantity, 'unitPrice', p_unit_price::text));
end $$;

-- Lines given in any order, possibly several of one sku, as one line per sku.
create or replace function og_items_merge(p_lines jsonb) returns jsonb
language plpgsql immutable as $$
declare
    merged jsonb := '[]';
    line jsonb;
begin
    for line in select * from jsonb_array_elements(p_lines) loop
        merged := og_items_add(merged, line ->> 'sku', (line ->> 'quantity')::int,
                               (line ->> 'unitPrice')::numeric);
    end loop;
    return merged;
end $$;

create or replace function og_items_remove(p_items jsonb, p_sku text, p_quantity int)
returns jsonb language plpgsql immutable as $$
declare
    n int;
    held int;
begin
    for n in 0 .. jsonb_array_length(p_items) - 1 loop
        if p_items -> n ->> 'sku' = p_sku then
            held := (p_items -> n ->> 'quantity')::int;
            return case when held > p_quantity
                        then jsonb_set(p_items, array[n::text, 'quantity'], to_jsonb(held - p_quantity))
                        else p_items - n end;
        end if;
    end loop;
    return p_items;
end $$;

-- The order's line for a sku (null: it holds none).
create or replace function og_item(p_items jsonb, p_sku text) returns jsonb
language plpgsql immutable as $$
declare
    n int;
begin
    for n in 0 .. jsonb_array_length(p_items) - 1 loop
        if p_items -> n ->> 'sku' = p_sku then
            return p_items -> n;
        end if;
    end loop;
    return null;
end $$;

-- How many of a sku the order holds (0: none).
create or replace function og_items_held(p_items jsonb, p_sku text) returns int
language sql immutable as $$
    select coalesce((og_item(p_items, p_sku) ->> 'quantity')::int, 0)
$$;

-- The unit price the order holds a sku at (null: it holds none).
create or replace function og_items_price(p_items jsonb, p_sku text) returns numeric
language sql immutable as $$
    select (og_item(p_items, p_sku) ->> 'unitPrice')::numeric
$$;

-- Every item of an order as shipped lines.
create or replace function og_items_shipped(p_items jsonb) returns jsonb
language plpgsql immutable as $$
begin
    return (select coalesce(jsonb_agg(jsonb_build_object('sku', i ->> 'sku', 'quantity', i -> 'quantity')), '[]')
            from jsonb_array_elements(p_items) i);
end $$;

-- Validates one item line of an event (in the order's currency) and checks it agrees with
-- the price `p_items` hold for that sku; returns the line with its amount written out.
create or replace function og_check_item(p_items jsonb, p_line jsonb, p_prefix text, p_currency text)
returns jsonb language plpgsql stable as $$
declare
    sku text;
    quantity int;
    price numeric;
    held numeric;
begin
    if p_line is null or jsonb_typeof(p_line) <> 'object' then
        perform og_bad_input(rtrim(p_prefix, '.'), format('%s must be an object', rtrim(p_prefix, '.')));
    end if;
    sku := og_text(p_line, 'sku', p_prefix || 'sku');
    quantity := og_quantity(p_line, 'quantity', p_prefix || 'quantity');
    price := og_amount(p_line, 'unitPrice', p_currency, p_prefix || 'unitPrice');
    held := og_items_price(p_items, sku);
    if held is not null and held <> price then
        perform og_bad_input(p_prefix || 'unitPrice', format(
            'sku %s is already on the order at unitPrice %s', sku, og_money_text(held, p_currency)));
    end if;
    return jsonb_build_object('sku', sku, 'quantity', quantity,
                              'unitPrice', og_money_text(price, p_currency));
end $$;

-- A list of item lines (kind `items`): each line checked, and a sku's lines at one price.
create or replace function og_check_items(p_payload jsonb, p_key text, p_currency text)
returns jsonb language plpgsql stable as $$
declare
    lines jsonb := '[]';
    merged jsonb := '[]';
    line jsonb;
    n int := 0;
begin
    if jsonb_typeof(coalesce(p_payload -> p_key, '[]')) <> 'array' then
        perform og_bad_input(p_key, format('%s must be a list', p_key));
    end if;
    for line in select * from jsonb_array_elements(coalesce(p_payload -> p_key, '[]')) loop
        line := og_check_item(merged, line, format('%s[%s].', p_key, n), p_currency);
        merged := og_items_add(merged, line ->> 'sku', (line ->> 'quantity')::int,
                               (line ->> 'unitPrice')::numeric);
        lines := lines || jsonb_build_array(line);
        n := n + 1;
    end loop;
    return lines;
end $$;

-- Shipped lines (kind `shipped_items`): a non-empty list, each at most what `p_items` hold.
create or replace function og_check_shipped(p_payload jsonb, p_key text, p_items jsonb)
returns jsonb language plpgsql stable as $$
declare
    line jsonb;
    n int := 0;
begin
    if jsonb_typeof(p_payload -> p_key) is distinct from 'array'
       or jsonb_array_length(p_payload -> p_key) = 0 then
        perform og_bad_input(p_key, format('%s must be a non-empty list', p_key));
    end if;
    for line in select * from jsonb_array_elements(p_payload -> p_key) loop
        if og_quantity(line, 'quantity', format('%s[%s].quantity', p_key, n))
           > og_items_held(p_items, og_text(line, 'sku', format('%s[%s].sku', p_key, n))) then
            perform og_bad_input(format('%s[%s].quantity', p_key, n),
                format('the order holds %s of sku %s', og_items_held(p_items, line ->> 'sku'),
                       line ->> 'sku'));
        end if;
        n := n + 1;
    end loop;
    return p_payload -> p_key;
end $$;

-- Whether two payloads say the same: amounts compare by value ("4.5" is "4.50").
create or replace function og_same_data(p_a jsonb, p_b jsonb) returns boolean
language plpgsql immutable as $$
declare
    k text;
begin
    if p_a = p_b then
        return true;
    elsif jsonb_typeof(p_a) = 'string' and jsonb_typeof(p_b) = 'string' then
        return p_a #>> '{}' ~ '^[0-9]+(\.[0-9]+)?$' and p_b #>> '{}' ~ '^[0-9]+(\.[0-9]+)?$'
           and (p_a #>> '{}')::numeric = (p_b #>> '{}')::numeric;
    elsif jsonb_typeof(p_a) = 'object' and jsonb_typeof(p_b) = 'object' then
        if (select array_agg(x order by x) from jsonb_object_keys(p_a) x)
           is distinct from (select array_agg(x order by x) from jsonb_object_keys(p_b) x) then
            return false;
        end if;
        for k in select jsonb_object_keys(p_a) loop
            if not og_same_data(p_a -> k, p_b -> k) then
                return false;
            end if;
        end loop;
        return true;
    elsif jsonb_typeof(p_a) = 'array' and jsonb_typeof(p_b) = 'array'
          and jsonb_array_length(p_a) = jsonb_array_length(p_b) then
        for k in select generate_series(0, jsonb_array_length(p_a) - 1) loop
            if not og_same_data(p_a -> k::int, p_b -> k::int) then
                return false;
            end if;
        end loop;
        return true;
    end if;
    return false;
end $$;

-- ---------------------------------------------------------------------------------------
-- The declarations' part: each event type's checks (og_check), its effect on the read model
-- (og_evolve), its versions (og_upcast), the read model's table and the reference rows, as
-- `ordergraph migrate` generates them from gql/catalogue.py (gql/store/rules.py). Print the
-- whole schema with them: `ordergraph schema --sql`.
-- ---------------------------------------------------------------------------------------
-- @catalogue

create index if not exists orders_current_activity_idx
    on orders_current (last_event_at desc, order_id desc);
create index if not exists orders_current_status_idx
    on orders_current (status, last_event_at desc, order_id desc);
create index if not exists orders_current_customer_idx
    on orders_current (customer_id, last_event_at desc, order_id desc);
create index if not exists orders_current_placed_idx on orders_current (placed_at);

-- Folds a stream (events given in stream order) into its state. The read model,
-- `rebuild-projections` and `Order.stateAt` all fold with og_evolve.
create or replace aggregate og_fold(order_events) (sfunc = og_evolve, stype = orders_current);

-- ---------------------------------------------------------------------------------------
-- Who appends: the verified token's claims, set for the transaction by og_claim
-- ---------------------------------------------------------------------------------------
-- The claims of the current transaction's caller (transaction-local settings).
create or replace function og_claim(p_role text, p_scope text, p_customer uuid, p_subject text)
returns void language plpgsql as $$
begin
    perform set_config('ordergraph.role', coalesce(p_role, ''), true),
            set_config('ordergraph.scope', coalesce(p_scope, ''), true),
            set_config('ordergraph.customer', coalesce(p_customer::text, ''), true),
            set_config('ordergraph.subject', coalesce(p_subject, ''), true);
end $$;

-- Whether a session logged in as the server's role (or a role made a member of it): such
-- sessions must state their caller's claims; migrations and the CLI (as the owner) need not.
create or replace function og_server_session() returns boolean language sql stable as $$
    select exists (select from pg_roles r where r.rolname = session_user and not r.rolsuper
                   and pg_has_role(session_user, 'ordergraph_app', 'member'))
$$;

-- The visibility rule of every read: a viewer (a customer's id; null: reads all) sees the
-- rows of its own customer only. Inlined into the page functions and root lookups.
create or replace function og_sees(p_viewer uuid, p_customer uuid) returns boolean
language sql immutable as $$ select p_viewer is null or p_viewer = p_customer $$;

-- Whether the claimed caller may append `e` to the stream whose state is `cur`. Runs in
-- og_append (before idempotency answers anything) and in the append trigger (every writer).
-- Another customer's order is refused as an unknown one.
-- The claims are og_append's arguments, or, for another writer, those its transaction set
-- (og_claim).
create or replace function og_authorize(
    e order_events, cur orders_current, p_role text, p_scope text, p_customer uuid,
    p_subject text)
returns void language plpgsql stable as $$
declare
    claimed text := nullif(p_role, '');
    claimed_scope text := coalesce(p_scope, '');
    me uuid := p_customer;
    subject text := nullif(p_subject, '');
    r record;
begin
    if claimed is null then
        if og_server_session() then
            perform og_fail('forbidden', 'the server''s connections must claim who appends (og_claim)',
                            jsonb_build_object('eventType', e.event_type));
        end if;
        return;  -- the owner's sessions: migrations, seed, import
    end if;
    -- the role and its grant for this event type, in one lookup
    select a.reads_all, a.acts_for_others, g.role is not null as granted, g.own_orders,
           g.from_status
    into r from access_roles a
    left join append_grants g on g.role = a.role and g.scope = claimed_scope
                             and g.event_type = e.event_type
    where a.role = claimed;
    if not found then
        perform og_fail('forbidden', format('unknown role %s', claimed), '{}');
    end if;
    if not r.reads_all and cur.order_id is not null and cur.customer_id is distinct from me then
        perform og_fail('order_not_found', format('order %s does not exist', e.order_id),
                        jsonb_build_object('orderId', e.order_id));
    end if;
    if not r.granted then
        perform og_fail('forbidden', format('role %s%s may not append %s', claimed,
                        case when claimed_scope <> '' then ' (' || claimed_scope || ')' else '' end, e.event_type),
                        jsonb_build_object('role', claimed, 'eventType', e.event_type));
    end if;
    if r.own_orders and cur.order_id is null and og_starts_stream(e.event_type)
       and coalesce(e.customer_id, og_uuid(e.payload ->> 'customerId')) is distinct from me then
        perform og_fail('forbidden', 'a customer places orders for itself only',
                        jsonb_build_object('field', 'customerId', 'eventType', e.event_type));
    end if;
    if r.from_status is not null and cur.status is distinct from r.from_status
       and exists (select from order_transitions t
                   where t.event_type = e.event_type and t.from_status = cur.status) then
        perform og_fail('forbidden', format('role %s may append %s only while the order is %s',
                        claimed, e.event_type, r.from_status),
                        jsonb_build_object('status', cur.status, 'eventType', e.event_type));
    end if;
    if not r.acts_for_others
       and (e.actor_type, e.actor_id) is distinct from (claimed, subject) then
        perform og_fail('forbidden', format('role %s may not name another actor', claimed),
                        jsonb_build_object('field', 'actor'));
    end if;
end $$;

-- registerCustomer: only roles that register customers, when the server asks.
create or replace function og_before_register() returns trigger language plpgsql
security definer set search_path from current as $$
declare
    claimed text := nullif(current_setting('ordergraph.role', true), '');
begin
    if (claimed is null and og_server_session()) or (claimed is not null and not exists (
            select from access_roles r where r.role = claimed and r.registers_customers)) then
        perform og_fail('forbidden', format('role %s may not register customers',
                        coalesce(claimed, '(none)')), '{}');
    end if;
    return new;
end $$;

create or replace trigger customers_register before insert on customers
    for each row execute function og_before_register();
alter table customers enable always trigger customers_register;
create or replace trigger customer_keys_register before insert on customer_keys
    for each row execute function og_before_register();
alter table customer_keys enable always trigger customer_keys_register;

-- ---------------------------------------------------------------------------------------
-- The append trigger: every writer goes through it
-- ---------------------------------------------------------------------------------------
-- Runs as the owner (security definer): writers need no privileges on the read model.
create or replace function og_before_append() returns trigger language plpgsql
security definer set search_path from current as $$
declare
    cur orders_current;
    nxt orders_current;
begin
    select * into cur from orders_current where order_id = new.order_id for update;
    if cur.version = new.stream_version and cur.last_position = new.global_position then
        -- og_append checked this event and wrote the read model for it already, in this
        -- transaction: nothing else can (writers may not write orders_current, and an event
        -- that claims a version the stream has would break the stream's unique key)
        return new;
    end if;
    new := og_owned(cur, new);
    perform og_authorize(new, cur, current_setting('ordergraph.role', true),
                         current_setting('ordergraph.scope', true),
                         nullif(current_setting('ordergraph.customer', true), '')::uuid,
                         current_setting('ordergraph.subject', true));
    new := (og_record(cur, new)).recorded;
    return new;
end $$;

-- `e` with its stream's customer: the stream's, or, for the event that starts a stream, the one
-- it names (column or data).
create or replace function og_owned(cur orders_current, e order_events) returns order_events
language plpgsql stable as $$
begin
    if cur.order_id is not null then
        e.customer_id := cur.customer_id;
    elsif og_starts_stream(e.event_type) then
        e.customer_id := coalesce(e.customer_id, og_uuid(e.payload ->> 'customerId'));
        if e.customer_id is null then
            perform og_bad_input('customerId', 'customerId is required');
        end if;
        e.payload := e.payload || jsonb_build_object('customerId', e.customer_id);
    end if;
    return e;
end $$;

-- An event `e` checked against the state `cur` and made ready to store (its data as stored,
-- its place in the stream and the log, its promoted columns and the status it leads to), and
-- the read model written for it. Shared by the append trigger (every writer) and og_append.
create or replace function og_record(cur orders_current, e order_events,
                                     out recorded order_events, out nxt orders_current)
language plpgsql as $$
begin
    e.payload := og_check(cur, e);  -- as stored: amounts written out, defaults filled in
    if e.stream_version is distinct from coalesce(cur.version, 0) + 1 and e.stream_version is not null then
        perform og_fail('wrong_expected_version',
            format('stream_version must be %s, the next version of order %s',
                   coalesce(cur.version, 0) + 1, e.order_id),
            jsonb_build_object('currentVersion', coalesce(cur.version, 0)));
    end if;
    e.stream_version := coalesce(cur.version, 0) + 1;
    e.recorded_at := greatest(clock_timestamp(), cur.last_recorded_at);
    e.log_xid := greatest(pg_current_xact_id(), cur.last_log_xid);
    e.global_position := nextval('order_events_position_seq');
    e := og_promote(e);
    nxt := og_evolve(cur, e);
    e.status := nxt.status;  -- the state machine's answer, stored with the event
    perform og_store(cur, nxt);
    perform og_tally(cur, nxt, e.event_type);
    recorded := e;
end $$;

-- The doorbell: the listener's cue that the log has grown; the log is the truth. It runs at
-- commit (a deferred constraint trigger), and only the transaction that takes the doorbell's
-- try-lock (key 7318462022) sends it: a NOTIFY holds one cluster-wide lock from its commit
-- until the commit is flushed, so a NOTIFY from every append would make concurrent commits
-- queue for it instead of sharing WAL flushes. A transaction that finds the lock taken skips
-- the NOTIFY, and is found all the same: the listener, told by the ringing transaction, waits
-- until every transaction that was running then has ended and rings again (gql/listener.py).
-- The payload is constant, so the NOTIFYs of one transaction fold into one.
create or replace function og_after_append() returns trigger language plpgsql as $$
begin
    if pg_try_advisory_xact_lock(7318462022) then
        perform pg_notify('ordergraph_events', '');
    end if;
    return null;
end $$;

create or replace function og_refuse_change() returns trigger language plpgsql as $$
begin
    perform og_fail('log_immutable',
        format('order_events is append-only: %s is not allowed', tg_op), '{}');
    return null;
end $$;

create or replace trigger order_events_append before insert on order_events
    for each row execute function og_before_append();
-- A deferred constraint trigger cannot be created "or replace": it is made when missing, and a
-- database from before the doorbell rang at once from a plain trigger of the same name.
do $$
begin
    if exists (select from pg_trigger where tgrelid = 'order_events'::regclass
               and tgname = 'order_events_notify' and tgconstraint = 0) then
        drop trigger order_events_notify on order_events;
    end if;
    if not exists (select from pg_trigger where tgrelid = 'order_events'::regclass
                   and tgname = 'order_events_notify') then
        create constraint trigger order_events_notify after insert on order_events
            deferrable initially deferred
            for each row execute function og_after_append();
    end if;
end $$;
create or replace trigger order_events_immutable before update or delete on order_events
    for each statement execute function og_refuse_change();
create or replace trigger order_events_no_truncate before truncate on order_events
    for each statement execute function og_refuse_change();
-- ...whatever a session's session_replication_role says (a superuser's "replica" included)
alter table order_events enable always trigger order_events_append;
alter table order_events enable always trigger order_events_notify;
alter table order_events enable always trigger order_events_immutable;
alter table order_events enable always trigger order_events_no_truncate;

-- ---------------------------------------------------------------------------------------
-- The append path's single round trip: idempotency, natural keys, expected version, insert
-- ---------------------------------------------------------------------------------------
-- The last four parameters are the caller's verified claims (og_claim); left out, the
-- session appends as itself (refused for the server's role).
create or replace function og_append(
    p_event_id uuid, p_order_id uuid, p_event_type text, p_payload jsonb,
    p_expected_version bigint, p_occurred_at timestamptz, p_correlation_id uuid,
    p_causation_id uuid, p_actor_type text, p_actor_id text, p_schema_version int,
    p_role text default null, p_scope text default null, p_customer uuid default null,
    p_subject text default null, p_trace_parent text default null,
    out deduplicated boolean, out event order_events, out current orders_current)
language plpgsql security definer set search_path from current as $$
declare
    cur orders_current;
    held record;
    folded record;
begin
  <<append>>  -- a duplicate leaves this block early
  begin
    -- lock the stream head first: retries and concurrent appends to one stream queue here
    select * into cur from orders_current where order_id = p_order_id for update;
    -- who asks first: another customer's order is unknown, even to a retried event id
    event.order_id := p_order_id;
    event.event_type := p_event_type;
    event.payload := p_payload;
    event.actor_type := p_actor_type;
    event.actor_id := p_actor_id;
    if p_role is not null then
        perform og_authorize(event, cur, p_role, p_scope, p_customer, p_subject);
    else  -- the session appends as itself, with the claims it set (og_claim)
        perform og_authorize(event, cur, current_setting('ordergraph.role', true),
                             current_setting('ordergraph.scope', true),
                             nullif(current_setting('ordergraph.customer', true), '')::uuid,
                             current_setting('ordergraph.subject', true));
    end if;
    select * into event from order_events where event_id = p_event_id;
    if found then
        if event.order_id = p_order_id and event.event_type = p_event_type
           and og_same_data(event.payload - array(select k from unnest(og_defaulted(p_event_type)) k
                                                  where not p_payload ? k), p_payload) then
            deduplicated := true;
            exit append;
        end if;
        perform og_fail('idempotency_conflict',
            format('event %s was already recorded with different content', p_event_id),
            jsonb_build_object('field', 'eventId', 'eventId', p_event_id));
    end if;
    -- a natural key (unique data) names the event that holds it: the same again is a retry
    select * into held from og_holder(p_event_type, p_payload);
    if held.natural_key is not null then
        event := held.holder;
        if event.order_id = p_order_id and event.event_type = p_event_type
           and og_same_data(event.payload - array(select k from unnest(og_defaulted(p_event_type)) k
                                                  where not p_payload ? k), p_payload) then
            deduplicated := true;
            exit append;
        end if;
        perform og_fail('idempotency_conflict',
            format('%s %s was already used for another event', held.natural_key,
                   p_payload ->> held.natural_key),
            jsonb_build_object('field', held.natural_key));
    end if;
    if og_starts_stream(p_event_type) then
        if cur.order_id is null and coalesce(p_expected_version, 0) <> 0 then
            perform og_fail('wrong_expected_version',
                format('expected version %s but order %s does not exist yet', p_expected_version, p_order_id),
                jsonb_build_object('currentVersion', 0));
        end if;
    elsif cur.order_id is not null and p_expected_version is not null
          and p_expected_version <> cur.version then
        perform og_fail('wrong_expected_version',
            format('expected version %s but order %s is at version %s',
                   p_expected_version, p_order_id, cur.version),
            jsonb_build_object('currentVersion', cur.version));
    end if;
    -- the event as the append trigger would record it, and the read model written for it:
    -- the trigger then finds it done (one check, one fold, no second lookup)
    event := null;
    event.event_id := p_event_id;
    event.order_id := p_order_id;
    event.event_type := p_event_type;
    event.occurred_at := coalesce(p_occurred_at, now());
    event.correlation_id := p_correlation_id;
    event.causation_id := p_causation_id;
    event.actor_type := p_actor_type;
    event.actor_id := p_actor_id;
    event.payload := p_payload;
    event.trace_parent := p_trace_parent;
    event.schema_version := coalesce(p_schema_version, (select v.schema_version
                                     from event_schema_versions v where v.event_type = p_event_type), 1);
    folded := og_record(cur, og_owned(cur, event));
    event := folded.recorded;
    current := folded.nxt;
    insert into order_events select event.*;
    deduplicated := false;
    return;
  end append;
  -- a duplicate: the read model as it is now, so callers need no second round trip
  select * into current from orders_current where order_id = p_order_id;
end $$;

-- registerCustomer in one round trip: the customer (sealed by the server, with its key),
-- inserted unless it exists (`existed`, with its key to compare the details), under the
-- caller's claims (the trigger above refuses roles that may not register).
create or replace function og_register_customer(
    p_customer_id uuid, p_name bytea, p_email bytea, p_email_index bytea, p_key bytea,
    p_role text default null, p_scope text default null, p_customer uuid default null,
    p_subject text default null)
returns table (customer_id uuid, name bytea, email bytea, registered_at timestamptz,
               forgotten_at timestamptz, key bytea, existed boolean)
language plpgsql as $$
#variable_conflict use_column
begin
    if p_role is not null then
        perform og_claim(p_role, p_scope, p_customer, p_subject);
    end if;
    return query
    with inserted as (
        insert into customers (customer_id, name, email, email_index)
        values (p_customer_id, p_name, p_email, p_email_index)
        on conflict (customer_id) do nothing
        returning customer_id, name, email, registered_at, forgotten_at
    ), keyed as (
        insert into customer_keys (customer_id, key) select i.customer_id, p_key from inserted i
    )
    select i.*, p_key, false from inserted i
    union all
    select c.customer_id, c.name, c.email, c.registered_at, c.forgotten_at, k.key, true
    from customers c left join customer_keys k on k.customer_id = c.customer_id
    where c.customer_id = p_customer_id and not exists (select from inserted);
end $$;

-- Whether CustomerForgotten may be appended to an order (its declaration's condition): its
-- customer's key is gone, and the order does not record the fact yet.
create or replace function og_forgettable(p_customer uuid, p_order uuid) returns boolean
language sql stable as $$
    select not exists (select from customer_keys k where k.customer_id = p_customer)
       and not exists (select from order_events x where x.order_id = p_order
                                                    and x.event_type = 'CustomerForgotten')
$$;

-- forgetCustomer: an admin (or the owner, from the command line) destroys the customer's
-- key, so its sealed fields can never be read again, clears its e-mail's blind index, and
-- appends CustomerForgotten to each of its orders (one correlation id for them all).
-- Runs as the owner: the server's role may not delete keys or change customers itself.
create or replace function og_forget_customer(
    p_customer_id uuid, p_role text default null, p_scope text default null,
    p_customer uuid default null, p_subject text default null)
returns timestamptz language plpgsql security definer set search_path from current as $$
declare
    claimed text;
    forgotten timestamptz;
    correlation uuid := gen_random_uuid();
    o record;
begin
    if p_role is not null then
        perform og_claim(p_role, p_scope, p_customer, p_subject);
    end if;
    claimed := nullif(current_setting('ordergraph.role', true), '');
    if (claimed is null and og_server_session()) or claimed <> 'admin' then
        perform og_fail('forbidden', format('role %s may not forget customers',
                        coalesce(claimed, '(none)')), '{}');
    end if;
    select c.forgotten_at into forgotten from customers c
    where c.customer_id = p_customer_id for update;
    if not found then
        perform og_fail('customer_not_found', format('no customer %s', p_customer_id),
                        jsonb_build_object('field', 'customerId'));
    elsif forgotten is not null then
        perform og_fail('customer_already_forgotten',
                        format('customer %s was forgotten at %s', p_customer_id, forgotten),
                        jsonb_build_object('field', 'customerId'));
    end if;
    delete from customer_keys k where k.customer_id = p_customer_id;
    update customers c set forgotten_at = now(), email_index = null
    where c.customer_id = p_customer_id returning c.forgotten_at into forgotten;
    for o in select x.order_id from orders_current x where x.customer_id = p_customer_id
             order by x.order_id loop
        perform og_append(
            p_event_id => gen_random_uuid(), p_order_id => o.order_id,
            p_event_type => 'CustomerForgotten', p_payload => '{}', p_expected_version => null,
            p_occurred_at => forgotten, p_correlation_id => correlation, p_causation_id => null,
            p_actor_type => claimed,
            p_actor_id => nullif(current_setting('ordergraph.subject', true), ''),
            p_schema_version => null);
    end loop;
    return forgotten;
end $$;

-- ---------------------------------------------------------------------------------------
-- Reads: pages of the read model and the log, as inlinable SQL functions shared by the
-- store's named queries and the compiled GraphQL fast path (gql/schema/compiled.py); they
-- are called with named arguments (`p_lim => 20`), so an argument cannot land in another's place
-- ---------------------------------------------------------------------------------------

-- The filter of an orders page, written once for each of og_orders_page's branches.
create or replace function og_orders_page_filter(
    o orders_current, p_after_at timestamptz, p_after_id uuid, p_statuses text[], p_customer uuid,
    p_placed_after timestamptz, p_placed_before timestamptz, p_viewer uuid)
returns boolean language sql immutable as $$
    select og_sees(p_viewer, o.customer_id)
       and (p_after_at is null or (o.last_event_at, o.order_id) < (p_after_at, p_after_id))
       -- the same bound, in a form an index scan starts from in any plan
       and (o.last_event_at, o.order_id) < (coalesce(p_after_at, 'infinity'),
                                            coalesce(p_after_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
       and (p_statuses is null or o.status = any(p_statuses))
       and (p_customer is null or o.customer_id = p_customer)
       and (p_placed_after is null or o.placed_at > p_placed_after)
       and (p_placed_before is null or o.placed_at < p_placed_before)
$$;

-- Orders, most recently active first; the keyset is (last_event_at, order_id) descending.
-- `p_viewer` scopes every page to one customer's rows (og_sees); null reads all.
-- Each branch is the filter, less what its gate settles, and a gate on the given arguments: exactly
-- one branch reads rows and it walks the index that answers it: one customer's orders (the
-- argument's, or the only customer a viewer sees), the first `p_lim` of each status asked for,
-- or everything by activity. The gates and the keyset's coalesced bounds hold in a generic
-- plan too, which PostgreSQL reuses instead of planning each execution.
create or replace function og_orders_page(
    p_after_at timestamptz, p_after_id uuid, p_statuses text[], p_customer uuid,
    p_placed_after timestamptz, p_placed_before timestamptz, p_lim bigint, p_viewer uuid)
returns setof orders_current language sql stable as $$
    select p.* from (
        (select o.* from orders_current o
         where coalesce(p_customer, p_viewer) is not null
           and o.customer_id = coalesce(p_customer, p_viewer)
           and og_orders_page_filter(o, p_after_at, p_after_id, p_statuses, p_customer,
                                     p_placed_after, p_placed_before, p_viewer)
         order by o.last_event_at desc, o.order_id desc limit p_lim)
        union all
        (select o.* from (select distinct s from unnest(p_statuses) s) s cross join lateral (
             select c.* from orders_current c
             where c.status = s.s
               -- the gates settle the statuses (c.status is one of them), the customer and
               -- the viewer (both null): not tested again, the scan keeps to its index
               and og_orders_page_filter(c, p_after_at, p_after_id, null, null,
                                         p_placed_after, p_placed_before, null)
             order by c.last_event_at desc, c.order_id desc limit p_lim) o
         where coalesce(p_customer, p_viewer) is null)
        union all
        (select o.* from orders_current o
         where coalesce(p_customer, p_viewer) is null and p_statuses is null
           and og_orders_page_filter(o, p_after_at, p_after_id, null, null,
                                     p_placed_after, p_placed_before, null)
         order by o.last_event_at desc, o.order_id desc limit p_lim)
    ) p
    order by p.last_event_at desc, p.order_id desc
    limit p_lim
$$;

-- The key an order's timeline is sorted by, before stream_version.
create or replace function og_timeline_key(e order_events, p_order_by text) returns timestamptz
language sql immutable as $$
    select case p_order_by when 'occurred_at' then e.occurred_at
                           when 'recorded_at' then e.recorded_at
                           else '-infinity'::timestamptz end
$$;

-- One order's timeline page; the cursor is a stream version.
create or replace function og_timeline_page(
    p_stream uuid, p_types text[], p_after_version bigint, p_order_by text, p_lim bigint)
returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u
    where x.order_id = p_stream
      and (p_types is null or x.event_type = any(p_types))
      and (p_after_version is null or (og_timeline_key(x, p_order_by), x.stream_version) > (
          select og_timeline_key(a, p_order_by), a.stream_version from order_events a
          where a.order_id = p_stream and a.stream_version = p_after_version))
    order by og_timeline_key(x, p_order_by), x.stream_version
    limit p_lim
$$;

-- One event by id, upcast.
create or replace function og_event(p_id uuid) returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u where x.event_id = p_id
$$;

-- The filter of a log page, written once for each of og_log_page's branches.
create or replace function og_log_page_filter(
    x order_events, p_after_xid xid8, p_after_seq bigint, p_types text[], p_stream uuid,
    p_correlation uuid, p_occurred_after timestamptz, p_occurred_before timestamptz, p_viewer uuid)
returns boolean language sql stable as $$
    select og_sees(p_viewer, x.customer_id)
       and (x.log_xid, x.global_position) > (p_after_xid, p_after_seq)
       and x.log_xid < pg_snapshot_xmin(pg_current_snapshot())
       and (p_types is null or x.event_type = any(p_types))
       and (p_stream is null or x.order_id = p_stream)
       and (p_correlation is null or x.correlation_id = p_correlation)
       and (p_occurred_after is null or x.occurred_at > p_occurred_after)
       and (p_occurred_before is null or x.occurred_at < p_occurred_before)
$$;

-- The global log in its safe order, only below the oldest running transaction: once a
-- reader has seen a position, no event can appear before it later. As in og_orders_page,
-- a gate on the given arguments picks the one branch that reads, each from its index: one
-- stream's events, one correlation's, one customer's (the viewer's), or the log itself.
create or replace function og_log_page(
    p_after_xid xid8, p_after_seq bigint, p_types text[], p_stream uuid, p_correlation uuid,
    p_occurred_after timestamptz, p_occurred_before timestamptz, p_lim bigint, p_viewer uuid)
returns setof order_events language sql stable as $$
    select u.* from (
        (select x.* from order_events x
         where p_stream is not null and x.order_id = p_stream
           and og_log_page_filter(x, p_after_xid, p_after_seq, p_types, p_stream, p_correlation,
                                  p_occurred_after, p_occurred_before, p_viewer)
         order by x.log_xid, x.global_position limit p_lim)
        union all
        (select x.* from order_events x
         where p_stream is null and p_correlation is not null and x.correlation_id = p_correlation
           and og_log_page_filter(x, p_after_xid, p_after_seq, p_types, null, p_correlation,
                                  p_occurred_after, p_occurred_before, p_viewer)
         order by x.log_xid, x.global_position limit p_lim)
        union all
        (select x.* from order_events x
         where p_stream is null and p_correlation is null and p_viewer is not null
           and x.customer_id = p_viewer
           and og_log_page_filter(x, p_after_xid, p_after_seq, p_types, null, null,
                                  p_occurred_after, p_occurred_before, p_viewer)
         order by x.log_xid, x.global_position limit p_lim)
        union all
        (select x.* from order_events x
         where p_stream is null and p_correlation is null and p_viewer is null
           and og_log_page_filter(x, p_after_xid, p_after_seq, p_types, null, null,
                                  p_occurred_after, p_occurred_before, null)
         order by x.log_xid, x.global_position limit p_lim)
    ) x cross join lateral og_upcast(x) u
    order by x.log_xid, x.global_position
    limit p_lim
$$;

-- ---------------------------------------------------------------------------------------
-- Counts: how many rows a connection's filters select, all pages together
-- ---------------------------------------------------------------------------------------
-- The orders a page's filters select (its cursor aside). Filtered by status alone (or not at
-- all) the tallies answer, whatever the read model's size; one customer's orders and a
-- placement range are counted from the index that answers each.
create or replace function og_orders_count(
    p_statuses text[], p_customer uuid, p_placed_after timestamptz, p_placed_before timestamptz,
    p_viewer uuid)
returns bigint language sql stable as $$
    select case
        when coalesce(p_customer, p_viewer) is null and p_placed_after is null and p_placed_before is null
        then (select coalesce(sum(t.orders), 0)::bigint from order_tallies t
              where t.status is not null and (p_statuses is null or t.status = any(p_statuses)))
        when coalesce(p_customer, p_viewer) is not null
        then (select count(*) from orders_current o
              where o.customer_id = coalesce(p_customer, p_viewer)
                and og_orders_page_filter(o, null, null, p_statuses, p_customer, p_placed_after,
                                          p_placed_before, p_viewer))
        else (select count(*) from orders_current o
              where o.placed_at > coalesce(p_placed_after, '-infinity')
                and o.placed_at < coalesce(p_placed_before, 'infinity')
                and (p_statuses is null or o.status = any(p_statuses)))
    end
$$;

-- The events of one order's timeline, of some types.
create or replace function og_timeline_count(p_stream uuid, p_types text[]) returns bigint
language sql stable as $$
    select count(*) from order_events x
    where x.order_id = p_stream and (p_types is null or x.event_type = any(p_types))
$$;

-- The events a log page's filters select (its cursor aside). Filtered by type alone (or not at
-- all) the tallies answer, counting every committed event; one stream's, one correlation's
-- and one customer's events are counted from their index, a time range from the log.
create or replace function og_log_count(
    p_types text[], p_stream uuid, p_correlation uuid, p_occurred_after timestamptz,
    p_occurred_before timestamptz, p_viewer uuid)
returns bigint language sql stable as $$
    select case
        when p_stream is null and p_correlation is null and p_viewer is null
             and p_occurred_after is null and p_occurred_before is null
        then (select coalesce(sum(t.events), 0)::bigint from order_tallies t
              where t.event_type is not null and (p_types is null or t.event_type = any(p_types)))
        when p_stream is not null
        then (select count(*) from order_events x where x.order_id = p_stream
                and og_log_page_filter(x, '0', 0, p_types, p_stream, p_correlation,
                                       p_occurred_after, p_occurred_before, p_viewer))
        when p_correlation is not null
        then (select count(*) from order_events x where x.correlation_id = p_correlation
                and og_log_page_filter(x, '0', 0, p_types, null, p_correlation,
                                       p_occurred_after, p_occurred_before, p_viewer))
        when p_viewer is not null
        then (select count(*) from order_events x where x.customer_id = p_viewer
                and og_log_page_filter(x, '0', 0, p_types, null, null,
                                       p_occurred_after, p_occurred_before, p_viewer))
        else (select count(*) from order_events x
              where og_log_page_filter(x, '0', 0, p_types, null, null,
                                       p_occurred_after, p_occurred_before, null))
    end
$$;

-- The declarations' reads (og_order_statistics: orders by status and currency, with the sums
-- of the read model's amounts) are applied here.
-- @catalogue reads

-- An order's state after its events up to a version and/or a time on one axis
-- ('occurred_at' or 'recorded_at'), folded with the read model's own og_evolve. One row;
-- before the first event, the order's origin (og_origin: no status, version 0, amounts 0
-- in its currency).
create or replace function og_state_at(
    p_stream uuid, p_up_to_version bigint, p_as_of timestamptz, p_axis text)
returns setof orders_current language sql stable as $$
    -- the fold in FROM: computed once (a `(…).*` of an expression would repeat it per column)
    select s.* from (
        select og_fold(e order by e.stream_version) as folded from order_events e
        where e.order_id = p_stream
          -- one range on the stream's index, also in a generic plan (an "is null or" here
          -- made PostgreSQL plan every execution of a statement that reads stateAt again)
          and e.stream_version <= coalesce(p_up_to_version, 9223372036854775807)
          and (p_as_of is null or (case p_axis when 'recorded_at' then e.recorded_at
                                               else e.occurred_at end) <= p_as_of)) f
    cross join lateral (
        select (coalesce(f.folded, (select og_origin(o) from orders_current o
                                    where o.order_id = p_stream))).*) s
$$;

-- Text forms the API shows, identical whichever path renders them.
create or replace function og_iso(p_time timestamptz) returns text
language sql stable as $$
    select to_char(p_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || case when extract(microseconds from p_time)::bigint % 1000000 = 0 then ''
                else to_char(p_time at time zone 'UTC', '.US') end
        || '+00:00'
$$;

create or replace function og_position(p_xid xid8, p_seq bigint) returns text
language sql immutable as $$
    select lpad(to_hex(p_xid::text::bigint), 16, '0') || '-' || lpad(to_hex(p_seq), 16, '0')
$$;

create or replace function og_cursor(variadic p_parts text[]) returns text
language sql stable as $$
    select rtrim(translate(replace(encode(convert_to(array_to_string(p_parts, '|'), 'UTF8'),
                                          'base64'), E'\n', ''), '+/', '-_'), '=')
$$;

-- ---------------------------------------------------------------------------------------
-- Privileges: the server's role reads everything and may only add (events, customers)
-- ---------------------------------------------------------------------------------------
create or replace function og_apply_privileges() returns void language plpgsql as $$
declare
    relations text := array_to_string(og_relations(), ', ');
begin
    execute format('revoke all on %s from public, ordergraph_app', relations);
    -- every relation but the position sequence, which only the append trigger advances
    execute format('grant select on %s to ordergraph_app', array_to_string(
        array_remove(og_relations(), 'order_events_position_seq'), ', '));
    grant insert on order_events, customers, customer_keys to ordergraph_app;
    -- relays run as the server's role: they keep their consumers' positions
    grant insert, update, delete on stream_consumers, consumer_parked to ordergraph_app;
end $$;
select og_apply_privileges();
