"""What an operation may cost, estimated before it runs, and which operation a request names.

The estimate counts every field as often as it can be resolved: once at the top, and inside a
connection's `nodes` or `edges` as many times as the product of the page sizes (`first`, or
the connection's default) of every connection above it. Inline fragments and fragment spreads
count as if their fields were written out. A document's shape is worked out once and cached;
only the page sizes given as variables are read per request, so the check costs microseconds.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    VariableNode,
    get_named_type,
)

from gql.errors import OperationNotFound, QueryTooComplex
from gql.schema.pagination import EVENTS_PAGE, ORDERS_PAGE

# A connection's page size when `first` is absent (the resolvers' defaults).
_DEFAULT_PAGE = {"OrderConnection": ORDERS_PAGE, "OrderEventConnection": EVENTS_PAGE}
_PAGED = frozenset({"nodes", "edges"})  # the fields of a connection repeated per row
_CACHED_SHAPES = 512


# A page size: a literal, or a variable with the size to use when it is absent or null.
Size = int | tuple[str, int]


@dataclass
class Shape:
    """Fields resolved once per row of the enclosing page, and the pages nested below."""

    fields: int = 0
    pages: list[tuple[Size, Shape]] = field(default_factory=list)

    def total(self, variables: dict[str, Any], cap: int, memo: dict[int, int]) -> int:
        known = memo.get(id(self))
        if known is not None:
            return known
        cost = self.fields
        for size, inner in self.pages:
            cost += min(_size(size, variables), cap) * inner.total(variables, cap, memo)
        memo[id(self)] = cost
        return cost


def _size(size: Size, variables: dict[str, Any]) -> int:
    if isinstance(size, int):
        return size
    name, default = size
    value = variables.get(name)
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else default


def select_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    """The operation a request asks for; several without `operationName` is an error."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        if len(operations) == 1:
            return operations[0]
        raise OperationNotFound("the document has several operations: say which to run "
                                "with operationName" if operations else "the document has no operation")
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    raise OperationNotFound(f"the document has no operation named {name!r}", field="operationName")


class CostModel:
    """Estimates operations against one schema; shapes are cached per document."""

    def __init__(self, schema: GraphQLSchema, max_cost: int, max_page_size: int) -> None:
        self.schema = schema
        self.max_cost = max_cost
        self.max_page_size = max_page_size  # a larger `first` is refused by the resolvers
        self._shapes: OrderedDict[tuple[int, int], tuple[DocumentNode, Shape]] = OrderedDict()

    def check(self, document: DocumentNode, operation: OperationDefinitionNode,
              variables: Any) -> int:
        """The operation's estimated cost; QUERY_TOO_COMPLEX above the ceiling. `variables`
        as sent, or as graphql-core coerced them."""
        values = getattr(variables, "coerced", variables) or {}
        cost = self.shape(document, operation).total(values, self.max_page_size, {})
        if cost > self.max_cost:
            raise QueryTooComplex(
                f"the operation's estimated cost {cost} is above the limit {self.max_cost}; "
                "ask for smaller pages or fewer nested connections", cost=cost, maxCost=self.max_cost)
        return cost

    def shape(self, document: DocumentNode, operation: OperationDefinitionNode) -> Shape:
        key = (id(document), id(operation))
        found = self._shapes.get(key)
        if found is not None and found[0] is document:
            self._shapes.move_to_end(key)
            return found[1]
        root = self.schema.get_root_type(operation.operation)
        defaults = _variable_defaults(operation)
        fragments = {d.name.value: d for d in document.definitions
                     if isinstance(d, FragmentDefinitionNode)}
        shape = _Builder(self.schema, fragments, defaults).selection(root, operation.selection_set)
        self._shapes[key] = (document, shape)  # holding the document keeps its id from reuse
        while len(self._shapes) > _CACHED_SHAPES:
            self._shapes.popitem(last=False)
        return shape


def _variable_defaults(operation: OperationDefinitionNode) -> dict[str, int | None]:
    defaults: dict[str, int | None] = {}
    for definition in operation.variable_definitions or ():
        value = definition.default_value
        defaults[definition.variable.name.value] = (
            int(value.value) if isinstance(value, IntValueNode) else None)
    return defaults


class _Builder:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 defaults: dict[str, int | None]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.defaults = defaults
        self._fragment_shapes: dict[tuple[str, str], Shape] = {}

    def selection(self, parent: Any, selection_set: SelectionSetNode | None) -> Shape:
        shape = Shape()
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                self._field(shape, parent, node)
            elif isinstance(node, InlineFragmentNode):
                inner_type = (self.schema.get_type(node.type_condition.name.value)
                              if node.type_condition else parent)
                shape.pages.append((1, self.selection(inner_type or parent, node.selection_set)))
            elif isinstance(node, FragmentSpreadNode):
                shape.pages.append((1, self._fragment(node.name.value)))
        return shape

    def _fragment(self, name: str) -> Shape:
        fragment = self.fragments.get(name)
        if fragment is None:
            return Shape()
        key = (name, fragment.type_condition.name.value)
        if key not in self._fragment_shapes:
            self._fragment_shapes[key] = Shape()  # a cycle (refused by validation) stops here
            self._fragment_shapes[key] = self.selection(
                self.schema.get_type(fragment.type_condition.name.value), fragment.selection_set)
        return self._fragment_shapes[key]

    def _field(self, shape: Shape, parent: Any, node: FieldNode) -> None:
        shape.fields += 1
        definition = _definition(parent, node.name.value)
        if definition is None or node.selection_set is None:
            return
        inner_type = get_named_type(definition.type)
        default = _DEFAULT_PAGE.get(inner_type.name)
        if default is None:
            shape.pages.append((1, self.selection(inner_type, node.selection_set)))
            return
        size = self._page_size(node, default)
        connection = Shape()
        for child in node.selection_set.selections:
            if isinstance(child, FieldNode) and child.name.value in _PAGED:
                connection.fields += 1
                paged = _definition(inner_type, child.name.value)
                child_type = get_named_type(paged.type) if paged else None
                connection.pages.append((size, self.selection(child_type, child.selection_set)))
            else:  # pageInfo, fragments on the connection: once per page
                connection.pages.append((1, self.selection(inner_type, SelectionSetNode(
                    selections=(child,)))))
        shape.pages.append((1, connection))

    def _page_size(self, node: FieldNode, default: int) -> Size:
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(int(value.value), 0)
            if isinstance(value, NullValueNode):
                return default
            if isinstance(value, VariableNode):
                fallback = self.defaults.get(value.name.value)
                return (value.name.value, default if fallback is None else fallback)
        return default


_META = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


def _definition(parent: Any, name: str) -> GraphQLField | None:
    if name in _META:
        return _META[name]
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None
