-- ordergraph: the whole database schema, as a new database gets it. `ordergraph migrate`
-- applies it to an empty database and records every file of gql/migrations as applied;
-- a database made by an earlier release is upgraded by those numbered files instead (see
-- gql/store/migrations.py). Every statement is idempotent, so applying it again changes
-- nothing and keeps the data.
--
-- The rules of the order domain live here, once: the state machine is a table, the checks
-- and the projection are functions, and triggers apply them to every writer, plain SQL
-- INSERTs included. Python maps the named failures (`constraint` of each error) to the
-- API error codes in gql/errors.py.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

-- ---------------------------------------------------------------------------------------
-- Roles (cluster-wide, shared by every ordergraph database on the server):
--   ordergraph_owner  owns every object below; migrations run as it
--   ordergraph_app    what the server connects as: owns nothing, reads, appends events and
--                     registers customers; no UPDATE, DELETE or TRUNCATE anywhere
-- Creating them needs CREATEROLE the first time; og_apply_privileges() (end of file) grants.
-- ---------------------------------------------------------------------------------------
-- The tables and sequences that are ordergraph's, named once: ownership passes to the owner
-- and privileges are granted from this list, and nothing else in the schema is touched.
create or replace function og_relations() returns text[] language sql immutable as $$
    select array['order_statuses', 'order_transitions', 'currencies', 'customers',
                 'order_events', 'orders_current', 'order_events_position_seq', 'access_roles',
                 'append_grants', 'event_schema_versions', 'og_migrations']
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

insert into order_statuses (status, is_final) values
    ('PLACED', false), ('PAYMENT_AUTHORIZED', false), ('PAID', false),
    ('SHIPPED', true), ('CANCELLED', true)
on conflict (status) do update set is_final = excluded.is_final
    where order_statuses.is_final is distinct from excluded.is_final;

with wanted (event_type, from_status, to_status) as (values
    ('OrderPlaced',            null,                 'PLACED'),
    ('ItemAddedToOrder',       'PLACED',             'PLACED'),
    ('ItemRemovedFromOrder',   'PLACED',             'PLACED'),
    ('PaymentAuthorized',      'PLACED',             'PAYMENT_AUTHORIZED'),
    ('PaymentCaptured',        'PAYMENT_AUTHORIZED', 'PAID'),
    ('PaymentCaptureReversed', 'PAID',               'PAYMENT_AUTHORIZED'),
    ('OrderShipped',           'PAID',               'SHIPPED'),
    ('OrderCancelled',         'PLACED',             'CANCELLED'),
    ('OrderCancelled',         'PAYMENT_AUTHORIZED', 'CANCELLED'),
    ('OrderCancelled',         'PAID',               'CANCELLED')
), removed as (
    delete from order_transitions t
    where not exists (select from wanted w where w.event_type = t.event_type
                      and w.from_status is not distinct from t.from_status
                      and w.to_status = t.to_status)
)
insert into order_transitions (event_type, from_status, to_status)
select event_type, from_status, to_status from wanted w
where not exists (select from order_transitions t where w.event_type = t.event_type
                  and w.from_status is not distinct from t.from_status
                  and w.to_status = t.to_status);

-- The current schema_version of each event type's payload. Writers that give no version
-- write this one; events stored with an older one are upcast when read (og_upcast).
create table if not exists event_schema_versions (
    event_type     text primary key,
    schema_version int not null constraint event_schema_versions_positive check (schema_version >= 1)
);

insert into event_schema_versions (event_type, schema_version) values
    ('OrderPlaced', 1), ('ItemAddedToOrder', 1), ('ItemRemovedFromOrder', 1),
    ('PaymentAuthorized', 1), ('PaymentCaptured', 1), ('PaymentCaptureReversed', 1),
    ('OrderShipped', 1), ('OrderCancelled', 2)
on conflict (event_type) do update set schema_version = excluded.schema_version
    where event_schema_versions.schema_version is distinct from excluded.schema_version;

-- Currencies: the ISO 4217 codes in use, with their minor units (decimals an amount may
-- have). Orders name one; every amount of the order follows its minor units.
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
    ('VED', 2), ('VES', 2), ('VND', 0), ('VUV', 0), ('WST', 2), ('XAF', 0), ('XCD', 2), ('XCG', 2),
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

with wanted (role, scope, event_type, own_orders, from_status) as (values
    ('customer', '',           'OrderPlaced',            true,  null),
    ('customer', '',           'ItemAddedToOrder',       true,  null),
    ('customer', '',           'ItemRemovedFromOrder',   true,  null),
    ('customer', '',           'OrderCancelled',         true,  'PLACED'),
    ('service',  'payments',   'PaymentAuthorized',      false, null),
    ('service',  'payments',   'PaymentCaptured',        false, null),
    ('service',  'payments',   'PaymentCaptureReversed', false, null),
    ('service',  'fulfilment', 'OrderShipped',           false, null),
    ('staff',    '',           'OrderCancelled',         false, null),
    ('admin',    '',           'OrderPlaced',            false, null),
    ('admin',    '',           'ItemAddedToOrder',       false, null),
    ('admin',    '',           'ItemRemovedFromOrder',   false, null),
    ('admin',    '',           'PaymentAuthorized',      false, null),
    ('admin',    '',           'PaymentCaptured',        false, null),
    ('admin',    '',           'PaymentCaptureReversed', false, null),
    ('admin',    '',           'OrderShipped',           false, null),
    ('admin',    '',           'OrderCancelled',         false, null)
), removed as (
    delete from append_grants g
    where not exists (select from wanted w where (w.role, w.scope, w.event_type)
                      = (g.role, g.scope, g.event_type))
)
insert into append_grants (role, scope, event_type, own_orders, from_status)
select role, scope, event_type, own_orders, from_status from wanted
on conflict (role, scope, event_type) do update set
    own_orders = excluded.own_orders, from_status = excluded.from_status
    where (append_grants.own_orders, append_grants.from_status)
          is distinct from (excluded.own_orders, excluded.from_status);

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

