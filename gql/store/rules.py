"""The catalogue's rules as SQL: what `ordergraph migrate` generates from gql/catalogue.py.

schema.sql holds what every event type shares (the log, the append path, the pages); the
functions here hold what differs by type, written out once per migrate from the declarations,
so that the database enforces every rule for every writer, plain SQL included:

- `og_check(s, e)`: the state machine, the data's kinds and the rules; returns the payload
  to store (amounts written with their currency's minor units, defaults filled in);
- `og_evolve(s, e)`: the fold step (the read model, `rebuild-projections`, `stateAt`);
- `og_upcast(e)`: an event in its type's current version;
- `og_promote(e)`, `og_store(cur, nxt)`, `og_holder(…)`, `og_defaulted(…)`,
  `og_starts_stream(…)`: promoted columns, the read model's write, natural keys, defaults;
- the read model's columns, the promoted columns and the reference rows (statuses, the
  transitions, the current versions, the grants).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from gql.declaration import (
    CODE,
    CURRENCY,
    CUSTOMER,
    ITEMS,
    MONEY,
    QUANTITY,
    SHIPPED_ITEMS,
    TEXT,
    Catalogue,
    Data,
    EventDeclaration,
)

# The read model's bookkeeping, kept by the fold for every event whatever its type.
BOOKKEEPING = ("order_id", "status", "version", "last_event_at", "last_recorded_at",
               "last_log_xid", "last_position", "currency")

# Each kind: how og_check reads and checks it from the payload `p` (`{key}`), its SQL type,
# how the fold reads a stored value, and the JSON og_check stores for it (None: as given).
_CHECK = {
    TEXT: "og_text(p, '{key}')",
    MONEY: "og_amount(p, '{key}', cur)",
    QUANTITY: "og_quantity(p, '{key}')",
    CURRENCY: "og_currency(p, '{key}')",
    CUSTOMER: "og_customer(p, '{key}')",
    CODE: "og_code(p, '{key}', array[{codes}])",
    ITEMS: "og_check_items(p, '{key}', cur)",
    SHIPPED_ITEMS: "og_check_shipped(p, '{key}', s.items)",
}
_SQL_TYPE = {TEXT: "text", MONEY: "numeric", QUANTITY: "int", CURRENCY: "text",
             CUSTOMER: "uuid", CODE: "text", ITEMS: "jsonb", SHIPPED_ITEMS: "jsonb"}
_READ = {
    TEXT: "({p} ->> '{key}')", MONEY: "({p} ->> '{key}')::numeric",
    QUANTITY: "({p} ->> '{key}')::int", CURRENCY: "({p} ->> '{key}')",
    CUSTOMER: "({p} ->> '{key}')::uuid", CODE: "({p} ->> '{key}')",
    ITEMS: "coalesce({p} -> '{key}', '[]')", SHIPPED_ITEMS: "coalesce({p} -> '{key}', '[]')",
}
_STORED = {MONEY: "to_jsonb(og_money_text({value}, cur))", ITEMS: "{value}"}
_DATA_REFERENCE = re.compile(r"\bd\.([A-Za-z_][A-Za-z0-9_]*)")


def _literal(text: str | None) -> str:
    return "null" if text is None else "'" + text.replace("'", "''") + "'"


def _variable(key: str) -> str:
    return f"d_{key.lower()}"


def _with_data(sql: str, event: EventDeclaration, render: str) -> str:
    """`sql` with each `d.key` replaced by `render` of that datum (unknown keys are an error)."""
    def replace(match: re.Match[str]) -> str:
        datum = event.datum(match[1])  # KeyError: the declaration names data it does not have
        return render.format(key=datum.key, variable=_variable(datum.key),
                             read=_READ[datum.kind].format(p="p", key=datum.key))
    return _DATA_REFERENCE.sub(replace, sql)


def _block(lines: Iterator[str] | list[str], indent: int) -> str:
    return "\n".join(" " * indent + line for line in lines)


# -- og_check ----------------------------------------------------------------------------
def _check_state(event: EventDeclaration) -> Iterator[str]:
    """The state machine's part: it comes before any data rule and wins over them."""
    if event.starts_stream:
        yield "if s.order_id is not null then"
        yield ("    perform og_fail('order_already_exists', format('order %s already exists', "
               "e.order_id), jsonb_build_object('orderId', e.order_id));")
        yield "end if;"
        return
    # the transitions are read from their table (the declarations' rows), as every reader does
    allowed = ("exists (select from order_transitions t where t.event_type = e.event_type "
               "and t.from_status = s.status)")
    if event.allowed_while:
        allowed += f" and ({event.allowed_while})"
    yield "if s.order_id is null then"
    yield ("    perform og_fail('order_not_found', format('order %s does not exist', e.order_id), "
           "jsonb_build_object('orderId', e.order_id));")
    yield f"elsif not ({allowed}) then"
    yield ("    perform og_fail('invalid_transition', format('%s is not allowed when the order is %s', "
           "e.event_type, s.status), jsonb_build_object('status', s.status, 'eventType', e.event_type));")
    yield "end if;"


