-- 0005: ordergraph's tables and sequences are named once (og_relations); ownership and
-- privileges are derived from that list.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

do $$ begin
    if pg_has_role('ordergraph_owner', 'member') then
        set local role ordergraph_owner;  -- what follows runs as (and is owned by) the owner
    end if;
end $$;

create or replace function og_relations() returns text[] language sql immutable as $$
    select array['order_statuses', 'order_transitions', 'currencies', 'customers',
                 'order_events', 'orders_current', 'order_events_position_seq', 'access_roles',
                 'append_grants', 'event_schema_versions', 'og_migrations']
$$;


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