create table if not exists customers (
    customer_id   uuid primary key,
    name          text not null
        constraint customers_name_valid check (btrim(name) <> '' and length(name) <= 200),
    email         text not null
        constraint customers_email_valid check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and length(email) <= 320),
    registered_at timestamptz not null default now()
);
create unique index if not exists customers_email_key on customers (lower(email));

create sequence if not exists order_events_position_seq;

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
    -- promoted from the payload for filtering and constraints (the payload is the truth)
    amount          numeric generated always as (
        case when event_type in ('PaymentAuthorized', 'PaymentCaptured', 'PaymentCaptureReversed')
             then (payload ->> 'amount')::numeric end) stored,
    currency        text generated always as (
        case when event_type = 'OrderPlaced' then payload ->> 'currency' end) stored,
    authorization_id text generated always as (
        case when event_type = 'PaymentAuthorized' then payload ->> 'authorizationId' end) stored,
    -- the order's status after this event, as og_evolve folded it when it was appended (set
    -- by the append trigger; a value given by a writer is overwritten)
    status          text not null constraint order_events_status_fkey references order_statuses,
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
create unique index if not exists order_events_authorization_key
    on order_events (authorization_id) where event_type = 'PaymentAuthorized';

-- The read model: one row per order, the fold of its stream (see og_evolve).
create table if not exists orders_current (
    order_id          uuid primary key,
    customer_id       uuid not null constraint orders_current_customer_fkey references customers,
    status            text references order_statuses,
    currency          text not null,
    total_amount      numeric not null default 0,
    authorized_amount numeric not null default 0,
    captured_amount   numeric not null default 0,
    items             jsonb not null default '[]',   -- [{sku, quantity, unitPrice}], by sku
    version           bigint not null,
    placed_at         timestamptz not null,
    last_event_at     timestamptz not null,             -- latest occurred_at of the stream
    last_recorded_at  timestamptz not null,
    last_log_xid      xid8 not null,
    last_position     bigint not null
);
create index if not exists orders_current_activity_idx
    on orders_current (last_event_at desc, order_id desc);
create index if not exists orders_current_status_idx
    on orders_current (status, last_event_at desc, order_id desc);
create index if not exists orders_current_customer_idx
    on orders_current (customer_id, last_event_at desc, order_id desc);
create index if not exists orders_current_placed_idx on orders_current (placed_at);

-- ---------------------------------------------------------------------------------------
-- Failures: every refusal names its rule in `constraint`, with JSON extensions in `detail`
-- ---------------------------------------------------------------------------------------
create or replace function og_fail(code text, message text, extensions jsonb default '{}')
returns void language plpgsql as $$
begin
    raise exception using message = message, constraint = code, detail = extensions::text;
end $$;

create or replace function og_bad_input(field text, message text) returns void
language sql as $$ select og_fail('bad_user_input', message, jsonb_build_object('field', field)) $$;