def _check_data(event: EventDeclaration, datum: Data) -> Iterator[str]:
    read = _CHECK[datum.kind].format(key=datum.key,
                                     codes=", ".join(_literal(c) for c in datum.codes))
    if datum.optional:
        read = f"case when p ? '{datum.key}' then {read} end"
    yield f"{_variable(datum.key)} := {read};"
    if datum.kind == CURRENCY and event.starts_stream:
        yield f"cur := coalesce(cur, {_variable(datum.key)});  -- the order's amounts are in it"


def _check_event(event: EventDeclaration) -> Iterator[str]:
    yield from _check_state(event)
    if event.version > 1:
        yield f"if e.schema_version < {event.version} then"
        yield "    e := og_upcast(e);  -- the rules below are those of the current version"
        yield "    p := e.payload;"
        yield "end if;"
    for datum in event.data:
        yield from _check_data(event, datum)
    for rule in event.rules:
        holds = _with_data(rule.holds, event, "{variable}")
        message = _with_data(rule.message, event, "{variable}")
        yield f"if not coalesce({holds}, false) then"
        yield f"    perform og_bad_input({_literal(rule.field)}, {message});"
        yield "end if;"
    yield f"if written_version < {event.version} then"
    yield "    return written;  -- an older version is stored as written"
    yield "end if;"
    stored = [f"'{d.key}', " + _STORED[d.kind].format(value=_variable(d.key))
              for d in event.data if d.kind in _STORED and not d.optional]
    if stored:
        yield f"p := p || jsonb_build_object({', '.join(stored)});"
    for datum in event.data:
        if datum.default_sql is not None:
            yield f"if not p ? '{datum.key}' then"
            yield f"    p := p || jsonb_build_object('{datum.key}', {datum.default_sql});"
            yield "end if;"
    yield "return p;"


def og_check(catalogue: Catalogue) -> str:
    variables = {}
    for event in catalogue.events:
        for datum in event.data:
            variables[_variable(datum.key)] = _SQL_TYPE[datum.kind]
    declarations = "".join(f"    {name} {kind};\n" for name, kind in sorted(variables.items()))
    whens = "".join(f"    when {_literal(e.name)} then\n{_block(_check_event(e), 8)}\n"
                    for e in catalogue.events)
    versions = " ".join(f"when {_literal(e.name)} then {e.version}" for e in catalogue.events)
    return f"""
-- Whether `e` may follow the state `s`, checked against its type's declaration; returns the
-- payload to store. Generated from gql/catalogue.py.
create or replace function og_check(s orders_current, e order_events) returns jsonb
language plpgsql stable as $og$
declare
    p jsonb := e.payload;
    written jsonb := e.payload;
    written_version int := e.schema_version;
    cur text := s.currency;  -- the currency of the order's amounts
{declarations}begin
    if jsonb_typeof(p) is distinct from 'object' then
        perform og_bad_input('payload', 'payload must be a JSON object');
    end if;
    if e.schema_version is null or e.schema_version < 1
       or e.schema_version > (case e.event_type {versions} end) then
        perform og_bad_input('schemaVersion', format('%s has no schema_version %s',
                             e.event_type, coalesce(e.schema_version::text, 'null')));
    end if;
    case e.event_type
{whens}    else
        perform og_bad_input('eventType', format('unknown event type %s', coalesce(e.event_type, 'null')));
    end case;
    return null;
end $og$;
"""


