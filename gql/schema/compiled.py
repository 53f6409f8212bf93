"""The compiler's plumbing: one GraphQL document becomes one SQL statement returning JSON.

What each field renders is its `FieldPlan` (the table in gql/schema/plans.py, built on the
field descriptions of gql/schema/fields.py). A selection is rendered only through those
plans: a field without one, or whose schema arguments are not exactly the ones its plan
reads, raises Unsupported, so the document is declined by construction and the resolvers
answer it. Values that vary per request become parameters (`Args.param`); values the
statement's text depends on are guarded (`Args.shape`), so a cached plan is reused only
while they hold.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
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
from graphql.execution.values import VariableValues, get_argument_values, get_directive_values

from gql.config import Settings
from gql.errors import DomainError


class PlanError(Exception):
    """A plan that reads an argument it does not declare, or declares one it never reads:
    a bug, found when the schema is built (gql/schema/plans.py, `verify_plans`)."""


class Unsupported(Exception):
    """The document needs the resolvers. `lasting` when that holds for every request of the
    document (its shape), not only for these variables (e.g. a malformed cursor)."""

    def __init__(self, reason: str, *, lasting: bool = True) -> None:
        super().__init__(reason)
        self.lasting = lasting


Read = Callable[[dict[str, Any]], Any]
# The key of the reading customer among a request's coerced variables (None: reads all);
# no GraphQL variable can be named so. Every root a plan reads binds it (`Compiler.viewer`).
VIEWER = "$viewer"
# How much a cache of compiled documents keeps (queries and subscriptions alike): documents,
# and shapes (page sizes, @include, orderBy …) per document.
DOCUMENTS_KEPT = 512
PLANS_PER_DOCUMENT = 8


def with_viewer(variables: Any, viewer: Any) -> Any:
    """A request's coerced variables (a dict or graphql-core's VariableValues) and its viewer."""
    if isinstance(variables, VariableValues):
        return variables._replace(coerced={**variables.coerced, VIEWER: viewer})
    return {**variables, VIEWER: viewer}


def _viewer_of(variables: Any) -> Any:
    return (variables.coerced if isinstance(variables, VariableValues) else variables)[VIEWER]


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


class Strict(Mapping[str, Any]):
    """A field's argument values as its plan may read them: only the arguments it declares
    (an absent one reads as None); each read is recorded."""

    def __init__(self, values: dict[str, Any], declared: frozenset[str], read: set[str]) -> None:
        self._values, self._declared, self._read = values, declared, read

    def __getitem__(self, name: str) -> Any:
        if name not in self._declared:
            raise PlanError(f"the plan reads argument {name!r}, which it does not declare")
        self._read.add(name)
        return self._values.get(name)

    def __iter__(self) -> Any:
        return iter(self._declared)

    def __len__(self) -> int:
        return len(self._declared)


class Args:
    """One field's arguments, read again from each request's variables, strictly: only those
    its plan declares, and every read is recorded (`read`)."""

    def __init__(self, compiler: Compiler, definition: GraphQLField, node: FieldNode,
                 declared: frozenset[str] = frozenset()) -> None:
        self.compiler = compiler
        self.definition = definition
        self.node = node
        self.declared = declared
        self.read: set[str] = set()
        self._memo: tuple[dict[str, Any], Strict] | None = None
        # arguments written as literals (or left out) are the same for every request
        self.fixed = (None if _uses_variables(node.arguments)
                      else self._strict(get_argument_values(definition, node, {})))

    def _strict(self, values: dict[str, Any]) -> Strict:
        return Strict(values, self.declared, self.read)

    def of(self, variables: dict[str, Any]) -> Strict:
        if self.fixed is not None:
            return self.fixed
        if self._memo is None or self._memo[0] is not variables:
            self._memo = (variables, self._strict(
                get_argument_values(self.definition, self.node, variables)))
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


@dataclass(frozen=True)
class FieldPlan:
    """How one field renders in SQL, and the names of the arguments that rendering reads:
    a schema field with any other argument is declined, never answered without it."""

    render: Callable[[list[FieldNode], Args], str]
    args: frozenset[str] = frozenset()
    # arguments another layer applies (a subscription's filter, applied by the live hub):
    # declared, so the field is not declined, but not read by the rendering
    elsewhere: frozenset[str] = frozenset()


Plans = Mapping[str, FieldPlan]
Fields = dict[str, list[FieldNode]]


def plan(render: Callable[[list[FieldNode], Args], str], *args: str,
         elsewhere: tuple[str, ...] = ()) -> FieldPlan:
    return FieldPlan(render, frozenset(args) | frozenset(elsewhere), frozenset(elsewhere))


def value(sql: str) -> FieldPlan:
    """A field that renders one expression and takes no arguments."""
    return FieldPlan(lambda nodes, args: sql)


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
        # every field rendered with arguments: (Type.field, its Args), to check the reads
        self.rendered: list[tuple[str, Args]] = []
        # rendering from the row an append returned: the statement's snapshot predates the
        # append, so nothing that reads the tables again may be rendered
        self.row_local = False

    def guard(self, read: Read, varies: bool = True) -> Any:
        """`read`'s value for this request, checked again before the plan is reused if it
        `varies` with the variables."""
        try:
            value = read(self.variables)
        except DomainError as exc:  # the resolvers report it with its code
            raise Unsupported(str(exc), lasting=False) from exc
        if varies:
            self.guards.append((read, value))
        return value

    def bind(self, read: Read, cast: str) -> str:
        self.binders.append(read)
        return f"${len(self.binders)}::{cast}"

    def viewer(self) -> str:
        """The placeholder of the customer whose rows alone the statement may return."""
        return self.bind(_viewer_of, "uuid")

    def alias(self) -> str:
        return f"t{next(self._aliases)}"

    def plan(self, sql: str) -> Plan:
        return Plan(sql, tuple(self.guards), tuple(self.binders))

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

    def selected(self, type_name: str, nodes: list[FieldNode]) -> Fields:
        fields: Fields = {}
        for node in nodes:
            self.collect(type_name, node.selection_set, fields)
        return fields

    def obj(self, type_name: str, nodes: list[FieldNode] | None, plans: Plans,
            fields: Fields | None = None, typename: str | None = None) -> str:
        """json_build_object of the selected fields of one `type_name`, each by its plan;
        `typename` renders `__typename` (SQL) where the row knows its own type."""
        fields = self.selected(type_name, nodes or []) if fields is None else fields
        if len(fields) > 50:  # json_build_object takes at most 100 arguments
            raise Unsupported("too many fields")
        definitions = self.schema.get_type(type_name).fields  # type: ignore[union-attr]
        parts = []
        for key, field_nodes in fields.items():
            name = field_nodes[0].name.value
            if name == "__typename":
                parts.append(f"'{key}', {typename or repr(type_name)}")  # a GraphQL name
                continue
            field_plan = plans.get(name)
            if field_plan is None:
                raise Unsupported(f"{type_name}.{name} has no SQL rendering")
            definition = definitions[name]
            if set(definition.args) != field_plan.args:
                raise Unsupported(f"{type_name}.{name} has arguments its plan does not read")
            args = Args(self, definition, field_nodes[0], field_plan.args - field_plan.elsewhere)
            if args.declared:
                self.rendered.append((f"{type_name}.{name}", args))
            parts.append(f"'{key}', {field_plan.render(field_nodes, args)}")
        return f"json_build_object({', '.join(parts)})"

    def connection(self, type_name: str, nodes: list[FieldNode], source: Callable[[int], str],
                   keys: tuple[str, ...], size: int, after: bool, node: NodeRenderer,
                   cursor: Callable[[str], str], count: str) -> str:
        """A Relay connection over the rows of `source(limit)`, whose order is `keys`;
        `count` is the SQL of its totalCount."""
        r = self.alias()
        order = ", ".join(f"{r}.{key}" for key in keys)
        fields = self.selected(type_name, nodes)
        total = {"totalCount": value(count)}
        if {f[0].name.value for f in fields.values()} <= {"totalCount", "__typename"}:
            return self.obj(type_name, None, total, fields)  # no page to read
        if {f[0].name.value for f in fields.values()} <= {"nodes", "totalCount", "__typename"}:
            # no page info and no cursors: the page itself, without a look-ahead row
            plain = {**total, "nodes": plan(lambda field_nodes, _: (
                f"coalesce(json_agg({node(r, field_nodes)} order by {order}), '[]'::json)"))}
            # one row also when nothing aggregates (`{ __typename }`): group by ()
            return (f"(select {self.obj(type_name, None, plain, fields)} from {source(size)} {r} "
                    "group by ())")
        within = f"filter (where {r}.og_n <= {size})"
        edge = {"cursor": value(cursor(r)),
                "node": plan(lambda edge_nodes, _: node(r, edge_nodes))}

        def end(direction: str) -> str:  # the cursor of one row, the first or the last
            row = f"(array_agg({r}.og_row order by {r}.og_n{direction}) {within})[1]"
            # rows of the page only: the look-ahead row (og_n = size + 1) is no edge's
            return f"case when count(*) {within} > 0 then {cursor(f'({row})')} end"

        page_info = {
            "hasNextPage": value(f"count(*) > {size}"),
            "hasPreviousPage": value("true" if after else "false"),
            "startCursor": value(end("")),
            "endCursor": value(end(" desc")),
        }
        edge_type = type_name.replace("Connection", "Edge")
        plans = {
            **total,
            "nodes": plan(lambda field_nodes, _: (
                f"coalesce(json_agg({node(r, field_nodes)} order by {r}.og_n) {within}, '[]'::json)")),
            "edges": plan(lambda field_nodes, _: (
                f"coalesce(json_agg({self.obj(edge_type, field_nodes, edge)} order by {r}.og_n) "
                f"{within}, '[]'::json)")),
            "pageInfo": plan(lambda field_nodes, _: self.obj("PageInfo", field_nodes, page_info)),
        }
        built = self.obj(type_name, None, plans, fields)
        return (f"(select {built} from (select {r}.*, row_number() over (order by {order}) as og_n, "
                f"{r} as og_row from {source(size + 1)} {r}) {r} group by ())")


NodeRenderer = Callable[[str, list[FieldNode]], str]


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