-- A required non-empty string of at most 200 characters.
create or replace function og_text(payload jsonb, key text, field text default null) returns text
language plpgsql immutable as $$
declare v jsonb := payload -> key;
begin
    if v is null or jsonb_typeof(v) <> 'string' or btrim(v #>> '{}') = '' then
        perform og_bad_input(coalesce(field, key), format('%s is required', coalesce(field, key)));
    elsif length(v #>> '{}') > 200 then
        perform og_bad_input(coalesce(field, key), format('%s is longer than 200 characters', coalesce(field, key)));
    end if;
    return v #>> '{}';
end $$;

-- Money: a non-negative decimal of at most 15 digits before the point, given as a string
-- of digits (preferred) or a JSON number; no exponent, no sign, no spaces.
create or replace function og_money(payload jsonb, key text, field text default null) returns numeric
language plpgsql immutable as $$
declare
    v jsonb := payload -> key;
    f text := coalesce(field, key);
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

-- An amount of the order's currency: a known ISO 4217 code, and no more decimals than it has.
create or replace function og_amount(payload jsonb, key text, currency text, field text default null)
returns numeric language plpgsql stable as $$
declare
    amount numeric := og_money(payload, key, field);
    minor int := (select c.minor_units from currencies c where c.code = currency);
begin
    if minor is null then
        perform og_bad_input('currency', format('currency %s is not an ISO 4217 code', currency));
    elsif scale(amount) > minor then
        perform og_bad_input(coalesce(field, key), format('%s has %s decimals; %s amounts have at most %s',
            coalesce(field, key), scale(amount), currency, minor));
    end if;
    return amount;
end $$;

create or replace function og_quantity(payload jsonb, key text, field text default null) returns int
language plpgsql immutable as $$
declare v jsonb := payload -> key;
begin
    if v is null or jsonb_typeof(v) <> 'number' or (v #>> '{}') !~ '^-?[0-9]+$'
       or (v #>> '{}')::numeric <= 0 then
        perform og_bad_input(coalesce(field, key),
            format('%s must be a whole number greater than 0', coalesce(field, key)));
    elsif (v #>> '{}')::numeric > 1000000 then
        perform og_bad_input(coalesce(field, key),
            format('%s must be at most 1000000', coalesce(field, key)));
    end if;
    return (v #>> '{}')::int;
end $$;

-- ---------------------------------------------------------------------------------------
-- Items: a jsonb array of {sku, quantity, unitPrice}, one line per sku
-- ---------------------------------------------------------------------------------------
create or replace function og_items_total(items jsonb) returns numeric
language sql immutable as $$
    select coalesce(sum((i ->> 'quantity')::numeric * (i ->> 'unitPrice')::numeric), 0)
    from jsonb_array_elements(items) i
$$;

create or replace function og_items_add(items jsonb, sku text, quantity int, unit_price text)
returns jsonb language sql immutable as $$
    select case
        when exists (select from jsonb_array_elements(items) i where i ->> 'sku' = sku) then
            (select jsonb_agg(case when i ->> 'sku' = sku
                    then jsonb_set(i, '{quantity}', to_jsonb((i ->> 'quantity')::int + quantity))
                    else i end order by n)
             from jsonb_array_elements(items) with ordinality as t(i, n))
        else items || jsonb_build_array(jsonb_build_object(
                 'sku', sku, 'quantity', quantity, 'unitPrice', unit_price))
    end
$$;

create or replace function og_items_remove(items jsonb, sku text, quantity int)
returns jsonb language sql immutable as $$
    select coalesce(jsonb_agg(case when i ->> 'sku' = sku
                then jsonb_set(i, '{quantity}', to_jsonb((i ->> 'quantity')::int - quantity))
                else i end order by n)
              filter (where i ->> 'sku' <> sku or (i ->> 'quantity')::int > quantity), '[]')
    from jsonb_array_elements(items) with ordinality as t(i, n)
$$;

create or replace function og_items_held(items jsonb, sku text) returns int
language sql immutable as $$
    select coalesce(sum((i ->> 'quantity')::int), 0)::int
    from jsonb_array_elements(items) i where i ->> 'sku' = sku
$$;

-- Validates one item line of an event (in the order's currency) and checks it agrees with
-- the order's price for that sku; returns the line in canonical form.
drop function if exists og_check_item(jsonb, jsonb, text);  -- before it knew the currency
create or replace function og_check_item(items jsonb, line jsonb, prefix text, currency text)
returns jsonb language plpgsql stable as $$
declare
    sku text;
    quantity int;
    price numeric;
    held_price text;
begin
    if line is null or jsonb_typeof(line) <> 'object' then
        perform og_bad_input(rtrim(prefix, '.'), format('%s must be an object', rtrim(prefix, '.')));
    end if;
    sku := og_text(line, 'sku', prefix || 'sku');
    quantity := og_quantity(line, 'quantity', prefix || 'quantity');
    price := og_amount(line, 'unitPrice', currency, prefix || 'unitPrice');
    select i ->> 'unitPrice' into held_price from jsonb_array_elements(items) i where i ->> 'sku' = sku;
    if held_price is not null and held_price::numeric <> price then
        perform og_bad_input(prefix || 'unitPrice', format(
            'sku %s is already on the order at unitPrice %s', sku, held_price));
    end if;
    return jsonb_build_object('sku', sku, 'quantity', quantity, 'unitPrice', line ->> 'unitPrice');
end $$;

-- ---------------------------------------------------------------------------------------
-- Event versions: one function per (type, version) step turns a payload of that version
-- into the next; og_upcast chains them. Every read of the log goes through og_upcast (the
-- page functions below, og_check and og_evolve, hence the read model, og_fold, stateAt and
-- rebuild-projections); the log itself keeps each event as it was written.
-- ---------------------------------------------------------------------------------------

-- OrderCancelled 1 -> 2: `reasonCode` became required; older events get the code their
-- free-text reason names, else OTHER (a code already there is kept).
create or replace function og_upcast_order_cancelled_1(payload jsonb) returns jsonb
language sql immutable as $$
    select jsonb_build_object('reasonCode', case
        when payload ->> 'reason' ilike '%stock%' then 'OUT_OF_STOCK'
        when payload ->> 'reason' ilike '%payment%' then 'PAYMENT_FAILED'
        when payload ->> 'reason' ilike '%customer%' then 'CUSTOMER_REQUEST'
        else 'OTHER' end) || payload
$$;

-- An event in its type's current version (unchanged when it already is).
create or replace function og_upcast(e order_events) returns order_events
language plpgsql immutable as $$
begin
    if e.event_type = 'OrderCancelled' and e.schema_version = 1 then
        e.payload := og_upcast_order_cancelled_1(e.payload);
        e.schema_version := 2;
    end if;
    return e;
end $$;

-- ---------------------------------------------------------------------------------------
-- The domain: og_check decides whether an event may follow a state; og_evolve folds it in.
-- The read model, `rebuild-projections` and `Order.stateAt` all fold with og_evolve.
-- ---------------------------------------------------------------------------------------
create or replace function og_check(s orders_current, e order_events) returns void
language plpgsql stable as $$
declare
    p jsonb;
    total numeric;
    amount numeric;
    items jsonb;
    line jsonb;
    n int := 0;
begin
    if not exists (select from order_transitions t where t.event_type = e.event_type) then
        perform og_bad_input('eventType', format('unknown event type %s', coalesce(e.event_type, 'null')));
    end if;
    if e.schema_version is null or e.schema_version < 1 or e.schema_version > (
            select v.schema_version from event_schema_versions v where v.event_type = e.event_type) then
        perform og_bad_input('schemaVersion', format('%s has no schema_version %s',
                             e.event_type, coalesce(e.schema_version::text, 'null')));
    end if;
    e := og_upcast(e);  -- the rules below are those of the current version
    p := e.payload;
    if jsonb_typeof(p) is distinct from 'object' then
        perform og_bad_input('payload', 'payload must be a JSON object');
    end if;
    -- the state machine first: it wins over any data rule
    if s.order_id is null and e.event_type <> 'OrderPlaced' then
        perform og_fail('order_not_found', format('order %s does not exist', e.order_id),
                        jsonb_build_object('orderId', e.order_id));
    elsif s.order_id is not null and e.event_type = 'OrderPlaced' then
        perform og_fail('order_already_exists', format('order %s already exists', e.order_id),
                        jsonb_build_object('orderId', e.order_id));
    elsif s.order_id is not null and not exists (
            select from order_transitions t
            where t.event_type = e.event_type and t.from_status = s.status) then
        perform og_fail('invalid_transition',
            format('%s is not allowed when the order is %s', e.event_type, s.status),
            jsonb_build_object('status', s.status, 'eventType', e.event_type));
    end if;

    case e.event_type
    when 'OrderPlaced' then
        if not exists (select from currencies c where c.code = p ->> 'currency') then
            perform og_bad_input('currency', 'currency must be an ISO 4217 code such as "EUR"');
        end if;
        if jsonb_typeof(coalesce(p -> 'items', '[]')) <> 'array' then
            perform og_bad_input('items', 'items must be a list');
        end if;
        items := '[]';
        for line in select * from jsonb_array_elements(coalesce(p -> 'items', '[]')) loop
            line := og_check_item(items, line, format('items[%s].', n), p ->> 'currency');
            items := og_items_add(items, line ->> 'sku', (line ->> 'quantity')::int, line ->> 'unitPrice');
            n := n + 1;
        end loop;
    when 'ItemAddedToOrder' then
        perform og_check_item(s.items, p, '', s.currency);
    when 'ItemRemovedFromOrder' then
        if og_quantity(p, 'quantity') > og_items_held(s.items, og_text(p, 'sku')) then
            perform og_bad_input('quantity', format('the order holds %s of sku %s',
                og_items_held(s.items, p ->> 'sku'), p ->> 'sku'));
        end if;
    when 'PaymentAuthorized' then
        amount := og_amount(p, 'amount', s.currency);
        perform og_text(p, 'paymentProvider');
        perform og_text(p, 'authorizationId');
        total := og_items_total(s.items);
        if total <= 0 then
            perform og_bad_input('amount', 'the order total is 0: there is nothing to authorize');
        elsif amount <> total then
            perform og_bad_input('amount', format('amount %s must equal the order total %s', amount, total));
        end if;
    when 'PaymentCaptured' then
        amount := og_amount(p, 'amount', s.currency);
        if amount <> s.authorized_amount then
            perform og_bad_input('amount', format('amount %s must equal the authorized amount %s',
                amount, s.authorized_amount));
        end if;
    when 'PaymentCaptureReversed' then
        amount := og_amount(p, 'amount', s.currency);
        perform og_text(p, 'reason');
        if amount <> s.captured_amount then
            perform og_bad_input('amount', format('amount %s must equal the captured amount %s',
                amount, s.captured_amount));
        end if;
    when 'OrderShipped' then
        perform og_text(p, 'carrier');
        perform og_text(p, 'trackingNumber');
        if p ? 'shippedItems' then
            if jsonb_typeof(p -> 'shippedItems') <> 'array' or jsonb_array_length(p -> 'shippedItems') = 0 then
                perform og_bad_input('shippedItems', 'shippedItems must be a non-empty list');
            end if;
            for line in select * from jsonb_array_elements(p -> 'shippedItems') loop
                if og_quantity(line, 'quantity', format('shippedItems[%s].quantity', n))
                   > og_items_held(s.items, og_text(line, 'sku', format('shippedItems[%s].sku', n))) then
                    perform og_bad_input(format('shippedItems[%s].quantity', n),
                        format('the order holds %s of sku %s', og_items_held(s.items, line ->> 'sku'),
                               line ->> 'sku'));
                end if;
                n := n + 1;
            end loop;
        end if;
    when 'OrderCancelled' then
        perform og_text(p, 'reason');
        if coalesce(p ->> 'reasonCode', '') not in ('CUSTOMER_REQUEST', 'PAYMENT_FAILED', 'OUT_OF_STOCK',
                                                    'OTHER') then
            perform og_bad_input('reasonCode',
                'reasonCode must be one of CUSTOMER_REQUEST, PAYMENT_FAILED, OUT_OF_STOCK, OTHER');
        end if;
    end case;
end $$;

create or replace function og_evolve(s orders_current, e order_events) returns orders_current
language plpgsql stable as $$
declare
    p jsonb;
    line jsonb;
begin
    e := og_upcast(e);
    p := e.payload;
    case e.event_type
    when 'OrderPlaced' then
        s.order_id := e.order_id;
        s.customer_id := e.customer_id;
        s.currency := p ->> 'currency';
        s.placed_at := e.occurred_at;
        s.items := '[]';
        s.authorized_amount := 0;
        s.captured_amount := 0;
        for line in select * from jsonb_array_elements(coalesce(p -> 'items', '[]')) loop
            s.items := og_items_add(s.items, line ->> 'sku', (line ->> 'quantity')::int, line ->> 'unitPrice');
        end loop;
    when 'ItemAddedToOrder' then
        s.items := og_items_add(s.items, p ->> 'sku', (p ->> 'quantity')::int, p ->> 'unitPrice');
    when 'ItemRemovedFromOrder' then
        s.items := og_items_remove(s.items, p ->> 'sku', (p ->> 'quantity')::int);
    when 'PaymentAuthorized' then
        s.authorized_amount := (p ->> 'amount')::numeric;
    when 'PaymentCaptured' then
        s.captured_amount := (p ->> 'amount')::numeric;
    when 'PaymentCaptureReversed' then
        s.captured_amount := s.captured_amount - (p ->> 'amount')::numeric;
    else null;
    end case;
    -- the transition og_check allowed: every event in the log passed it from this status
    s.status := (select t.to_status from order_transitions t
                 where t.event_type = e.event_type and t.from_status is not distinct from s.status);
    s.total_amount := og_items_total(s.items);
    s.version := e.stream_version;
    s.last_event_at := greatest(s.last_event_at, e.occurred_at);
    s.last_recorded_at := e.recorded_at;
    s.last_log_xid := e.log_xid;
    s.last_position := e.global_position;
    return s;
end $$;

-- Folds a stream (events given in stream order) into its state.
create or replace aggregate og_fold(order_events) (sfunc = og_evolve, stype = orders_current);

-- ---------------------------------------------------------------------------------------
-- Who appends: the verified token's claims, set for the transaction by og_claim
-- ---------------------------------------------------------------------------------------
-- The claims of the current transaction's caller (transaction-local settings).
create or replace function og_claim(p_role text, p_scope text, p_customer uuid, p_subject text)
returns void language sql as $$
    select set_config('ordergraph.role', coalesce(p_role, ''), true),
           set_config('ordergraph.scope', coalesce(p_scope, ''), true),
           set_config('ordergraph.customer', coalesce(p_customer::text, ''), true),
           set_config('ordergraph.subject', coalesce(p_subject, ''), true)
$$;

-- Whether a session logged in as the server's role (or a role made a member of it): such
-- sessions must state their caller's claims; migrations and the CLI (as the owner) need not.
create or replace function og_server_session() returns boolean language sql stable as $$
    select exists (select from pg_roles r where r.rolname = session_user and not r.rolsuper
                   and pg_has_role(session_user, 'ordergraph_app', 'member'))
$$;

-- The visibility rule of every read: a viewer (a customer's id; null: reads all) sees the
-- rows of its own customer only. Inlined into the page functions and root lookups.
create or replace function og_sees(viewer uuid, customer uuid) returns boolean
language sql immutable as $$ select viewer is null or viewer = customer $$;

-- Whether the claimed caller may append `e` to the stream whose state is `cur`. Runs in
-- og_append (before idempotency answers anything) and in the append trigger (every writer).
-- Another customer's order is refused as an unknown one.
create or replace function og_authorize(e order_events, cur orders_current) returns void
language plpgsql stable security definer set search_path from current as $$
declare
    claimed text := nullif(current_setting('ordergraph.role', true), '');
    claimed_scope text := coalesce(current_setting('ordergraph.scope', true), '');
    me uuid := nullif(current_setting('ordergraph.customer', true), '')::uuid;
    subject text := nullif(current_setting('ordergraph.subject', true), '');
    r access_roles;
    g append_grants;
begin
    if claimed is null then
        if og_server_session() then
            perform og_fail('forbidden', 'the server''s connections must claim who appends (og_claim)',
                            jsonb_build_object('eventType', e.event_type));
        end if;
        return;  -- the owner's sessions: migrations, seed, import
    end if;
    select * into r from access_roles where role = claimed;
    if not found then
        perform og_fail('forbidden', format('unknown role %s', claimed), '{}');
    end if;
    if not r.reads_all and cur.order_id is not null and cur.customer_id is distinct from me then
        perform og_fail('order_not_found', format('order %s does not exist', e.order_id),
                        jsonb_build_object('orderId', e.order_id));
    end if;
    select * into g from append_grants
    where role = claimed and scope = claimed_scope and event_type = e.event_type;
    if not found then
        perform og_fail('forbidden', format('role %s%s may not append %s', claimed,
                        case when claimed_scope <> '' then ' (' || claimed_scope || ')' else '' end, e.event_type),
                        jsonb_build_object('role', claimed, 'eventType', e.event_type));
    end if;
    if g.own_orders and cur.order_id is null and e.event_type = 'OrderPlaced'
       and coalesce(e.customer_id, (e.payload ->> 'customerId')::uuid) is distinct from me then
        perform og_fail('forbidden', 'a customer places orders for itself only',
                        jsonb_build_object('field', 'customerId', 'eventType', e.event_type));
    end if;
    if g.from_status is not null and cur.status is distinct from g.from_status
       and exists (select from order_transitions t
                   where t.event_type = e.event_type and t.from_status = cur.status) then
        perform og_fail('forbidden', format('role %s may append %s only while the order is %s',
                        claimed, e.event_type, g.from_status),
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
    if new.event_type = 'OrderPlaced' then
        new.customer_id := coalesce(new.customer_id, (new.payload ->> 'customerId')::uuid);
        if new.customer_id is null then
            perform og_bad_input('customerId', 'customerId is required');
        end if;
        new.payload := new.payload || jsonb_build_object('customerId', new.customer_id);
    else
        new.customer_id := cur.customer_id;
    end if;
    perform og_authorize(new, cur);
    perform og_check(cur, new);
    if new.stream_version is distinct from coalesce(cur.version, 0) + 1 and new.stream_version is not null then
        perform og_fail('wrong_expected_version',
            format('stream_version must be %s, the next version of order %s',
                   coalesce(cur.version, 0) + 1, new.order_id),
            jsonb_build_object('currentVersion', coalesce(cur.version, 0)));
    end if;
    if new.event_type = 'OrderShipped' and not new.payload ? 'shippedItems' then
        new.payload := new.payload || jsonb_build_object('shippedItems',
            (select coalesce(jsonb_agg(jsonb_build_object('sku', i ->> 'sku', 'quantity', i -> 'quantity')), '[]')
             from jsonb_array_elements(cur.items) i));
    end if;
    new.stream_version := coalesce(cur.version, 0) + 1;
    new.recorded_at := greatest(clock_timestamp(), cur.last_recorded_at);
    new.log_xid := greatest(pg_current_xact_id(), cur.last_log_xid);
    new.global_position := nextval('order_events_position_seq');
    nxt := og_evolve(cur, new);
    new.status := nxt.status;  -- the state machine's answer, stored with the event
    if cur.order_id is null then
        insert into orders_current select nxt.*;
    else
        update orders_current set
            status = nxt.status, total_amount = nxt.total_amount,
            authorized_amount = nxt.authorized_amount, captured_amount = nxt.captured_amount,
            items = nxt.items, version = nxt.version, last_event_at = nxt.last_event_at,
            last_recorded_at = nxt.last_recorded_at, last_log_xid = nxt.last_log_xid,
            last_position = nxt.last_position
        where order_id = new.order_id;
    end if;
    return new;
end $$;

create or replace function og_after_append() returns trigger language plpgsql as $$
begin
    -- a doorbell for the listener; the log is the truth (payloads are capped at 8000 bytes)
    perform pg_notify('ordergraph_events',
        json_build_object('position', new.global_position, 'orderId', new.order_id,
                          'type', new.event_type)::text);
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
create or replace trigger order_events_notify after insert on order_events
    for each row execute function og_after_append();
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
-- (dropped first: its result type grew; create or replace cannot change that)
-- The last four parameters are the caller's verified claims (og_claim); left out, the
-- session appends as itself (refused for the server's role).
drop function if exists og_append(uuid, uuid, text, jsonb, bigint, timestamptz, uuid, uuid,
                                  text, text, int);
drop function if exists og_append(uuid, uuid, text, jsonb, bigint, timestamptz, uuid, uuid,
                                  text, text, int, text, text, uuid, text);
create function og_append(
    p_event_id uuid, p_order_id uuid, p_event_type text, p_payload jsonb,
    p_expected_version bigint, p_occurred_at timestamptz, p_correlation_id uuid,
    p_causation_id uuid, p_actor_type text, p_actor_id text, p_schema_version int,
    p_role text default null, p_scope text default null, p_customer uuid default null,
    p_subject text default null,
    out deduplicated boolean, out event order_events, out current orders_current)
language plpgsql security definer set search_path from current as $$
declare
    cur orders_current;
    authorized numeric;
begin
  <<append>>  -- a duplicate leaves this block early; every path ends with the read-back below
  begin
    -- lock the stream head first: retries and concurrent appends to one stream queue here
    select * into cur from orders_current where order_id = p_order_id for update;
    if p_role is not null then
        perform og_claim(p_role, p_scope, p_customer, p_subject);
    end if;
    -- who asks first: another customer's order is unknown, even to a retried event id
    event.order_id := p_order_id;
    event.event_type := p_event_type;
    event.payload := p_payload;
    event.actor_type := p_actor_type;
    event.actor_id := p_actor_id;
    perform og_authorize(event, cur);
    select * into event from order_events where event_id = p_event_id;
    if found then
        if event.order_id = p_order_id and event.event_type = p_event_type
           and (event.payload = p_payload
                or (p_event_type = 'OrderShipped' and not p_payload ? 'shippedItems'
                    and event.payload - 'shippedItems' = p_payload)) then
            deduplicated := true;
            exit append;
        end if;
        perform og_fail('idempotency_conflict',
            format('event %s was already recorded with different content', p_event_id),
            jsonb_build_object('field', 'eventId', 'eventId', p_event_id));
    end if;
    if p_event_type = 'PaymentAuthorized' then
        select * into event from order_events
        where event_type = 'PaymentAuthorized' and authorization_id = p_payload ->> 'authorizationId';
        if found then
            authorized := og_money(p_payload, 'amount');
            if event.order_id = p_order_id and event.amount = authorized then
                deduplicated := true;
                exit append;
            end if;
            perform og_fail('idempotency_conflict',
                format('authorizationId %s was already used for another payment',
                       p_payload ->> 'authorizationId'),
                jsonb_build_object('field', 'authorizationId'));
        end if;
    end if;
    if cur.order_id is not null and p_expected_version is not null and p_event_type <> 'OrderPlaced'
       and p_expected_version <> cur.version then
        perform og_fail('wrong_expected_version',
            format('expected version %s but order %s is at version %s',
                   p_expected_version, p_order_id, cur.version),
            jsonb_build_object('currentVersion', cur.version));
    elsif cur.order_id is null and coalesce(p_expected_version, 0) <> 0
          and p_event_type = 'OrderPlaced' then
        perform og_fail('wrong_expected_version',
            format('expected version %s but order %s does not exist yet', p_expected_version, p_order_id),
            jsonb_build_object('currentVersion', 0));
    end if;
    insert into order_events (event_id, order_id, event_type, occurred_at, correlation_id,
                              causation_id, actor_type, actor_id, payload, schema_version)
    values (p_event_id, p_order_id, p_event_type, coalesce(p_occurred_at, now()), p_correlation_id,
            p_causation_id, p_actor_type, p_actor_id, p_payload,
            coalesce(p_schema_version, (select v.schema_version from event_schema_versions v
                                        where v.event_type = p_event_type), 1))
    returning * into event;
    deduplicated := false;
  end append;
  -- the read model as this append left it (a duplicate: as it is now), so callers need no
  -- second round trip
  select * into current from orders_current where order_id = p_order_id;
end $$;

-- registerCustomer in one round trip: the customer, inserted unless it exists (`existed`),
-- under the caller's claims (the trigger above refuses roles that may not register).
create or replace function og_register_customer(
    p_customer_id uuid, p_name text, p_email text, p_role text default null,
    p_scope text default null, p_customer uuid default null, p_subject text default null)
returns table (customer_id uuid, name text, email text, registered_at timestamptz, existed boolean)
language plpgsql as $$
#variable_conflict use_column
begin
    if p_role is not null then
        perform og_claim(p_role, p_scope, p_customer, p_subject);
    end if;
    return query
    with inserted as (
        insert into customers (customer_id, name, email) values (p_customer_id, p_name, p_email)
        on conflict (customer_id) do nothing
        returning customer_id, name, email, registered_at, false as existed
    )
    select * from inserted
    union all
    select c.customer_id, c.name, c.email, c.registered_at, true from customers c
    where c.customer_id = p_customer_id and not exists (select from inserted);
end $$;

-- ---------------------------------------------------------------------------------------
-- Reads: pages of the read model and the log, as inlinable SQL functions shared by the
-- store's named queries and the compiled GraphQL fast path (gql/schema/compiled.py)
-- ---------------------------------------------------------------------------------------

-- The filter of an orders page, written once for each of og_orders_page's branches.
create or replace function og_orders_page_filter(
    o orders_current, after_at timestamptz, after_id uuid, statuses text[], customer uuid,
    placed_after timestamptz, placed_before timestamptz, viewer uuid)
returns boolean language sql immutable as $$
    select og_sees(viewer, o.customer_id)
       and (after_at is null or (o.last_event_at, o.order_id) < (after_at, after_id))
       -- the same bound, in a form an index scan starts from in any plan
       and (o.last_event_at, o.order_id) < (coalesce(after_at, 'infinity'),
                                            coalesce(after_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
       and (statuses is null or o.status = any(statuses))
       and (customer is null or o.customer_id = customer)
       and (placed_after is null or o.placed_at > placed_after)
       and (placed_before is null or o.placed_at < placed_before)
$$;

-- Orders, most recently active first; the keyset is (last_event_at, order_id) descending.
-- `viewer` scopes every page to one customer's rows (og_sees); null reads all.
-- Each branch is the filter, less what its gate settles, and a gate on the given arguments: exactly
-- one branch reads rows and it walks the index that answers it: one customer's orders (the
-- argument's, or the only customer a viewer sees), the first `lim` of each status asked for,
-- or everything by activity. The gates and the keyset's coalesced bounds hold in a generic
-- plan too, which PostgreSQL reuses instead of planning each execution.
drop function if exists og_orders_page(timestamptz, uuid, text[], uuid, timestamptz, timestamptz, bigint);
create or replace function og_orders_page(
    after_at timestamptz, after_id uuid, statuses text[], customer uuid,
    placed_after timestamptz, placed_before timestamptz, lim bigint, viewer uuid)
returns setof orders_current language sql stable as $$
    select p.* from (
        (select o.* from orders_current o
         where coalesce(customer, viewer) is not null
           and o.customer_id = coalesce(customer, viewer)
           and og_orders_page_filter(o, after_at, after_id, statuses, customer,
                                     placed_after, placed_before, viewer)
         order by o.last_event_at desc, o.order_id desc limit lim)
        union all
        (select o.* from (select distinct s from unnest(statuses) s) s cross join lateral (
             select c.* from orders_current c
             where c.status = s.s
               -- the gates settle statuses (c.status is one of them), customer and
               -- viewer (both null): not tested again, the scan keeps to its index
               and og_orders_page_filter(c, after_at, after_id, null, null,
                                         placed_after, placed_before, null)
             order by c.last_event_at desc, c.order_id desc limit lim) o
         where coalesce(customer, viewer) is null)
        union all
        (select o.* from orders_current o
         where coalesce(customer, viewer) is null and statuses is null
           and og_orders_page_filter(o, after_at, after_id, null, null,
                                     placed_after, placed_before, null)
         order by o.last_event_at desc, o.order_id desc limit lim)
    ) p
    order by p.last_event_at desc, p.order_id desc
    limit lim
$$;

-- The key an order's timeline is sorted by, before stream_version.
create or replace function og_timeline_key(e order_events, order_by text) returns timestamptz
language sql immutable as $$
    select case order_by when 'occurred_at' then e.occurred_at
                         when 'recorded_at' then e.recorded_at
                         else '-infinity'::timestamptz end
$$;

-- One order's timeline page; the cursor is a stream version.
create or replace function og_timeline_page(
    stream uuid, types text[], after_version bigint, order_by text, lim bigint)
returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u
    where x.order_id = stream
      and (types is null or x.event_type = any(types))
      and (after_version is null or (og_timeline_key(x, order_by), x.stream_version) > (
          select og_timeline_key(a, order_by), a.stream_version from order_events a
          where a.order_id = stream and a.stream_version = after_version))
    order by og_timeline_key(x, order_by), x.stream_version
    limit lim
$$;

-- One event by id, upcast.
create or replace function og_event(id uuid) returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u where x.event_id = id
$$;

-- The filter of a log page, written once for each of og_log_page's branches.
create or replace function og_log_page_filter(
    x order_events, after_xid xid8, after_seq bigint, types text[], stream uuid,
    correlation uuid, occurred_after timestamptz, occurred_before timestamptz, viewer uuid)
returns boolean language sql stable as $$
    select og_sees(viewer, x.customer_id)
       and (x.log_xid, x.global_position) > (after_xid, after_seq)
       and x.log_xid < pg_snapshot_xmin(pg_current_snapshot())
       and (types is null or x.event_type = any(types))
       and (stream is null or x.order_id = stream)
       and (correlation is null or x.correlation_id = correlation)
       and (occurred_after is null or x.occurred_at > occurred_after)
       and (occurred_before is null or x.occurred_at < occurred_before)
$$;

-- The global log in its safe order, only below the oldest running transaction: once a
-- reader has seen a position, no event can appear before it later. As in og_orders_page,
-- a gate on the given arguments picks the one branch that reads, each from its index: one
-- stream's events, one correlation's, one customer's (the viewer's), or the log itself.
drop function if exists og_log_page(xid8, bigint, text[], uuid, uuid, timestamptz, timestamptz, bigint);
create or replace function og_log_page(
    after_xid xid8, after_seq bigint, types text[], stream uuid, correlation uuid,
    occurred_after timestamptz, occurred_before timestamptz, lim bigint, viewer uuid)
returns setof order_events language sql stable as $$
    select u.* from (
        (select x.* from order_events x
         where stream is not null and x.order_id = stream
           and og_log_page_filter(x, after_xid, after_seq, types, stream, correlation,
                                  occurred_after, occurred_before, viewer)
         order by x.log_xid, x.global_position limit lim)
        union all
        (select x.* from order_events x
         where stream is null and correlation is not null and x.correlation_id = correlation
           and og_log_page_filter(x, after_xid, after_seq, types, null, correlation,
                                  occurred_after, occurred_before, viewer)
         order by x.log_xid, x.global_position limit lim)
        union all
        (select x.* from order_events x
         where stream is null and correlation is null and viewer is not null
           and x.customer_id = viewer
           and og_log_page_filter(x, after_xid, after_seq, types, null, null,
                                  occurred_after, occurred_before, viewer)
         order by x.log_xid, x.global_position limit lim)
        union all
        (select x.* from order_events x
         where stream is null and correlation is null and viewer is null
           and og_log_page_filter(x, after_xid, after_seq, types, null, null,
                                  occurred_after, occurred_before, null)
         order by x.log_xid, x.global_position limit lim)
    ) x cross join lateral og_upcast(x) u
    order by x.log_xid, x.global_position
    limit lim
$$;

-- An order's state after its events up to a version and/or a time on one axis
-- ('occurred_at' or 'recorded_at'), folded with the read model's own og_evolve. One row;
-- all null before the first event.
create or replace function og_state_at(
    stream uuid, up_to_version bigint, as_of timestamptz, axis text)
returns setof orders_current language sql stable as $$
    select (og_fold(e order by e.stream_version)).* from order_events e
    where e.order_id = stream
      -- one range on the stream's index, also in a generic plan (an "is null or" here
      -- made PostgreSQL plan every execution of a statement that reads stateAt again)
      and e.stream_version <= coalesce(up_to_version, 9223372036854775807)
      and (as_of is null or (case axis when 'recorded_at' then e.recorded_at
                                       else e.occurred_at end) <= as_of)
$$;

-- Text forms the API shows, identical whichever path renders them.
create or replace function og_money_text(amount numeric) returns text
language sql immutable as $$
    select case when scale(amount) < 2 then round(amount, 2)::text else amount::text end
$$;

create or replace function og_iso(t timestamptz) returns text
language sql stable as $$
    select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || case when extract(microseconds from t)::bigint % 1000000 = 0 then ''
                else to_char(t at time zone 'UTC', '.US') end
        || '+00:00'
$$;

create or replace function og_position(xid xid8, seq bigint) returns text
language sql immutable as $$
    select lpad(to_hex(xid::text::bigint), 16, '0') || '-' || lpad(to_hex(seq), 16, '0')
$$;

create or replace function og_cursor(variadic parts text[]) returns text
language sql stable as $$
    select rtrim(translate(replace(encode(convert_to(array_to_string(parts, '|'), 'UTF8'),
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
    grant insert on order_events, customers to ordergraph_app;
end $$;
select og_apply_privileges();