# -- og_evolve ---------------------------------------------------------------------------
def _evolve_event(catalogue: Catalogue, event: EventDeclaration) -> Iterator[str]:
    if event.starts_stream:
        yield "n.order_id := e.order_id;"
        for f in catalogue.read_model:
            if f.initial is not None:
                yield f"n.{f.column} := {f.initial};"
    for column, sql in event.evolve.items():
        yield f"n.{column} := {_with_data(sql, event, '{read}')};"
    # the status the state machine leads to (og_check allowed the event from s.status)
    if event.to_status is not None:
        yield f"n.status := {_literal(event.to_status)};"
    if not event.evolve and not event.starts_stream and event.to_status is None:
        yield "null;"


def og_evolve(catalogue: Catalogue) -> str:
    whens = "".join(f"    when {_literal(e.name)} then\n{_block(_evolve_event(catalogue, e), 8)}\n"
                    for e in catalogue.events)
    derived = "".join(f"    n.{f.column} := {f.derived};\n"
                      for f in catalogue.read_model if f.derived)
    rounded = "".join(f"    n.{f.column} := round(n.{f.column}, coalesce(m, scale(n.{f.column})));\n"
                      for f in catalogue.read_model if f.kind == MONEY)
    versioned = [e for e in catalogue.events if e.version > 1]
    upcast = ("    if " + " or ".join(f"(e.event_type = {_literal(e.name)} and e.schema_version < "
                                      f"{e.version})" for e in versioned)
              + " then\n        e := og_upcast(e);\n    end if;\n") if versioned else ""
    return f"""
-- The fold step: the state after `e`, from the state `s` before it (og_check allowed `e`).
-- Amounts are kept with their currency's minor units. Generated from gql/catalogue.py.
create or replace function og_evolve(s orders_current, e order_events) returns orders_current
language plpgsql stable as $og$
declare
    p jsonb;
    n orders_current := s;
    m int;
begin
{upcast}    p := e.payload;
    case e.event_type
{whens}    end case;
{derived}    m := og_minor_units(n.currency);
{rounded}    n.version := e.stream_version;
    n.last_event_at := greatest(s.last_event_at, e.occurred_at);
    n.last_recorded_at := e.recorded_at;
    n.last_log_xid := e.log_xid;
    n.last_position := e.global_position;
    return n;
end $og$;
"""


# -- og_upcast ---------------------------------------------------------------------------
def og_upcast(catalogue: Catalogue) -> str:
    whens = []
    for event in catalogue.events:
        if event.version == 1:
            continue
        steps = "".join(
            f"        if e.schema_version = {n} then\n"
            f"            p := {step};\n"
            f"            e.schema_version := {n + 1};\n"
            f"        end if;\n"
            for n, step in enumerate(event.upcasts, start=1))
        whens.append(f"    when {_literal(event.name)} then\n        p := e.payload;\n{steps}"
                     "        e.payload := p;\n")
    body = ("    case e.event_type\n" + "".join(whens) + "    else null;\n    end case;\n"
            if whens else "")
    return f"""
-- An event in its type's current version (unchanged when it already is): each declared
-- upcast turns a payload of one version into the next. Generated from gql/catalogue.py.
create or replace function og_upcast(e order_events) returns order_events
language plpgsql immutable as $og$
declare
    p jsonb;
begin
{body}    return e;
end $og$;
"""


# -- promoted columns, the read model's write, natural keys, defaults --------------------
def promoted_columns(catalogue: Catalogue) -> dict[str, str]:
    """Each promoted column of `order_events` and its SQL type."""
    columns: dict[str, str] = {}
    for event in catalogue.events:
        for datum in event.data:
            if datum.promoted:
                kind = _SQL_TYPE[datum.kind]
                if columns.setdefault(datum.promoted, kind) != kind:
                    raise ValueError(f"column {datum.promoted} is promoted with two types")
    return columns


def og_promote(catalogue: Catalogue) -> str:
    resets = "".join(f"    e.{c} := null;\n" for c in promoted_columns(catalogue))
    whens = []
    for event in catalogue.events:
        sets = [f"e.{d.promoted} := {_READ[d.kind].format(p='e.payload', key=d.key)};"
                for d in event.data if d.promoted]
        if sets:
            whens.append(f"    when {_literal(event.name)} then\n{_block(sets, 8)}\n")
    body = ("    case e.event_type\n" + "".join(whens) + "    else null;\n    end case;\n"
            if whens else "")
    return f"""
-- The promoted columns of `e`, from its data (what a writer gave there is overwritten).
-- Generated from gql/catalogue.py.
create or replace function og_promote(e order_events) returns order_events
language plpgsql immutable as $og$
begin
{resets}{body}    return e;
end $og$;
"""


