-- 0007: event types are declared once (gql/catalogue.py), and the database's rules are
-- generated from the declarations. The promoted columns become plain columns that the append
-- trigger fills from each event's data (og_promote), as the declarations say, instead of
-- expressions that name event types; a natural key's unique index covers whatever column
-- a declaration makes unique.

alter table order_events alter column amount drop expression;
alter table order_events alter column currency drop expression;
alter table order_events alter column authorization_id drop expression;
drop index if exists order_events_authorization_key;
