"""Known append mutations, run without strawberry's executor.

A mutation document the resolvers ran once without errors is compiled, field by field, into
statements that append through og_append and render the selected `AppendResult` from the
row it returns (gql/schema/plans.py, `compile_append`): one round trip per
mutation field and no per-field Python. Inputs are converted by strawberry and turned into
events by the resolvers' own `new_event`; failures are reported as the resolvers report them.
Results that would read the tables again (an order's customer or timeline) are left to the
resolvers: the appending statement's snapshot does not see its own append.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLField,
    OperationDefinitionNode,
    located_error,
)
from graphql.execution.values import get_argument_values
from strawberry.types.arguments import convert_argument

from gql.config import Settings
from gql.errors import ServiceUnavailable
from gql.events import EventType, NewEvent
from gql.identity import Grants, Identity
from gql.schema.compiled import Compiler, Read, Unsupported, guards_hold
from gql.schema.errors import client_error
from gql.schema.inputs import new_event
from gql.schema.mutations import APPEND_MUTATIONS
from gql.schema.plans import compile_append
from gql.store import Pool
from gql.store.append import Claims, append_rendered
from gql.store.outage import is_outage


@dataclass(frozen=True)
class AppendField:
    key: str  # the response key
    nodes: list[FieldNode]
    definition: GraphQLField
    event_type: EventType
    input_type: Any  # the strawberry input class of its `input` argument
    sql: str


@dataclass(frozen=True)
class AppendPlan:
    fields: tuple[AppendField, ...]
    guards: tuple[tuple[Read, Any], ...]

    def fits(self, variables: dict[str, Any]) -> bool:
        return guards_hold(self.guards, variables)


@dataclass(frozen=True)
class Appends:
    """A request's appends, ready to run: every event is built before the first is sent."""

    plan: AppendPlan
    events: tuple[NewEvent, ...]
    claims: Claims  # who appends them


def compile_appends(schema: strawberry.Schema, document: DocumentNode,
                    operation: OperationDefinitionNode, variables: dict[str, Any],
                    settings: Settings) -> AppendPlan:
    compiler = Compiler(schema._schema, document, operation, variables, settings)
    mutation = schema._schema.mutation_type
    assert mutation is not None
    definition = schema.get_type_by_name("Mutation")
    fields = []
    for key, nodes in compiler.collect("Mutation", operation.selection_set).items():
        name = nodes[0].name.value
        if name not in APPEND_MUTATIONS or set(mutation.fields[name].args) != {"input"}:
            raise Unsupported(f"Mutation.{name}")
        resolver = next(f for f in definition.fields  # type: ignore[union-attr]
                        if schema.config.name_converter.get_graphql_name(f) == name)
        fields.append(AppendField(key, nodes, mutation.fields[name], APPEND_MUTATIONS[name],
                                  resolver.arguments[0].type, compile_append(compiler, nodes)))
    return AppendPlan(tuple(fields), tuple(compiler.guards))


def prepare(schema: strawberry.Schema, plan: AppendPlan, variables: dict[str, Any],
            grants: Grants, identity: Identity) -> Appends:
    """The events this request asks for; an error (FORBIDDEN included) means the resolvers
    answer (and report it) before anything is appended."""
    registry, config = schema.schema_converter.scalar_registry, schema.config
    events = []
    for field in plan.fields:
        arguments = get_argument_values(field.definition, field.nodes[0], variables)
        data = convert_argument(arguments["input"], field.input_type, registry, config)
        events.append(new_event(field.event_type, data, grants, identity))  # type: ignore[arg-type]
    return Appends(plan, tuple(events), identity.claims())


async def run(appends: Appends, pool: Pool) -> bytes:
    """The response body. The fields run in order; the first failure ends the operation and,
    as its fields are non-null, leaves `data` null (what was appended before it stays)."""
    parts = []
    for field, event in zip(appends.plan.fields, appends.events, strict=True):
        try:
            rendered = await append_rendered(pool, field.sql, event, appends.claims)
        except Exception as exc:  # reported (and unexpected ones masked and logged) as usual
            if is_outage(exc) or isinstance(exc, ServiceUnavailable):
                raise  # the whole request is answered 503: send it again (same eventIds)
            error = client_error(located_error(exc, field.nodes, [field.key]))
            return orjson.dumps({"errors": [error.formatted], "data": None})
        parts.append(orjson.dumps(field.key) + b":" + rendered)
    return b'{"data":{' + b",".join(parts) + b"}}"