def og_origin(catalogue: Catalogue) -> str:
    kept = ("order_id", "customer_id", "currency", "placed_at")
    lines = []
    for f in catalogue.read_model:
        if f.column in kept:
            lines.append(f"n.{f.column} := p_order.{f.column};")
        elif f.column == "version":
            lines.append("n.version := 0;")
        elif f.initial is not None and f.kind == MONEY:
            lines.append(f"n.{f.column} := round({f.initial}, "
                         "coalesce(og_minor_units(p_order.currency), 0));")
        elif f.initial is not None:
            lines.append(f"n.{f.column} := {f.initial};")
    return f"""
-- An order's state before its first event: no status, version 0, every field at its initial
-- value (amounts in the order's currency). Generated from gql/catalogue.py.
create or replace function og_origin(p_order orders_current) returns orders_current
language plpgsql stable as $og$
declare
    n orders_current;
begin
{_block(lines, 4)}
    return n;
end $og$;
"""


def og_store(catalogue: Catalogue) -> str:
    columns = [f.column for f in catalogue.read_model]
    changed = [c for c in columns if c != "order_id"]
    return f"""
-- Writes the read model's row `nxt` (inserted for a new stream), every column of it.
-- Generated from gql/catalogue.py.
create or replace function og_store(cur orders_current, nxt orders_current) returns void
language plpgsql as $og$
begin
    if cur.order_id is null then
        insert into orders_current ({', '.join(columns)})
        values ({', '.join('nxt.' + c for c in columns)});
    else
        update orders_current set ({', '.join(changed)})
            = ({', '.join('nxt.' + c for c in changed)})
        where order_id = nxt.order_id;
    end if;
end $og$;
"""


def _money_columns(catalogue: Catalogue) -> list[str]:
    return [f.column for f in catalogue.read_model if f.kind == MONEY]


def og_tally(catalogue: Catalogue) -> str:
    money = _money_columns(catalogue)
    columns = ", ".join(["status", "currency", "event_type", "orders", "events", *money])

    def row(side: str, sign: str, event: str, orders: str, events: str) -> str:
        amounts = "".join(f", {sign}{side}.{c}" for c in money)
        return f"({side}.status, {side}.currency, {event}, {orders}, {events}{amounts})"

    changed = " or ".join(f"cur.{c} is distinct from nxt.{c}" for c in ("status", *money))
    sums = ", ".join(f"sum({c})" for c in money)
    nonzero = " or ".join(f"sum({c}) <> 0" for c in money)
    return f"""
-- What an append changes in the tallies (order_tallies): inserted, never updated, so that
-- concurrent appends do not wait for each other. Generated from gql/catalogue.py.
create or replace function og_tally(cur orders_current, nxt orders_current, p_event_type text)
returns void language plpgsql as $og$
begin
    if cur.order_id is null then
        insert into order_tallies ({columns}) values {row("nxt", "", "p_event_type", "1", "1")};
    elsif {changed} then
        insert into order_tallies ({columns})
        values {row("cur", "-", "null", "-1", "0")}, {row("nxt", "", "p_event_type", "1", "1")};
    else
        insert into order_tallies (event_type, events) values (p_event_type, 1);
    end if;
end $og$;

-- Folds the tallies' changes into one row per (status, currency, event type). The changes a
-- concurrent append inserts meanwhile stay as they are (this statement does not see them).
-- Generated from gql/catalogue.py.
create or replace function og_compact_tallies() returns bigint
language sql security definer set search_path from current as $og$
    with gone as (delete from order_tallies returning *),
    kept as (
        insert into order_tallies ({columns})
        select status, currency, event_type, sum(orders), sum(events), {sums} from gone
        group by status, currency, event_type
        having sum(orders) <> 0 or sum(events) <> 0 or {nonzero}
        returning 1)
    select (select count(*) from gone) - (select count(*) from kept)
$og$;

-- The tallies counted again from the read model and the log (rebuilds, upgrades).
-- Generated from gql/catalogue.py.
create or replace function og_recount_tallies() returns void
language sql security definer set search_path from current as $og$
    delete from order_tallies;
    insert into order_tallies ({", ".join(["status", "currency", "orders", *money])})
    select status, currency, count(*), {sums} from orders_current group by status, currency;
    insert into order_tallies (event_type, events)
    select event_type, count(*) from order_events group by event_type;
$og$;
"""


