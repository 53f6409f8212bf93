-- 0002: hardening and access. Added the database roles (ordergraph_owner owns every object,
-- ordergraph_app — what the server connects as — owns nothing and may only read and add),
-- log triggers that fire whatever session_replication_role says, ISO 4217 currencies with
-- their minor units, business time within 1970–9999, and access as data (access_roles,
-- append_grants) enforced by og_authorize.
--
-- Every part of it is a new table, a constraint added when missing, a function, a trigger or
-- privileges: schema.sql does all of that on every `migrate`, so this step has nothing left
-- of its own.
select 1;
