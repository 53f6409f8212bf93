"""What each read field renders in SQL: the table the compiler walks, type by type.

Plain fields come from their descriptions in gql/schema/fields.py (the resolvers read the
same descriptions); the rest — roots, connections, an order's customer, timeline and
state — are plans here that call the same page functions as the resolvers' store queries
(schema.sql's og_orders_page, og_log_page, og_timeline_page, og_state_at). A field missing
from this table, or an argument its plan does not name, makes the document go to the
resolvers (gql/schema/compiled.py), so the compiled path never answers what it does not
understand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    parse,
)
from graphql.execution.values import get_variable_values

from gql.catalogue import CATALOGUE
from gql.config import Settings
from gql.declaration import MONEY
from gql.events import EventType, Position
from gql.schema.compiled import (
    Args,
    Compiler,
    Plan,
    PlanError,
    Plans,
    Unsupported,
    plan,
    value,
    with_viewer,
)
from gql.schema.fields import (
    ACTOR,
    CUSTOMER,
    EVENT,
    ITEM,
    ITEMS,
    LINES,
    ORDER,
    ORDER_CURSOR,
    PAYLOAD,
    POSITION,
    SHIPPED_ITEM,
    STATE,
    STATUS_CHANGE,
    TIMELINE_CURSOR,
    Field,
)
from gql.schema.node import decode_node_id, node_id
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE, decode_cursor, page_size
from gql.store.append import APPEND_CALL


def compile_query(c: Compiler) -> Plan:
    if c.operation.operation.value != "query":
        raise Unsupported("only queries")
    fields = c.collect("Query", c.operation.selection_set)
    # bytes, so the answer passes through Python untouched; timestamps render natively
    # in the session's UTC as DateTime does (gql/schema/scalars.py)
    return c.plan(f"select convert_to({c.obj('Query', None, _query(c), fields)}::text, 'UTF8')")


# A subscription's rendering reads one event per row of its batch: `p` is the batch's row
# (event_id, status, previous_status, n), `ev` the event read through og_event (og_upcast).
LIVE_EVENT = "ev"


def compile_subscription(c: Compiler) -> Plan:
    """The statement rendering a subscription's payload for a batch of log rows: its
    parameters are the document's, then the rows' event ids (uuid[]), statuses and previous
    statuses (text[], as the log read gives them); it returns (n, the `data` JSON text) for
    the n-th row (from 1) the viewer may see. The hub applies the root field's arguments
    (which events), so the statement renders only what is selected."""
    if c.operation.operation.value != "subscription":
        raise Unsupported("only subscriptions")
    fields = c.collect("Subscription", c.operation.selection_set)
    plans = {
        "orderEvents": plan(lambda n, _: _event(c, LIVE_EVENT, n),
                            elsewhere=("orderId", "types", "after")),
        "orderStatusChanged": plan(lambda n, _: _status_change(c, n),
                                   elsewhere=("orderId", "statuses", "after")),
    }
    built = c.obj("Subscription", None, plans, fields)
    viewer = c.viewer()
    batch = len(c.binders)
    return c.plan(
        f"select p.n, {built}::text from unnest(${batch + 1}::uuid[], ${batch + 2}::text[], "
        f"${batch + 3}::text[]) with ordinality p(event_id, status, previous_status, n) "
        f"cross join lateral og_event(p_id => p.event_id) {LIVE_EVENT} "
        f"where og_sees({viewer}, {LIVE_EVENT}.customer_id) order by p.n")


def _status_change(c: Compiler, nodes: list[FieldNode]) -> str:
    plans = {**_columns(STATUS_CHANGE, "p"),
             "order": plan(lambda n, _: _current_order(c, LIVE_EVENT, n)),
             "event": plan(lambda n, _: _event(c, LIVE_EVENT, n))}
    return c.obj("OrderStatusChange", nodes, plans)


def compile_append(c: Compiler, nodes: list[FieldNode]) -> str:
    """The statement that appends (called as gql.store.append binds it) and renders the
    selected `AppendResult` from the row it returns."""
    c.row_local = True
    plans = {"deduplicated": value("a.deduplicated"),
             "event": plan(lambda n, _: _event(c, "e", n)),
             "order": plan(lambda n, _: _order(c, "o", n))}
    built = c.obj("AppendResult", nodes, plans)
    if c.binders:
        raise Unsupported("arguments inside an append's result")
    return (f"select convert_to({built}::text, 'UTF8'), a.deduplicated from {APPEND_CALL}, "
            "lateral (select (a.event).*) e, lateral (select (a.current).*) o")


def _columns(fields: tuple[Field, ...], alias: str) -> dict[str, Any]:
    return {f.name: value(f.sql(alias)) for f in fields if f.form not in LINES}


def _values(items: list[Any] | None) -> list[str] | None:
    return [item.value for item in items] if items else None


# -- Query -------------------------------------------------------------------------------
def _query(c: Compiler) -> Plans:
    def one(rows: Callable[[str, str], str], render: Any) -> Any:
        """A root that reads one row by id: `rows(alias, id)` is its FROM … WHERE."""
        def sql(nodes: list[FieldNode], args: Args) -> str:
            t = c.alias()
            return (f"(select {render(c, t, nodes)} "
                    f"from {rows(t, args.param(lambda a: a['id'], 'uuid'))} "
                    f"and og_sees({c.viewer()}, {t}.customer_id))")
        return plan(sql, "id")

    return {
        "order": one(lambda t, k: f"orders_current {t} where {t}.order_id = {k}", _order),
        "customer": one(lambda t, k: f"customers {t} where {t}.customer_id = {k}", _customer),
        # the log through og_upcast, as every reader of it
        "event": one(lambda t, k: f"og_event(p_id => {k}) {t} where true", _event),
        "orders": plan(lambda nodes, args: _orders_connection(c, nodes, args, None), "first",
                       "after", "status", "customerId", "placedAfter", "placedBefore"),
        "events": plan(lambda nodes, args: _log_connection(c, nodes, args), "first", "after",
                       "types", "orderId", "correlationId", "occurredAfter", "occurredBefore"),
        "orderStatistics": plan(lambda nodes, args: _statistics(c, nodes, args), "status",
                                "customerId", "placedAfter", "placedBefore"),
        "logPosition": value(
            "coalesce((select og_position(x.log_xid, x.global_position) from order_events x "
            "where x.log_xid < pg_snapshot_xmin(pg_current_snapshot()) "
            "order by x.log_xid desc, x.global_position desc limit 1), "
            f"'{Position(0, 0).encode()}')"),
        "node": plan(lambda nodes, args: _node(c, nodes, args), "nodeId"),
        "nodes": plan(lambda nodes, args: _nodes(c, nodes, args), "nodeIds"),
    }


# The objects a nodeId may name, each read by id within the viewer's scope: the row source
# (`k` is the id's SQL) and how its object renders.
def _node_kinds(c: Compiler) -> dict[str, tuple[Callable[[str, str], str], Any]]:
    kinds: dict[str, tuple[Callable[[str, str], str], Any]] = {
        "Order": (lambda t, k: f"orders_current {t} where {t}.order_id = {k}", _order),
        "Customer": (lambda t, k: f"customers {t} where {t}.customer_id = {k}", _customer)}
    for event_type in EventType:
        kinds[event_type.value] = (
            lambda t, k, name=event_type.value: f"og_event(p_id => {k}) {t} where {t}.event_type = '{name}'",
            _event)
    return kinds


def _node(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    kinds = _node_kinds(c)
    kind = args.shape(lambda a: decode_node_id(a["nodeId"])[0])
    if kind not in kinds:
        return "null"  # a well-formed id of no object
    rows, render = kinds[kind]
    t = c.alias()
    id = args.param(lambda a: decode_node_id(a["nodeId"])[1], "uuid")
    return (f"(select {render(c, t, nodes)} from {rows(t, id)} "
            f"and og_sees({c.viewer()}, {t}.customer_id))")


def _nodes(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    """Each id's object (or null), in the order asked: one subquery per kind of object."""
    kinds = _node_kinds(c)
    decoded = lambda a: [decode_node_id(text) for text in a["nodeIds"]]  # noqa: E731
    names = args.param(lambda a: [kind for kind, _ in decoded(a)], "text[]")
    ids = args.param(lambda a: [id for _, id in decoded(a)], "uuid[]")
    viewer = c.viewer()
    k, t = c.alias(), c.alias()
    whens = " ".join(
        f"when '{kind}' then (select {render(c, t, nodes)} from {rows(t, f'{k}.id')} "
        f"and og_sees({viewer}, {t}.customer_id))" for kind, (rows, render) in kinds.items())
    return (f"(select coalesce(json_agg(case {k}.kind {whens} end order by {k}.n), '[]'::json) "
            f"from unnest({names}, {ids}) with ordinality {k}(kind, id, n))")