def order_statistics(catalogue: Catalogue) -> str:
    money = _money_columns(catalogue)
    out = "".join(f", {c} numeric" for c in money)
    tallied = "".join(f", sum(t.{c})" for c in money)
    counted = "".join(f", sum(o.{c})" for c in money)
    return f"""
-- Orders by status and currency under the filters of an orders page, with the sums of their
-- amounts: the tallies answer when only statuses filter, else the read model is counted from
-- the index that answers (one customer's orders, a placement range). Generated from
-- gql/catalogue.py.
create or replace function og_order_statistics(
    p_statuses text[], p_customer uuid, p_placed_after timestamptz, p_placed_before timestamptz,
    p_viewer uuid)
returns table (status text, currency text, orders bigint{out})
language sql stable as $og$
    select t.status, t.currency, sum(t.orders)::bigint{tallied} from order_tallies t
    where coalesce(p_customer, p_viewer) is null and p_placed_after is null
      and p_placed_before is null
      and t.status is not null and (p_statuses is null or t.status = any(p_statuses))
    group by t.status, t.currency having sum(t.orders) <> 0
    union all
    select o.status, o.currency, count(*){counted} from orders_current o
    where coalesce(p_customer, p_viewer) is not null and o.customer_id = coalesce(p_customer, p_viewer)
      and og_orders_page_filter(o => o, p_after_at => null, p_after_id => null,
                                p_statuses => p_statuses, p_customer => p_customer,
                                p_placed_after => p_placed_after,
                                p_placed_before => p_placed_before, p_viewer => p_viewer)
    group by o.status, o.currency
    union all
    select o.status, o.currency, count(*){counted} from orders_current o
    where coalesce(p_customer, p_viewer) is null
      and (p_placed_after is not null or p_placed_before is not null)
      and o.placed_at > coalesce(p_placed_after, '-infinity')
      and o.placed_at < coalesce(p_placed_before, 'infinity')
      and (p_statuses is null or o.status = any(p_statuses))
    group by o.status, o.currency
$og$;
"""


def unique_keys(catalogue: Catalogue) -> list[tuple[EventDeclaration, Data]]:
    return [(e, d) for e in catalogue.events for d in e.data if d.unique]


def unique_index(column: str) -> str:
    return f"order_events_{column}_key"


def og_holder(catalogue: Catalogue) -> str:
    whens = []
    for event, datum in unique_keys(catalogue):
        whens.append(
            f"    when {_literal(event.name)} then\n"
            f"        select * into holder from order_events x "
            f"where x.{datum.promoted} = p_payload ->> '{datum.key}';\n"
            f"        if found then\n"
            f"            natural_key := '{datum.key}';\n"
            f"            return;\n"
            f"        end if;\n")
    body = ("    case p_event_type\n" + "".join(whens) + "    else null;\n    end case;\n"
            if whens else "")
    return f"""
-- The event already holding one of the natural keys (unique data) `p_payload` names, and
-- which key. Generated from gql/catalogue.py.
create or replace function og_holder(p_event_type text, p_payload jsonb,
                                     out holder order_events, out natural_key text)
language plpgsql stable as $og$
begin
{body}end $og$;
"""


def og_defaulted(catalogue: Catalogue) -> str:
    whens = []
    for event in catalogue.events:
        keys = [d.key for d in event.data if d.default_sql is not None]
        if keys:
            whens.append(f"when {_literal(event.name)} then array[{', '.join(map(_literal, keys))}]")
    cases = f"case p_event_type {' '.join(whens)} else array[]::text[] end" if whens \
        else "array[]::text[]"
    return f"""
-- The keys the database fills in for an event type when a writer leaves them out.
-- Generated from gql/catalogue.py.
create or replace function og_defaulted(p_event_type text) returns text[]
language sql immutable as $og$ select {cases} $og$;
"""


def og_starts_stream(catalogue: Catalogue) -> str:
    starting = ", ".join(_literal(e.name) for e in catalogue.events if e.starts_stream)
    return f"""
-- Whether an event type starts a new stream. Generated from gql/catalogue.py.
create or replace function og_starts_stream(p_event_type text) returns boolean
language sql immutable as $og$ select p_event_type in ({starting}) $og$;
"""


