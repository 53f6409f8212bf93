"""Which requests take the compiled path: documents the resolvers answered once before.

The decision is made once per document: one the compiler declines (introspection, a field or
argument without a SQL plan, …) is remembered as declined and goes straight to the
resolvers from then on, without a log line; only a failure of the compiler itself is logged,
once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
import strawberry
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from gql.config import Settings
from gql.errors import DomainError, QueryTooComplex
from gql.identity import Grants, Identity
from gql.schema import appends
from gql.schema.appends import AppendPlan, Appends
from gql.schema.compiled import (
    DOCUMENTS_KEPT,
    PLANS_PER_DOCUMENT,
    Compiler,
    Plan,
    Unsupported,
    with_viewer,
)
from gql.schema.cost import CostModel
from gql.schema.plans import compile_query

log = logging.getLogger("ordergraph.fastpath")


@lru_cache(maxsize=DOCUMENTS_KEPT)
def parsed(query: str) -> DocumentNode:
    """A document parsed once: every cache of the compiled path (and the gate) reads this one."""
    return parse(query)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def requested_operation(query: str, name: str | None) -> OperationDefinitionNode | None:
    """The operation a request runs: the one it names, or its document's only one; None when
    the document does not parse or has no such operation (the request then fails on its own)."""
    try:
        return _operation(parsed(query), name)
    except GraphQLError:
        return None


@dataclass(frozen=True)
class Refused:
    """A request refused before anything runs (its cost is above the ceiling): the body."""

    body: bytes


class FastPath:
    """Remembers documents the resolvers answered without errors (so they passed parsing,
    validation and every limit) and compiles later requests for them: a query to one
    statement, an append mutation to one statement per field (gql/schema/appends.py)."""

    def __init__(self, schema: strawberry.Schema, settings: Settings, size: int = DOCUMENTS_KEPT) -> None:
        self.schema = schema
        self.settings = settings
        self.size = size
        # None: declined for good, the resolvers answer every request of the document
        self._known: OrderedDict[tuple[str, str | None], OperationDefinitionNode | None] = \
            OrderedDict()
        self._plans: dict[tuple[str, str | None], list[Plan | AppendPlan]] = {}
        # valid documents refused for their cost: refused again here, in microseconds, unless
        # smaller variables make them affordable
        self._costly: OrderedDict[tuple[str, str | None], OperationDefinitionNode] = OrderedDict()
        self.cost = CostModel(schema._schema, settings.max_cost, settings.max_page_size)

    def remember(self, query: str, operation_name: str | None) -> None:
        key = (query, operation_name)
        if key in self._known:
            return
        operation = _operation(parsed(query), operation_name)
        if operation is None or operation.operation.value not in ("query", "mutation"):
            operation = None
        self._known[key] = operation
        while len(self._known) > self.size:
            forgotten, _ = self._known.popitem(last=False)
            self._plans.pop(forgotten, None)

    def declined(self, query: str, operation_name: str | None) -> bool:
        key = (query, operation_name)
        return key in self._known and self._known[key] is None

    def _decline(self, query: str, operation_name: str | None) -> None:
        self._known[(query, operation_name)] = None
        self._plans.pop((query, operation_name), None)

    def remember_costly(self, query: str, operation_name: str | None) -> None:
        """A document that validated but was refused for its cost."""
        operation = _operation(parsed(query), operation_name)
        if operation is not None:
            self._costly[(query, operation_name)] = operation
            while len(self._costly) > self.size:
                self._costly.popitem(last=False)

    def compile(self, query: str, operation_name: str | None, variables: dict[str, Any] | None,
                *, mutations: bool, grants: Grants,
                identity: Identity) -> tuple[str, list[Any]] | Appends | Refused | None:
        """A query's statement and parameters (scoped to what `identity` may read), or (when
        `mutations` may run) the appends a mutation asks for, or the refusal of a known
        document that costs too much; None when the resolvers must answer."""
        key = (query, operation_name)
        operation = self._known.get(key) or self._costly.get(key)
        if operation is None:
            return None
        mutation = operation.operation.value == "mutation"
        if mutation and not mutations:
            return None
        coerced = get_variable_values(self.schema._schema, operation.variable_definitions or [],
                                      variables or {})
        if isinstance(coerced, list):  # variable errors: the resolvers report them
            return None
        try:
            self.cost.check(parsed(query), operation, coerced)
        except QueryTooComplex as exc:
            return Refused(orjson.dumps({"errors": [{"message": exc.message, "extensions": {
                "code": exc.code, **exc.extensions}}]}))
        if self._known.get(key) is None:  # not learnt yet (affordable now), or declined
            return None
        coerced = with_viewer(coerced, grants.viewer(identity))
        plans = self._plans.setdefault((query, operation_name), [])
        plan = next((p for p in plans if p.fits(coerced)), None)
        if plan is None:
            try:
                plan = (appends.compile_appends(self.schema, parsed(query), operation, coerced,
                                                self.settings) if mutation else
                        compile_query(Compiler(self.schema._schema, parsed(query), operation,
                                               coerced, self.settings)))
            except Unsupported as declined:
                if declined.lasting:
                    self._decline(query, operation_name)
                return None
            except Exception:  # a gap in the compiler must not fail a request the resolvers answer
                log.exception("could not compile a document; the resolvers answer it from now on")
                self._decline(query, operation_name)
                return None
            plans.append(plan)
            del plans[:-PLANS_PER_DOCUMENT]
        try:
            if isinstance(plan, AppendPlan):
                return appends.prepare(self.schema, plan, coerced, grants, identity)
            return plan.sql, plan.bind(coerced)
        except DomainError:  # e.g. a malformed cursor: the resolvers report it with its code
            return None
        except Exception:
            log.exception("could not bind a compiled document; answering through the resolvers")
            return None