def _order_filters(args: Args) -> tuple[str, str]:
    """An orders page's filters as og_orders_page, og_orders_count and og_order_statistics
    take them: the statuses, and the named arguments after them."""
    return (args.optional(lambda a: _values(a['status']), 'text[]'),
            f"p_customer => {args.optional(lambda a: a['customerId'], 'uuid')}, "
            f"p_placed_after => {args.optional(lambda a: a['placedAfter'], 'timestamptz')}, "
            f"p_placed_before => {args.optional(lambda a: a['placedBefore'], 'timestamptz')}")


def _orders_connection(c: Compiler, nodes: list[FieldNode], args: Args,
                       customer: str | None) -> str:
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], ORDERS_PAGE, cap))
    after = args.shape(lambda a: a["after"] is not None)

    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        return decode_cursor(a["after"], "o", datetime, uuid.UUID) if a["after"] else (None, None)

    viewer = c.viewer()  # also under Customer.orders: the reading customer, not the listed one
    statuses, filters = (_order_filters(args) if customer is None  # Customer.orders: its own
                         else ("null", f"p_customer => {customer}, p_placed_after => null, "
                                       "p_placed_before => null"))

    def source(limit: int) -> str:  # the cursor's parameters only where a page is read
        after_at, after_id = (args.optional(lambda a: key(a)[0], "timestamptz"),
                              args.optional(lambda a: key(a)[1], "uuid"))
        return (f"og_orders_page(p_after_at => {after_at}, p_after_id => {after_id}, "
                f"p_statuses => {statuses}, {filters}, p_lim => {limit}, p_viewer => {viewer})")

    return c.connection(
        "OrderConnection", nodes, source, ("last_event_at desc", "order_id desc"), size,
        after, lambda r, n: _order(c, r, n), ORDER_CURSOR.sql,
        count=f"og_orders_count(p_statuses => {statuses}, {filters}, p_viewer => {viewer})")