# -- tables and reference rows -----------------------------------------------------------
def columns(catalogue: Catalogue) -> str:
    """The read model's table and the log's promoted columns, as the declarations have them."""
    model = ",\n    ".join(f"{f.column} {f.sql_type}" for f in catalogue.read_model)
    lines = [f"create table if not exists orders_current (\n    {model}\n);"]
    lines += [f"alter table orders_current add column if not exists {f.column} {f.sql_type};"
              for f in catalogue.read_model]
    for column, kind in promoted_columns(catalogue).items():
        lines.append(f"alter table order_events add column if not exists {column} {kind};")
    for column in _money_columns(catalogue):
        lines.append(f"alter table order_tallies add column if not exists {column} numeric "
                     "not null default 0;")
    for _event, datum in unique_keys(catalogue):
        lines.append(f"create unique index if not exists {unique_index(datum.promoted or '')} "
                     f"on order_events ({datum.promoted}) where {datum.promoted} is not null;")
    return "\n".join(lines) + "\n"


def _values(rows: list[tuple[str | int | bool | None, ...]]) -> str:
    def one(value: str | int | bool | None) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return _literal(value)
    return ",\n    ".join("(" + ", ".join(one(v) for v in row) + ")" for row in rows)


def reference_rows(catalogue: Catalogue) -> str:
    """Statuses, transitions, current versions and grants: the declarations' rows, and only
    those (rows of types no longer declared are removed)."""
    statuses = _values([(s.name, s.is_final) for s in catalogue.statuses])
    transitions = _values([(t, f, to) for t, f, to in catalogue.transitions()])
    versions = _values([(e.name, e.version) for e in catalogue.events])
    grants = _values([(g.role, g.scope, e.name, g.own_orders, g.from_status)
                      for e in catalogue.events for g in e.grants]
                     + [("admin", "", e.name, False, None) for e in catalogue.events])
    return f"""
insert into order_statuses (status, is_final) values
    {statuses}
on conflict (status) do update set is_final = excluded.is_final
    where order_statuses.is_final is distinct from excluded.is_final;

with wanted (event_type, from_status, to_status) as (values
    {transitions}
), removed as (
    delete from order_transitions t
    where not exists (select from wanted w where w.event_type = t.event_type
                      and w.from_status is not distinct from t.from_status
                      and w.to_status = t.to_status)
)
insert into order_transitions (event_type, from_status, to_status)
select event_type, from_status, to_status from wanted w
where not exists (select from order_transitions t where w.event_type = t.event_type
                  and w.from_status is not distinct from t.from_status
                  and w.to_status = t.to_status);

with wanted (event_type, schema_version) as (values
    {versions}
), removed as (
    delete from event_schema_versions v
    where not exists (select from wanted w where w.event_type = v.event_type)
)
insert into event_schema_versions (event_type, schema_version)
select event_type, schema_version from wanted
on conflict (event_type) do update set schema_version = excluded.schema_version
    where event_schema_versions.schema_version is distinct from excluded.schema_version;

with wanted (role, scope, event_type, own_orders, from_status) as (values
    {grants}
), removed as (
    delete from append_grants g
    where not exists (select from wanted w where (w.role, w.scope, w.event_type)
                      = (g.role, g.scope, g.event_type))
)
insert into append_grants (role, scope, event_type, own_orders, from_status)
select role, scope, event_type, own_orders, from_status from wanted
on conflict (role, scope, event_type) do update set
    own_orders = excluded.own_orders, from_status = excluded.from_status
    where (append_grants.own_orders, append_grants.from_status)
          is distinct from (excluded.own_orders, excluded.from_status);
"""


def generate(catalogue: Catalogue) -> str:
    """The tables, rows and rules the catalogue puts in the database, in the order they can
    be applied (schema.sql's `-- @catalogue` line)."""
    return "\n".join([
        "-- ---- generated from gql/catalogue.py by gql/store/rules.py ----",
        columns(catalogue), reference_rows(catalogue), og_upcast(catalogue),
        og_check(catalogue), og_evolve(catalogue), og_promote(catalogue), og_origin(catalogue),
        og_store(catalogue), og_tally(catalogue),
        og_holder(catalogue), og_defaulted(catalogue), og_starts_stream(catalogue),
        "-- ---- end of the generated part ----",
    ])


def generate_reads(catalogue: Catalogue) -> str:
    """The reads that depend on the declarations and on schema.sql's page functions
    (schema.sql's `-- @catalogue reads` line)."""
    return "\n".join([
        "-- ---- generated from gql/catalogue.py by gql/store/rules.py ----",
        order_statistics(catalogue),
        "-- ---- end of the generated part ----",
    ])
