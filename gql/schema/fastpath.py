"""Which requests take the compiled path: queries whose document validated once before."""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from gql.config import Settings
from gql.schema.compiled import Compiler, Unsupported

log = logging.getLogger("ordergraph.fastpath")


@lru_cache(maxsize=512)
def _parse(query: str) -> DocumentNode:
    return parse(query)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class FastPath:
    """Remembers documents the resolvers answered without errors (so they passed parsing,
    validation and every limit) and compiles later requests for them to one statement."""

    def __init__(self, schema: GraphQLSchema, settings: Settings, size: int = 512) -> None:
        self.schema = schema
        self.settings = settings
        self.size = size
        self._known: OrderedDict[tuple[str, str | None], OperationDefinitionNode] = OrderedDict()

    def remember(self, query: str, operation_name: str | None) -> None:
        operation = _operation(_parse(query), operation_name)
        if operation is None or operation.operation.value != "query":
            return
        self._known[(query, operation_name)] = operation
        while len(self._known) > self.size:
            self._known.popitem(last=False)

    def compile(self, query: str, operation_name: str | None,
                variables: dict[str, Any] | None) -> tuple[str, list[Any]] | None:
        operation = self._known.get((query, operation_name))
        if operation is None:
            return None
        coerced = get_variable_values(self.schema, operation.variable_definitions or [],
                                      variables or {})
        if isinstance(coerced, list):  # variable errors: the resolvers report them
            return None
        compiler = Compiler(self.schema, _parse(query), operation, coerced, self.settings)
        try:
            return compiler.compile(), compiler.params
        except Unsupported:
            return None
        except Exception:  # a gap in the compiler must not fail a request the resolvers answer
            log.exception("could not compile a query; answering through the resolvers")
            return None
