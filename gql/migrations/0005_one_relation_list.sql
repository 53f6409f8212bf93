-- 0005: ordergraph's tables and sequences are named once (og_relations); ownership and
-- privileges are derived from that list. Functions only: schema.sql applies them.
select 1;