def _statistics(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    statuses, filters = _order_filters(args)
    rows = f"og_order_statistics(p_statuses => {statuses}, {filters}, p_viewer => {c.viewer()})"
    money = {f.graphql: value(f"b.{f.column}::text") for f in CATALOGUE.read_model
             if f.kind == MONEY and f.graphql}
    sums = "".join(f", sum(s.{f.column}) as {f.column}" for f in CATALOGUE.read_model
                   if f.kind == MONEY and f.graphql)

    def grouped(type_name: str, key: str, selected: list[FieldNode], plans: Plans,
                extra: str = "") -> str:
        return (f"(select coalesce(json_agg({c.obj(type_name, selected, plans)} order by b.{key}), "
                f"'[]'::json) from (select s.{key}, sum(s.orders) as count{extra} from {rows} s "
                f"group by s.{key}) b)")

    plans = {
        "count": value(f"(select coalesce(sum(s.orders), 0) from {rows} s)"),
        "byStatus": plan(lambda n, _: grouped(
            "StatusCount", "status", n, {"status": value("b.status"), "count": value("b.count")})),
        "byCurrency": plan(lambda n, _: grouped(
            "CurrencyTotals", "currency", n,
            {"currency": value("b.currency"), "count": value("b.count"), **money}, sums)),
    }
    return c.obj("OrderStatistics", nodes, plans)


def _log_connection(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    size = args.shape(lambda a: page_size(a["first"], EVENTS_PAGE, c.settings.max_page_size))
    after = args.shape(lambda a: a["after"] is not None)

    def start(a: dict[str, Any]) -> Position:
        return Position.decode(a["after"]) if a["after"] else Position(0, 0)

    types = args.optional(lambda a: _values(a['types']), 'text[]')
    filters = (f"p_stream => {args.optional(lambda a: a['orderId'], 'uuid')}, "
               f"p_correlation => {args.optional(lambda a: a['correlationId'], 'uuid')}, "
               f"p_occurred_after => {args.optional(lambda a: a['occurredAfter'], 'timestamptz')}, "
               f"p_occurred_before => {args.optional(lambda a: a['occurredBefore'], 'timestamptz')}")
    viewer = c.viewer()

    def source(limit: int) -> str:  # the cursor's parameters only where a page is read
        start_at = (f"{args.param(lambda a: str(start(a).xid), 'text')}::xid8, "
                    f"p_after_seq => {args.param(lambda a: start(a).seq, 'int8')}")
        return (f"og_log_page(p_after_xid => {start_at}, p_types => {types}, {filters}, "
                f"p_lim => {limit}, p_viewer => {viewer})")

    return c.connection(
        "OrderEventConnection", nodes, source, ("log_xid", "global_position"), size,
        after, lambda r, n: _event(c, r, n), POSITION.sql,
        count=f"og_log_count(p_types => {types}, {filters}, p_viewer => {viewer})")


# -- Order, Customer, items, state -------------------------------------------------------
def _order(c: Compiler, o: str, nodes: list[FieldNode]) -> str:
    plans = {**_columns(ORDER, o), "items": plan(lambda n, _: _lines(c, f"{o}.items", "OrderItem", n)),
             "nodeId": value(f"og_cursor('Order', {o}.order_id::text)")}
    if not c.row_local:  # these read the tables again
        plans.update({
            "customer": plan(lambda n, _: (
                f"(select {_customer(c, 'k' + o, n)} from customers k{o} "
                f"where k{o}.customer_id = {o}.customer_id)")),
            "events": plan(lambda n, args: _timeline(c, o, n, args), "first", "after", "types",
                           "orderBy"),
            "stateAt": plan(lambda n, args: _state_at(c, o, n, args), "asOf", "version", "axis"),
        })
    return c.obj("Order", nodes, plans)


def _customer(c: Compiler, k: str, nodes: list[FieldNode]) -> str:
    plans = {**_columns(CUSTOMER, k), "nodeId": value(f"og_cursor('Customer', {k}.customer_id::text)"),
             "orders": plan(lambda n, args: _orders_connection(c, n, args, f"{k}.customer_id"),
                            "first", "after")}
    return c.obj("Customer", nodes, plans)


def _lines(c: Compiler, source: str, type_name: str, nodes: list[FieldNode]) -> str:
    """A JSON list of the objects of a jsonb array (order items, shipped items), in order."""
    i = c.alias()
    fields = ITEM if type_name == "OrderItem" else SHIPPED_ITEM
    return (f"(select coalesce(json_agg({c.obj(type_name, nodes, _columns(fields, f'{i}.v'))} "
            f"order by {i}.n), '[]'::json) "
            f"from jsonb_array_elements({source}) with ordinality {i}(v, n))")


def _state_at(c: Compiler, o: str, nodes: list[FieldNode], args: Args) -> str:
    axis = args.shape(lambda a: a["axis"].value)
    version = args.optional(lambda a: a["version"], "int8")
    as_of = args.optional(lambda a: a["asOf"], "timestamptz")
    s = c.alias()
    items = next(f for f in STATE if f.name == "items")
    plans = {**_columns(STATE, s),
             "items": plan(lambda n, _: _lines(c, items.sql(s), "OrderItem", n))}
    return (f"(select {c.obj('OrderState', nodes, plans)} "
            f"from og_state_at(p_stream => {o}.order_id, p_up_to_version => {version}, "
            f"p_as_of => {as_of}, p_axis => '{axis}') {s})")


# -- events ------------------------------------------------------------------------------
def _timeline(c: Compiler, o: str, nodes: list[FieldNode], args: Args) -> str:
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], cap, cap))
    after = args.shape(lambda a: a["after"] is not None)
    order = args.shape(lambda a: a["orderBy"].value)

    def version(a: dict[str, Any]) -> int | None:
        return decode_cursor(a["after"], "v", int)[0] if a["after"] else None

    types = args.optional(lambda a: _values(a["types"]), "text[]")

    def source(limit: int) -> str:  # the cursor's parameter only where a page is read
        after_version = args.optional(version, "int8")
        return (f"og_timeline_page(p_stream => {o}.order_id, p_types => {types}, "
                f"p_after_version => {after_version}, p_order_by => '{order}', p_lim => {limit})")

    keys = ("stream_version",) if order == "stream_version" else (order, "stream_version")
    return c.connection(
        "OrderEventConnection", nodes, source, keys, size, after, lambda r, n: _event(c, r, n),
        TIMELINE_CURSOR.sql, count=f"og_timeline_count(p_stream => {o}.order_id, p_types => {types})")


