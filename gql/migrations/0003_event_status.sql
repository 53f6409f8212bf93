-- 0003: the status an event leads to, stored on the event. `order_events.status` is the
-- order's status after the event; the append trigger sets it for every writer (a value a
-- writer gives is overwritten). Existing logs are backfilled by walking each stream in
-- stream order through the state machine's table (one pass per stream version), then the
-- column becomes NOT NULL.

alter table order_events add column status text;

-- The log refuses UPDATE for every session; this transaction, holding the table's exclusive
-- lock, fills the new column once and restores the guard before it commits.
alter table order_events disable trigger order_events_immutable;
with recursive walked (order_id, stream_version, status) as (
    select e.order_id, e.stream_version, t.to_status
    from order_events e
    join order_transitions t on t.event_type = e.event_type and t.from_status is null
    where e.stream_version = 1
    union all
    select e.order_id, e.stream_version, t.to_status
    from walked w
    join order_events e on e.order_id = w.order_id and e.stream_version = w.stream_version + 1
    join order_transitions t on t.event_type = e.event_type and t.from_status = w.status
)
update order_events e set status = w.status
from walked w
where e.order_id = w.order_id and e.stream_version = w.stream_version;
alter table order_events enable always trigger order_events_immutable;

alter table order_events alter column status set not null;
alter table order_events add constraint order_events_status_fkey
    foreign key (status) references order_statuses;
