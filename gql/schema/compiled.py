"""The fast path for queries: one GraphQL document becomes one SQL statement returning JSON.

The strawberry resolvers define what every field means. For the read fields listed here
this module renders the same answer inside PostgreSQL, with the same page functions and
text forms (schema.sql's og_*_page, og_money_text, og_iso, og_position, og_cursor), so a
page of orders with customers and timelines costs one round trip and no per-field Python.
Whatever it does not know — introspection, an argument that would be an error, more fields
than json_build_object takes — raises Unsupported and the resolvers answer instead.
tests/test_compiled.py checks that both paths give the same data.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from graphql.execution.values import get_argument_values, get_directive_values

from gql.config import Settings
from gql.errors import DomainError
from gql.events import EventType, Position
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE, decode_cursor, page_size
from gql.store.append import APPEND_CALL


class Unsupported(Exception):
    """The document needs the resolvers."""


Read = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Plan:
    """A compiled statement, reusable for every request whose variables give the same shape:
    `guards` are what the shape assumed, `binders` compute the parameters of each request."""

    sql: str
    guards: tuple[tuple[Read, Any], ...]
    binders: tuple[Read, ...]

    def fits(self, variables: dict[str, Any]) -> bool:
        return guards_hold(self.guards, variables)

    def bind(self, variables: dict[str, Any]) -> list[Any]:
        """The parameters; a DomainError means the resolvers must answer (and report it)."""
        return [read(variables) for read in self.binders]


def guards_hold(guards: tuple[tuple[Read, Any], ...], variables: dict[str, Any]) -> bool:
    """Whether a plan compiled for other variables fits these."""
    for read, expected in guards:
        try:
            if read(variables) != expected:
                return False
        except DomainError:
            return False
    return True


class Args:
    """One field's arguments, read again from each request's variables."""

    def __init__(self, compiler: Compiler, type_name: str, node: FieldNode) -> None:
        self.compiler = compiler
        self.definition = compiler.schema.get_type(type_name).fields[node.name.value]  # type: ignore[union-attr]
        self.node = node
        self._memo: tuple[dict[str, Any], dict[str, Any]] | None = None
        # arguments written as literals (or left out) are the same for every request
        self.fixed = (None if _uses_variables(node.arguments)
                      else get_argument_values(self.definition, node, {}))

    def of(self, variables: dict[str, Any]) -> dict[str, Any]:
        if self.fixed is not None:
            return self.fixed
        if self._memo is None or self._memo[0] is not variables:
            self._memo = (variables, get_argument_values(self.definition, self.node, variables))
        return self._memo[1]

    def shape(self, read: Callable[[dict[str, Any]], Any]) -> Any:
        """A value the statement's text depends on (guarded when the plan is reused)."""
        return self.compiler.guard(lambda variables: read(self.of(variables)),
                                   varies=self.fixed is None)

    def param(self, read: Callable[[dict[str, Any]], Any], cast: str) -> str:
        """A placeholder bound from each request's arguments."""
        return self.compiler.bind(lambda variables: read(self.of(variables)), cast)

    def optional(self, read: Callable[[dict[str, Any]], Any], cast: str) -> str:
        """A placeholder, or a literal null when the argument is absent: the page functions'
        `(x is null or …)` filters then fold away when PostgreSQL inlines them, so a generic
        plan keeps only the predicates in use."""
        if self.shape(lambda a: read(a) is None):
            return f"null::{cast}"
        return self.param(read, cast)


Fields = dict[str, list[FieldNode]]
EVENT_TYPE_NAME = "case {e}.event_type " + " ".join(
    f"when '{t.value}' then '{t.name}'" for t in EventType) + " end"


def _money(expr: str) -> str:
    return f"og_money_text(({expr})::numeric)"