def _event_plans(c: Compiler, e: str, event_type: EventType) -> Plans:
    plans = {**_columns(EVENT, e), **_columns(PAYLOAD[event_type], f"{e}.payload"),
             "nodeId": value(f"og_cursor({e}.event_type, {e}.event_id::text)"),
             "actor": plan(lambda n, _: (
                 f"case when coalesce({e}.actor_type, '') = '' then null else "
                 f"{c.obj('Actor', n, _columns(ACTOR, e))} end"))}
    for field in PAYLOAD[event_type]:
        if field.form in LINES:
            line_type = "OrderItem" if field.form is ITEMS else "ShippedItem"
            source = field.sql(f"{e}.payload")
            plans[field.name] = plan(lambda n, _, s=source, t=line_type: _lines(c, s, t, n))
    if not c.row_local:  # reads the tables again
        plans["order"] = plan(lambda n, _: _current_order(c, e, n))
    return plans


def _current_order(c: Compiler, e: str, nodes: list[FieldNode]) -> str:
    """The order of the event `e` as it is now."""
    return (f"(select {_order(c, 'o' + e, nodes)} from orders_current o{e} "
            f"where o{e}.order_id = {e}.order_id)")


def _event(c: Compiler, e: str, nodes: list[FieldNode]) -> str:
    """One object per concrete type, chosen by the row's event type; types whose objects
    render alike (the interface's fields, no fragment of their own) share one. The stored
    event type is the GraphQL type's name, so `__typename` reads it from the row."""
    shared: dict[str, list[str]] = {}
    for t in EventType:
        built = c.obj(t.value, None, _event_plans(c, e, t), c.selected(t.value, nodes),
                      typename=f"{e}.event_type")
        shared.setdefault(built, []).append(t.value)
    if len(shared) == 1:
        return next(iter(shared))
    whens = " ".join(f"when {e}.event_type in ({', '.join(map(repr, types))}) then {built}"
                     for built, types in shared.items())  # type names: no quotes to escape
    return f"case {whens} end"


