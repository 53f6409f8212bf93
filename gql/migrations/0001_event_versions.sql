-- 0001: event versions. Adds the migrations table, the current schema_version of each
-- event type (OrderCancelled 2: `reasonCode` is required), the upcaster chain og_upcast, and
-- routes every read of the log through it: og_check, og_evolve (hence og_fold, og_state_at
-- and the read model), og_append's default version, og_event (new), og_timeline_page and
-- og_log_page.
-- Stored events are left as they were written.

-- The numbered upgrade steps (gql/migrations) this database has: all of them when it was
-- created from this file.
create table if not exists og_migrations (
    version    int primary key,
    name       text not null,
    applied_at timestamptz not null default now()
);

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
        if coalesce(p ->> 'currency', '') !~ '^[A-Z]{3}$' then
            perform og_bad_input('currency', 'currency must be a 3-letter ISO 4217 code such as "EUR"');
        end if;
        if jsonb_typeof(coalesce(p -> 'items', '[]')) <> 'array' then
            perform og_bad_input('items', 'items must be a list');
        end if;
        items := '[]';
        for line in select * from jsonb_array_elements(coalesce(p -> 'items', '[]')) loop
            line := og_check_item(items, line, format('items[%s].', n));
            items := og_items_add(items, line ->> 'sku', (line ->> 'quantity')::int, line ->> 'unitPrice');
            n := n + 1;
        end loop;
    when 'ItemAddedToOrder' then
        perform og_check_item(s.items, p, '');
    when 'ItemRemovedFromOrder' then
        if og_quantity(p, 'quantity') > og_items_held(s.items, og_text(p, 'sku')) then
            perform og_bad_input('quantity', format('the order holds %s of sku %s',
                og_items_held(s.items, p ->> 'sku'), p ->> 'sku'));
        end if;
    when 'PaymentAuthorized' then
        amount := og_money(p, 'amount');
        perform og_text(p, 'paymentProvider');
        perform og_text(p, 'authorizationId');
        total := og_items_total(s.items);
        if total <= 0 then
            perform og_bad_input('amount', 'the order total is 0: there is nothing to authorize');
        elsif amount <> total then
            perform og_bad_input('amount', format('amount %s must equal the order total %s', amount, total));
        end if;
    when 'PaymentCaptured' then
        amount := og_money(p, 'amount');
        if amount <> s.authorized_amount then
            perform og_bad_input('amount', format('amount %s must equal the authorized amount %s',
                amount, s.authorized_amount));
        end if;
    when 'PaymentCaptureReversed' then
        amount := og_money(p, 'amount');
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
    s.status := coalesce(
        (select t.to_status from order_transitions t
         where t.event_type = e.event_type and t.from_status is not distinct from s.status),
        (select t.to_status from order_transitions t where t.event_type = e.event_type limit 1));
    s.total_amount := og_items_total(s.items);
    s.version := e.stream_version;
    s.last_event_at := greatest(s.last_event_at, e.occurred_at);
    s.last_recorded_at := e.recorded_at;
    s.last_log_xid := e.log_xid;
    s.last_position := e.global_position;
    return s;
end $$;

create or replace function og_append(
    p_event_id uuid, p_order_id uuid, p_event_type text, p_payload jsonb,
    p_expected_version bigint, p_occurred_at timestamptz, p_correlation_id uuid,
    p_causation_id uuid, p_actor_type text, p_actor_id text, p_schema_version int,
    out deduplicated boolean, out event order_events, out current orders_current)
language plpgsql as $$
declare
    cur orders_current;
    authorized numeric;
begin
  <<append>>  -- a duplicate leaves this block early; every path ends with the read-back below
  begin
    -- lock the stream head first: retries and concurrent appends to one stream queue here
    select * into cur from orders_current where order_id = p_order_id for update;
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

create or replace function og_log_page(
    after_xid xid8, after_seq bigint, types text[], stream uuid, correlation uuid,
    occurred_after timestamptz, occurred_before timestamptz, lim bigint)
returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u
    where (x.log_xid, x.global_position) > (after_xid, after_seq)
      and x.log_xid < pg_snapshot_xmin(pg_current_snapshot())
      and (types is null or x.event_type = any(types))
      and (stream is null or x.order_id = stream)
      and (correlation is null or x.correlation_id = correlation)
      and (occurred_after is null or x.occurred_at > occurred_after)
      and (occurred_before is null or x.occurred_at < occurred_before)
    order by x.log_xid, x.global_position
    limit lim
$$;

-- One event by id, upcast.
create or replace function og_event(id uuid) returns setof order_events language sql stable as $$
    select u.* from order_events x cross join lateral og_upcast(x) u where x.event_id = id
$$;
