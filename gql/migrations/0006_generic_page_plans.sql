-- 0006: the orders and log pages read from the index that answers them in any plan, so the
-- server can keep one generic plan per statement. Functions only: schema.sql applies them.
select 1;
