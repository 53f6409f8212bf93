"""Both executors on one document: the resolvers' answer and the compiled statement's."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import strawberry
from graphql import GraphQLSchema, OperationDefinitionNode, parse
from graphql.execution.values import get_variable_values

from gql.config import Settings
from gql.identity import OPEN, Identity
from gql.schema.compiled import Compiler, Unsupported, with_viewer
from gql.schema.context import Context
from gql.schema.plans import compile_query
from gql.store.access import load_grants
from gql.store.reads import fetch_document


@dataclass
class Answers:
    resolvers: Any  # the resolvers' JSON (data and errors)
    compiled: Any | None  # the compiled statement's data; None when the compiler declined
    reason: str = ""
    lasting: bool = False  # declined for every request of the document, not these values

    @property
    def comparable(self) -> bool:
        return "errors" not in self.resolvers


def compile_document(schema: GraphQLSchema, query: str, variables: dict[str, Any],
                     settings: Settings, viewer: uuid.UUID | None = None) -> tuple[str, list[Any]]:
    """The statement and parameters; raises Unsupported when the compiler declines."""
    document = parse(query)
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    coerced = get_variable_values(schema, operation.variable_definitions or [], variables)
    assert not isinstance(coerced, list), coerced
    coerced = with_viewer(coerced, viewer)
    plan = compile_query(Compiler(schema, document, operation, coerced, settings))
    return plan.sql, plan.bind(coerced)


async def answer_both(schema: strawberry.Schema, pool: asyncpg.Pool, settings: Settings,
                      query: str, variables: dict[str, Any] | None = None,
                      identity: Identity = OPEN) -> Answers:
    """Both answers for `identity` (default: the open mode's admin, who reads all)."""
    variables = variables or {}
    grants = await load_grants(pool)
    result = await schema.execute(query, variable_values=variables,
                                  context_value=Context(pool, settings, grants, identity))
    resolvers: dict[str, Any] = {"data": result.data}
    if result.errors:
        resolvers["errors"] = [e.formatted for e in result.errors]
    resolvers = json.loads(json.dumps(resolvers))
    if result.errors:
        return Answers(resolvers, None, "the resolvers refused it")
    try:
        sql, params = compile_document(schema._schema, query, variables, settings,
                                       grants.viewer(identity))
    except Unsupported as declined:
        return Answers(resolvers, None, str(declined), declined.lasting)
    return Answers(resolvers, json.loads(await fetch_document(pool, sql, params)))
