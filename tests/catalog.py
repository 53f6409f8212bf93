"""A database's schema as comparable rows, read from pg_catalog (not pg_dump's text order).

Two databases with equal catalogs behave alike: same columns in the same order (composite
values such as `order_events` rows depend on it), types, defaults, generated expressions,
constraints, indexes, function and aggregate definitions, triggers and whether they fire,
owners and grants, row security, and the rows of every reference table.
"""

from __future__ import annotations

import asyncpg

# Tables whose rows are the data, not the schema.
DATA_TABLES = ("order_events", "orders_current", "customers", "og_migrations", "order_tallies",
               "customer_keys", "og_secrets")
# ...and the columns of a reference table that say when, not what
WHEN = {"og_schema": "digest"}

CATALOG = """
with rel as (
    select c.oid, c.relname, c.relkind from pg_class c
    where c.relnamespace = 'public'::regnamespace
)
select 'relation', concat_ws(' ', r.relname, c.relkind, pg_get_userbyid(c.relowner),
       c.relrowsecurity, c.relforcerowsecurity, c.relpersistence,
       array(select unnest(c.relacl)::text order by 1))
from rel r join pg_class c on c.oid = r.oid
union all
select 'column', concat_ws(' ', r.relname,
       -- the read model's columns come from the declarations: a database that gained one
       -- has it last, a new one where it is declared (every writer names its columns)
       case when r.relname <> 'orders_current'
            then row_number() over (partition by a.attrelid order by a.attnum) end, a.attname,
       format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated, a.attidentity,
       pg_get_expr(d.adbin, d.adrelid), a.attcollation::regcollation,
       array(select unnest(a.attacl)::text order by 1))
from rel r join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where r.relkind in ('r', 'p', 'v', 'm', 'f')
union all
select 'constraint', concat_ws(' ', conrelid::regclass, conname, pg_get_constraintdef(oid),
       condeferrable, condeferred, convalidated)
from pg_constraint where connamespace = 'public'::regnamespace
union all
select 'index', pg_get_indexdef(i.indexrelid)
from pg_index i join rel r on r.oid = i.indexrelid
union all
select 'sequence', concat_ws(' ', r.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
from pg_sequence s join rel r on r.oid = s.seqrelid
union all
select 'view', r.relname || ' ' || pg_get_viewdef(r.oid) from rel r where r.relkind in ('v', 'm')
union all
select 'function', concat_ws(' ', p.oid::regprocedure, pg_get_userbyid(p.proowner),
       array(select unnest(p.proacl)::text order by 1),
       case when p.prokind = 'a' then concat_ws(' ', a.aggtransfn, a.aggfinalfn, a.aggtranstype::regtype,
                                                a.agginitval)
            else pg_get_functiondef(p.oid) end)
from pg_proc p left join pg_aggregate a on a.aggfnoid = p.oid
where p.pronamespace = 'public'::regnamespace
union all
select 'trigger', concat_ws(' ', pg_get_triggerdef(t.oid), t.tgenabled)
from pg_trigger t join rel r on r.oid = t.tgrelid where not t.tgisinternal
union all
select 'type', concat_ws(' ', t.typname, t.typtype,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder))
from pg_type t where t.typnamespace = 'public'::regnamespace and t.typtype in ('e', 'd', 'r', 'm')
union all
select 'policy', concat_ws(' ', polrelid::regclass, polname, polcmd, polpermissive,
       pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid))
from pg_policy
union all
select 'extension', extname || ' ' || extversion from pg_extension
union all
select 'default privileges', concat_ws(' ', pg_get_userbyid(defaclrole), defaclobjtype,
       array(select unnest(defaclacl)::text order by 1))
from pg_default_acl
union all
select 'schema', concat_ws(' ', nspname, pg_get_userbyid(nspowner),
       array(select unnest(nspacl)::text order by 1))
from pg_namespace where nspname = 'public'
"""

REFERENCE_TABLES = """
select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')
  and relname <> all($1::text[]) order by 1
"""


async def catalog(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """The schema of `conn`'s database, sorted; reference tables' rows included."""
    rows = [(r[0], r[1]) for r in await conn.fetch(CATALOG)]
    for (table,) in await conn.fetch(REFERENCE_TABLES, list(DATA_TABLES)):
        what = WHEN.get(table, "t")
        content = await conn.fetch(f'select {what}::text from "{table}" t order by 1')
        rows.extend((f"rows of {table}", r[0]) for r in content)
    return sorted(rows)


def differences(left: list[tuple[str, str]], right: list[tuple[str, str]]) -> list[str]:
    """What one catalog has and the other lacks, readable in a test failure."""
    a, b = set(left), set(right)
    return ([f"only in the first: {k}: {v[:300]}" for k, v in sorted(a - b)]
            + [f"only in the second: {k}: {v[:300]}" for k, v in sorted(b - a)])
