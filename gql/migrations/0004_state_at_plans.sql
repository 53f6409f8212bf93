-- 0004: Order.stateAt's fold reads its events with one index range, so that a statement that
-- reads stateAt keeps one generic plan instead of being planned again on every execution.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

do $$ begin
    if pg_has_role('ordergraph_owner', 'member') then
        set local role ordergraph_owner;  -- what follows runs as (and is owned by) the owner
    end if;
end $$;

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
