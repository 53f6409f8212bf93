"""The GraphQL schema: queries, mutations and subscriptions over the event store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import strawberry
from graphql import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig

from gql.config import Settings
from gql.schema.cost import CostModel, select_operation
from gql.schema.errors import ErrorCodes
from gql.schema.mutations import Mutation
from gql.schema.plans import verify_plans
from gql.schema.queries import Query
from gql.schema.scalars import SCALARS
from gql.schema.subscriptions import EventExecutor, Subscription
from gql.schema.types import EVENT_CLASSES


def build_schema(settings: Settings | None = None) -> _Schema:
    """A schema with the request limits of `settings` (defaults when None)."""
    settings = settings or Settings(database_url="")
    # The limits' rule classes are built once: ValidationCache keys on them, so a document
    # is validated once, not on every request (strawberry's limiters build a new class each).
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    cost: list[CostModel] = []  # built with the schema, below

    class OperationLimits(SchemaExtension):
        """Before anything runs (HTTP or WebSocket): the request names one operation, and its
        estimated cost is within the ceiling."""

        def on_execute(self) -> Iterator[None]:
            context = self.execution_context
            if context.graphql_document is not None:
                # `operation_name` is the first operation's when the request names none
                operation = select_operation(context.graphql_document,
                                             context._provided_operation_name)
                cost[0].check(context.graphql_document, operation, context.variables)
            yield

    # factories: strawberry builds fresh extension instances for every operation
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ErrorCodes(hide_suggestions=not settings.introspection),
        OperationLimits,
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    schema = _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=EventExecutor,
        types=list(EVENT_CLASSES.values()),
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
    )
    cost.append(CostModel(schema._schema, settings.max_cost, settings.max_page_size))
    schema.limits = Limits(tuple(rules), cost[0], settings.max_tokens)
    verify_plans(schema._schema, settings)
    return schema


@dataclass(frozen=True)
class Limits:
    """What a document must pass besides the specified rules: the limits' validation rules,
    the cost ceiling and the token cap; gql/schema/documents.py checks trusted documents
    against the very same."""

    rules: tuple[type[ASTValidationRule], ...]
    cost: CostModel
    max_tokens: int


class _Schema(strawberry.Schema):
    limits: Limits

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Not every error is worth a traceback in the log: client mistakes are answered, and
        internal errors are logged once, with the id the client sees (gql/schema/errors.py)."""


@cache
def sdl() -> str:
    return build_schema().as_str()
