-- 0004: Order.stateAt's fold reads its events with one index range, so that a statement that
-- reads stateAt keeps one generic plan. A function only: schema.sql applies it.
select 1;
