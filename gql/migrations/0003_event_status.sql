-- 0003: the status an event leads to, stored on the event. `order_events.status` is the
-- order's status after the event, as og_evolve folds it; the append trigger sets it for
-- every writer (a value a writer gives is overwritten). Existing logs are backfilled by
-- folding each stream with og_evolve once, in stream order (og_fold as a running window
-- aggregate: one pass, linear in the log), then the column becomes NOT NULL.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

do $$ begin
    if pg_has_role('ordergraph_owner', 'member') then
        set local role ordergraph_owner;  -- what follows runs as (and is owned by) the owner
    end if;
end $$;

alter table order_events add column status text;

-- The log refuses UPDATE for every session; this transaction, holding the table's exclusive
-- lock, fills the new column once and restores the guard before it commits.
alter table order_events disable trigger order_events_immutable;
update order_events e set status = f.status
from (select x.event_id,
             (og_fold(x) over (partition by x.order_id order by x.stream_version
                               rows between unbounded preceding and current row)).status
      from order_events x) f
where e.event_id = f.event_id;
alter table order_events enable always trigger order_events_immutable;

alter table order_events alter column status set not null;
alter table order_events add constraint order_events_status_fkey
    foreign key (status) references order_statuses;

-- The append trigger stores og_evolve's status with each new event.
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
