-- 0006: the orders and log pages read from the index that answers them in any plan, so the
-- server can keep one generic plan per statement: each page is a union of branches gated
-- on which arguments are given, and keyset bounds are written in a form an index scan starts
-- from. Before, a generic plan of these pages scanned whole tables (20-800 ms) and
-- PostgreSQL planned every execution again instead.

-- Serialise concurrent migrations (several workers starting at once).
select pg_advisory_xact_lock(7318462019);

do $$ begin
    if pg_has_role('ordergraph_owner', 'member') then
        set local role ordergraph_owner;  -- what follows runs as (and is owned by) the owner
    end if;
end $$;

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