# -- every plan reads what it declares -------------------------------------------------
def verify_plans(schema: GraphQLSchema, settings: Settings) -> None:
    """Compile one document per field with arguments, every argument given, and check that
    each plan read every argument it declares (reading one it does not declare raises at
    once): an argument a plan forgets to read fails here, when the schema is built, instead
    of being ignored by the compiled path."""
    problems = []
    for document, variables in _probes(schema):
        parsed = parse(document)
        operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
        coerced = get_variable_values(schema, operation.variable_definitions or [], variables)
        if isinstance(coerced, list):
            raise PlanError(f"{document}: {coerced}")
        coerced = with_viewer(coerced, None)
        c = Compiler(schema, parsed, operation, coerced, settings)
        try:
            compiled = (compile_subscription(c) if operation.operation.value == "subscription"
                        else compile_query(c))
        except Unsupported as exc:
            problems.append(f"{document} is declined: {exc}")
            continue
        compiled.bind(coerced)  # what the parameters read
        for field, args in c.rendered:
            if args.declared - args.read:
                problems.append(f"{field} never reads {sorted(args.declared - args.read)}")
    if problems:
        raise PlanError("; ".join(sorted(set(problems))))


def _probes(schema: GraphQLSchema) -> Iterator[tuple[str, dict[str, Any]]]:
    """(document, variables) reaching each field that takes arguments, every argument a
    variable: null for a nullable one, a sample of its type for a required one."""
    for root, keyword in ((schema.query_type, "query"), (schema.subscription_type, "subscription")):
        seen: set[str] = set()
        queue: list[tuple[Any, str, str, dict[str, str]]] = [(root, "{ ", " }", {})]
        while queue:
            owner, opening, closing, declared = queue.pop(0)
            if owner is None or owner.name in seen:
                continue
            seen.add(owner.name)
            if isinstance(owner, GraphQLInterfaceType):
                for concrete in schema.get_implementations(owner).objects:
                    queue.append((concrete, f"{opening}... on {concrete.name} {{ ", f" }}{closing}",
                                  declared))
            for name, field in owner.fields.items():
                given = field.args
                variables = {**declared, **{f"{owner.name}_{name}_{a}": t.type
                                            for a, t in given.items()}}
                call = name + ("(" + ", ".join(f"{a}: ${owner.name}_{name}_{a}" for a in given) + ")"
                               if given else "")
                named = get_named_type(field.type)
                leaf = "" if isinstance(named, GraphQLScalarType | GraphQLEnumType) else " { __typename }"
                if field.args:
                    signature = ", ".join(f"${v}: {t}" for v, t in variables.items())
                    yield (f"{keyword}{f'({signature})' if signature else ''} "
                           f"{opening}{call}{leaf}{closing}",
                           {v: _sample(schema, t) for v, t in variables.items()})
                if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and keyword == "query":
                    queue.append((named, f"{opening}{call} {{ ", f" }}{closing}", variables))


def _sample(schema: GraphQLSchema, kind: Any) -> Any:
    """A value of a required argument's type; None for a nullable one."""
    if not isinstance(kind, GraphQLNonNull):
        return None
    inner = kind.of_type
    if isinstance(inner, GraphQLList):
        return [_sample(schema, inner.of_type)]
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values))
    return {"UUID": str(uuid.UUID(int=0)), "Int": 1, "ID": node_id("Order", uuid.UUID(int=0)),
            "String": "x",
            "DateTime": "2000-01-01T00:00:00Z", "Boolean": False}[inner.name]