class Compiler:
    """Renders one operation; create one per request (it collects the parameters)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode,
                 operation: OperationDefinitionNode, variables: dict[str, Any],
                 settings: Settings) -> None:
        self.schema = schema
        self.variables = variables
        self.settings = settings
        self.operation = operation
        self.fragments = {d.name.value: d for d in document.definitions
                          if isinstance(d, FragmentDefinitionNode)}
        self.guards: list[tuple[Read, Any]] = []
        self.binders: list[Read] = []
        self._aliases = itertools.count()
        # rendering from the row an append returned: the statement's snapshot predates the
        # append, so nothing that reads the tables again may be rendered
        self.row_local = False

    # -- plumbing ----------------------------------------------------------------------
    def guard(self, read: Read, varies: bool = True) -> Any:
        """`read`'s value for this request, checked again before the plan is reused if it
        `varies` with the variables."""
        try:
            value = read(self.variables)
        except DomainError as exc:  # the resolvers report it with its code
            raise Unsupported(str(exc)) from exc
        if varies:
            self.guards.append((read, value))
        return value

    def bind(self, read: Read, cast: str) -> str:
        self.binders.append(read)
        return f"${len(self.binders)}::{cast}"

    def alias(self) -> str:
        return f"t{next(self._aliases)}"

    def collect(self, type_name: str, selection_set: SelectionSetNode | None,
                fields: Fields | None = None) -> Fields:
        """Response keys in order of first appearance, as graphql-core collects them."""
        fields = {} if fields is None else fields
        for selection in selection_set.selections if selection_set else ():
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_name):
                    self.collect(type_name, selection.selection_set, fields)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if self._applies(fragment.type_condition.name.value, type_name):
                    self.collect(type_name, fragment.selection_set, fields)
        return fields

    def _included(self, node: Any) -> bool:
        if not node.directives:
            return True
        return bool(self.guard(lambda variables: _included(node, variables),
                               varies=any(_uses_variables(d.arguments) for d in node.directives)))

    def _applies(self, condition: str, type_name: str) -> bool:
        if condition == type_name:
            return True
        abstract, concrete = self.schema.get_type(condition), self.schema.get_type(type_name)
        return bool(abstract and concrete and self.schema.is_sub_type(abstract, concrete))  # type: ignore[arg-type]

    def args(self, type_name: str, node: FieldNode) -> Args:
        return Args(self, type_name, node)

    def obj(self, type_name: str, nodes: list[FieldNode] | None, render: Renderer,
            fields: Fields | None = None) -> str:
        """json_build_object of the selected fields of one object of `type_name`."""
        if fields is None:
            fields = {}
            for node in nodes or []:
                self.collect(type_name, node.selection_set, fields)
        if len(fields) > 50:  # json_build_object takes at most 100 arguments
            raise Unsupported("too many fields")
        parts = []
        for key, field_nodes in fields.items():
            name = field_nodes[0].name.value
            expr = f"'{type_name}'" if name == "__typename" else render(self, type_name, name,
                                                                       field_nodes)
            parts.append(f"'{key}', {expr}")
        return f"json_build_object({', '.join(parts)})"

    # -- the operation -----------------------------------------------------------------
    def compile(self) -> Plan:
        if self.operation.operation.value != "query":
            raise Unsupported("only queries")
        fields = self.collect("Query", self.operation.selection_set)
        # bytes, so the answer passes through Python untouched; timestamps render natively
        # in the session's UTC as DateTime does (gql/schema/scalars.py)
        sql = f"select convert_to({self.obj('Query', None, _query, fields)}::text, 'UTF8')"
        return Plan(sql, tuple(self.guards), tuple(self.binders))

    def compile_append(self, nodes: list[FieldNode]) -> str:
        """The statement that appends (called as gql.store.append binds it) and renders the
        selected `AppendResult` from the row it returns."""
        self.row_local = True

        def render(c: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
            if name == "deduplicated":
                return "a.deduplicated"
            if name == "event":
                return _event(c, "e", field_nodes)
            if name == "order":
                return _order(c, "o", field_nodes)
            raise Unsupported(f"{owner}.{name}")

        built = self.obj("AppendResult", nodes, render)
        if self.binders:
            raise Unsupported("arguments inside an append's result")
        return (f"select convert_to({built}::text, 'UTF8'), a.deduplicated from {APPEND_CALL}, "
                "lateral (select (a.event).*) e, lateral (select (a.current).*) o")

    # -- connections -------------------------------------------------------------------
    def connection(self, type_name: str, nodes: list[FieldNode], source: Callable[[int], str],
                   keys: tuple[str, ...], size: int, after: bool, node: NodeRenderer,
                   cursor: Callable[[str], str]) -> str:
        """A Relay connection over the rows of `source(limit)`, whose order is `keys`."""
        r = self.alias()
        order = ", ".join(f"{r}.{key}" for key in keys)
        fields: Fields = {}
        for field_node in nodes:
            self.collect(type_name, field_node.selection_set, fields)
        if {f[0].name.value for f in fields.values()} <= {"nodes", "__typename"}:
            # no page info and no cursors: the page itself, without a look-ahead row
            def plain(compiler: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
                if name != "nodes":
                    raise Unsupported(f"{owner}.{name}")
                return (f"coalesce(json_agg({node(self, r, field_nodes)} order by {order}), "
                        "'[]'::json)")

            return f"(select {self.obj(type_name, None, plain, fields)} from {source(size)} {r})"
        within = f"filter (where {r}.og_n <= {size})"
        edge_type = type_name.replace("Connection", "Edge")

        def render(compiler: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
            if name == "nodes":
                return (f"coalesce(json_agg({node(self, r, field_nodes)} order by {r}.og_n) {within}, "
                        "'[]'::json)")
            if name == "edges":
                def edge(c: Compiler, _: str, edge_field: str, edge_nodes: list[FieldNode]) -> str:
                    return cursor(r) if edge_field == "cursor" else node(self, r, edge_nodes)

                inner = self.obj(edge_type, field_nodes, edge)
                return f"coalesce(json_agg({inner} order by {r}.og_n) {within}, '[]'::json)"
            if name == "pageInfo":
                def page_info(c: Compiler, _: str, info: str, __: list[FieldNode]) -> str:
                    return {
                        "hasNextPage": f"count(*) > {size}",
                        "hasPreviousPage": "true" if after else "false",
                        "startCursor": f"(array_agg({cursor(r)} order by {r}.og_n) {within})[1]",
                        "endCursor": f"(array_agg({cursor(r)} order by {r}.og_n desc) {within})[1]",
                    }[info]

                return self.obj("PageInfo", field_nodes, page_info)
            raise Unsupported(f"{owner}.{name}")

        built = self.obj(type_name, None, render, fields)
        return (f"(select {built} from (select {r}.*, row_number() over (order by {order}) as og_n "
                f"from {source(size + 1)} {r}) {r})")


Renderer = Callable[[Compiler, str, str, list[FieldNode]], str]
NodeRenderer = Callable[[Compiler, str, list[FieldNode]], str]


def _included(node: Any, variables: dict[str, Any]) -> bool:
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (skip and skip["if"]) and not (include and not include["if"])


def _uses_variables(nodes: Any) -> bool:
    """Whether any argument value (or anything nested in one) is a variable."""
    for node in nodes or ():
        value = getattr(node, "value", node)
        if isinstance(value, VariableNode):
            return True
        if isinstance(value, ListValueNode) and _uses_variables(value.values):
            return True
        if isinstance(value, ObjectValueNode) and _uses_variables(value.fields):
            return True
    return False


def _values(items: list[Any] | None) -> list[str] | None:
    return [item.value for item in items] if items else None


# -- Query -------------------------------------------------------------------------------
def _query(c: Compiler, owner: str, name: str, nodes: list[FieldNode]) -> str:
    args = c.args(owner, nodes[0])
    if name == "order":
        o = c.alias()
        return (f"(select {_order(c, o, nodes)} from orders_current {o} "
                f"where {o}.order_id = {args.param(lambda a: a['id'], 'uuid')})")
    if name == "customer":
        k = c.alias()
        return (f"(select {_customer(c, k, nodes)} from customers {k} "
                f"where {k}.customer_id = {args.param(lambda a: a['id'], 'uuid')})")
    if name == "event":
        e = c.alias()
        return (f"(select {_event(c, e, nodes)} "
                f"from og_event({args.param(lambda a: a['id'], 'uuid')}) {e})")
    if name == "orders":
        return _orders_connection(c, nodes, args, None)
    if name == "events":
        return _log_connection(c, nodes, args)
    raise Unsupported(f"Query.{name}")


def _orders_connection(c: Compiler, nodes: list[FieldNode], args: Args,
                       customer: str | None) -> str:
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], ORDERS_PAGE, cap))
    after = args.shape(lambda a: a["after"] is not None)

    def key(a: dict[str, Any]) -> tuple[Any, ...]:
        return decode_cursor(a["after"], "o", datetime, uuid.UUID) if a["after"] else (None, None)

    def filters(name: str) -> Callable[[dict[str, Any]], Any]:
        return lambda a: a.get(name)  # Customer.orders has no filters

    customer_sql = customer or args.optional(filters("customerId"), "uuid")
    after_at, after_id = (args.optional(lambda a: key(a)[0], "timestamptz"),
                          args.optional(lambda a: key(a)[1], "uuid"))
    statuses = args.optional(lambda a: _values(a.get("status")), "text[]")
    placed = (args.optional(filters("placedAfter"), "timestamptz"),
              args.optional(filters("placedBefore"), "timestamptz"))

    def source(limit: int) -> str:
        return (f"og_orders_page({after_at}, {after_id}, {statuses}, {customer_sql}, "
                f"{placed[0]}, {placed[1]}, {limit})")

    return c.connection(
        "OrderConnection", nodes, source, ("last_event_at desc", "order_id desc"), size,
        after, _order,
        lambda r: f"og_cursor('o', og_iso({r}.last_event_at), {r}.order_id::text)")


def _log_connection(c: Compiler, nodes: list[FieldNode], args: Args) -> str:
    size = args.shape(lambda a: page_size(a["first"], EVENTS_PAGE, c.settings.max_page_size))
    after = args.shape(lambda a: a["after"] is not None)

    def start(a: dict[str, Any]) -> Position:
        return Position.decode(a["after"]) if a["after"] else Position(0, 0)

    filters = (f"{args.param(lambda a: str(start(a).xid), 'text')}::xid8, "
               f"{args.param(lambda a: start(a).seq, 'int8')}, "
               f"{args.optional(lambda a: _values(a['types']), 'text[]')}, "
               f"{args.optional(lambda a: a['orderId'], 'uuid')}, "
               f"{args.optional(lambda a: a['correlationId'], 'uuid')}, "
               f"{args.optional(lambda a: a['occurredAfter'], 'timestamptz')}, "
               f"{args.optional(lambda a: a['occurredBefore'], 'timestamptz')}")

    def source(limit: int) -> str:
        return f"og_log_page({filters}, {limit})"

    return c.connection(
        "OrderEventConnection", nodes, source, ("log_xid", "global_position"), size,
        after, _event, lambda r: f"og_position({r}.log_xid, {r}.global_position)")


# -- Order, Customer, items, state -------------------------------------------------------
def _order(c: Compiler, o: str, nodes: list[FieldNode]) -> str:
    def render(c: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
        simple = {
            "id": f"{o}.order_id", "status": f"{o}.status", "currency": f"{o}.currency",
            "totalAmount": _money(f"{o}.total_amount"),
            "authorizedAmount": _money(f"{o}.authorized_amount"),
            "capturedAmount": _money(f"{o}.captured_amount"),
            "version": f"{o}.version", "placedAt": f"{o}.placed_at",
            "lastEventAt": f"{o}.last_event_at",
        }
        if name in simple:
            return simple[name]
        if name == "items":
            return _items(c, f"{o}.items", field_nodes)
        if c.row_local:
            raise Unsupported(f"Order.{name} after an append")
        if name == "customer":
            k = c.alias()
            return (f"(select {_customer(c, k, field_nodes)} from customers {k} "
                    f"where {k}.customer_id = {o}.customer_id)")
        if name == "events":
            return _timeline(c, o, field_nodes)
        if name == "stateAt":
            return _state_at(c, o, field_nodes)
        raise Unsupported(f"Order.{name}")

    return c.obj("Order", nodes, render)


def _customer(c: Compiler, k: str, nodes: list[FieldNode]) -> str:
    def render(c: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
        simple = {"id": f"{k}.customer_id", "name": f"{k}.name", "email": f"{k}.email"}
        if name in simple:
            return simple[name]
        if name == "orders":
            args = c.args("Customer", field_nodes[0])
            return _orders_connection(c, field_nodes, args, f"{k}.customer_id")
        raise Unsupported(f"Customer.{name}")

    return c.obj("Customer", nodes, render)


_ITEM_FIELDS: dict[str, Callable[[str], str]] = {
    "sku": lambda v: f"{v} ->> 'sku'",
    "quantity": lambda v: f"({v} -> 'quantity')",
    "unitPrice": lambda v: _money(f"{v} ->> 'unitPrice'"),
    "lineTotal": lambda v: _money(f"({v} ->> 'quantity')::numeric * ({v} ->> 'unitPrice')::numeric"),
}


def _lines(c: Compiler, source: str, type_name: str, nodes: list[FieldNode]) -> str:
    """A JSON list of the objects of a jsonb array (order items, shipped items), in order."""
    i = c.alias()

    def render(c: Compiler, owner: str, name: str, _: list[FieldNode]) -> str:
        return _ITEM_FIELDS[name](f"{i}.v")

    return (f"(select coalesce(json_agg({c.obj(type_name, nodes, render)} order by {i}.n), "
            f"'[]'::json) from jsonb_array_elements({source}) with ordinality {i}(v, n))")


def _items(c: Compiler, source: str, nodes: list[FieldNode]) -> str:
    return _lines(c, source, "OrderItem", nodes)


def _state_at(c: Compiler, o: str, nodes: list[FieldNode]) -> str:
    args = c.args("Order", nodes[0])
    axis = args.shape(lambda a: a["axis"].value)
    version = args.optional(lambda a: a["version"], "int8")
    as_of = args.optional(lambda a: a["asOf"], "timestamptz")
    s = c.alias()

    def render(c: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
        if name == "items":
            return _items(c, f"coalesce({s}.items, '[]')", field_nodes)
        return {
            "status": f"{s}.status", "version": f"coalesce({s}.version, 0)",
            "totalAmount": _money(f"coalesce({s}.total_amount, 0)"),
            "authorizedAmount": _money(f"coalesce({s}.authorized_amount, 0)"),
            "capturedAmount": _money(f"coalesce({s}.captured_amount, 0)"),
        }[name]

    return (f"(select {c.obj('OrderState', nodes, render)} "
            f"from og_state_at({o}.order_id, {version}, {as_of}, '{axis}') {s})")


# -- events ------------------------------------------------------------------------------
def _timeline(c: Compiler, o: str, nodes: list[FieldNode]) -> str:
    args = c.args("Order", nodes[0])
    cap = c.settings.max_page_size
    size = args.shape(lambda a: page_size(a["first"], cap, cap))
    after = args.shape(lambda a: a["after"] is not None)
    order = args.shape(lambda a: a["orderBy"].value)

    def version(a: dict[str, Any]) -> int | None:
        return decode_cursor(a["after"], "v", int)[0] if a["after"] else None

    types, after_version = (args.optional(lambda a: _values(a["types"]), "text[]"),
                            args.optional(version, "int8"))

    def source(limit: int) -> str:
        return f"og_timeline_page({o}.order_id, {types}, {after_version}, '{order}', {limit})"

    key = {"stream_version": "stream_version", "occurred_at": "occurred_at",
           "recorded_at": "recorded_at"}[order]
    keys = ("stream_version",) if key == "stream_version" else (key, "stream_version")
    return c.connection(
        "OrderEventConnection", nodes, source, keys, size, after, _event,
        lambda r: f"og_cursor('v', {r}.stream_version::text)")


_TYPED: dict[str, dict[str, Callable[[str], str]]] = {
    "OrderPlaced": {"customerId": lambda p: f"{p} ->> 'customerId'",
                    "currency": lambda p: f"{p} ->> 'currency'"},
    "ItemAddedToOrder": {"sku": lambda p: f"{p} ->> 'sku'", "quantity": lambda p: f"({p} -> 'quantity')",
                         "unitPrice": lambda p: _money(f"{p} ->> 'unitPrice'")},
    "ItemRemovedFromOrder": {"sku": lambda p: f"{p} ->> 'sku'",
                             "quantity": lambda p: f"({p} -> 'quantity')"},
    "PaymentAuthorized": {"amount": lambda p: _money(f"{p} ->> 'amount'"),
                          "paymentProvider": lambda p: f"{p} ->> 'paymentProvider'",
                          "authorizationId": lambda p: f"{p} ->> 'authorizationId'"},
    "PaymentCaptured": {"amount": lambda p: _money(f"{p} ->> 'amount'")},
    "PaymentCaptureReversed": {"amount": lambda p: _money(f"{p} ->> 'amount'"),
                               "reason": lambda p: f"{p} ->> 'reason'"},
    "OrderShipped": {"carrier": lambda p: f"{p} ->> 'carrier'",
                     "trackingNumber": lambda p: f"{p} ->> 'trackingNumber'"},
    "OrderCancelled": {"reason": lambda p: f"{p} ->> 'reason'",
                       "reasonCode": lambda p: f"{p} ->> 'reasonCode'"},
}


def _event(c: Compiler, e: str, nodes: list[FieldNode]) -> str:
    """One object per concrete type, chosen by the row's event type."""
    common = {
        "id": f"{e}.event_id", "orderId": f"{e}.order_id",
        "streamVersion": f"{e}.stream_version",
        "globalPosition": f"og_position({e}.log_xid, {e}.global_position)",
        "type": EVENT_TYPE_NAME.format(e=e), "occurredAt": f"{e}.occurred_at",
        "recordedAt": f"{e}.recorded_at", "correlationId": f"{e}.correlation_id",
        "causationId": f"{e}.causation_id", "schemaVersion": f"{e}.schema_version",
        "payload": f"{e}.payload",
    }

    def render(c: Compiler, owner: str, name: str, field_nodes: list[FieldNode]) -> str:
        if name in common:
            return common[name]
        if name in _TYPED[owner]:
            return _TYPED[owner][name](f"{e}.payload")
        if name == "actor":
            def actor(c: Compiler, _: str, field: str, __: list[FieldNode]) -> str:
                return {"type": f"{e}.actor_type", "id": f"{e}.actor_id"}[field]

            return (f"case when coalesce({e}.actor_type, '') = '' then null else "
                    f"{c.obj('Actor', field_nodes, actor)} end")
        if name == "order":
            if c.row_local:
                raise Unsupported(f"{owner}.order after an append")
            o = c.alias()
            return (f"(select {_order(c, o, field_nodes)} from orders_current {o} "
                    f"where {o}.order_id = {e}.order_id)")
        if name == "items" and owner == "OrderPlaced":
            return _items(c, f"{e}.payload -> 'items'", field_nodes)
        if name == "shippedItems" and owner == "OrderShipped":
            return _lines(c, f"{e}.payload -> 'shippedItems'", "ShippedItem", field_nodes)
        raise Unsupported(f"{owner}.{name}")

    per_type = {}
    for event_type in EventType:
        fields: Fields = {}
        for node in nodes:
            c.collect(event_type.value, node.selection_set, fields)
        per_type[event_type.value] = fields
    shapes = {tuple((k, v[0].name.value) for k, v in f.items()) for f in per_type.values()}
    if len(shapes) == 1 and not any(
            v[0].name.value in ("__typename", *_typed_names()) for v in per_type["OrderPlaced"].values()):
        return c.obj("OrderPlaced", None, render, per_type["OrderPlaced"])
    whens = " ".join(f"when '{t}' then {c.obj(t, None, render, f)}" for t, f in per_type.items())
    return f"case {e}.event_type {whens} end"


def _typed_names() -> set[str]:
    return {name for fields in _TYPED.values() for name in fields} | {"items", "shippedItems"}
