"""Which subscriptions take the compiled path: their payloads are rendered by the live hub.

A subscription's document is compiled (gql/schema/plans.py, `compile_subscription`) when its
root resolver starts, after strawberry parsed and validated it and checked its limits. The
decision is made once per document, as for queries (gql/schema/fastpath.py): one the
compiler declines goes straight to the resolvers from then on, without a log line. Every
subscriber of the same document, variables and viewer shares one `CompiledSelection`, so
the hub renders each event once for all of them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, OperationDefinitionNode

from gql.errors import DomainError
from gql.schema.compiled import (
    DOCUMENTS_KEPT,
    PLANS_PER_DOCUMENT,
    Compiler,
    Plan,
    Unsupported,
    with_viewer,
)
from gql.schema.context import Info
from gql.schema.plans import compile_subscription
from gql.store import Pool, Row
from gql.store.reads import render_events

log = logging.getLogger("ordergraph.livepath")


@dataclass(frozen=True, eq=False)
class CompiledSelection:
    """A subscription's compiled statement with its parameters bound (a `live.Selection`)."""

    key: Hashable
    sql: str
    params: tuple[Any, ...]

    async def render(self, pool: Pool, rows: Sequence[Row]) -> list[str | None]:
        found = await render_events(
            pool, self.sql, [*self.params, [row["event_id"] for row in rows],
                             [row.get("status") for row in rows],
                             [row.get("previous_status") for row in rows]])
        return [found.get(n) for n in range(1, len(rows) + 1)]


class LivePath:
    """The compiled plans of the subscription documents seen (None: declined for good)."""

    def __init__(self) -> None:
        # keyed by the parsed operation's id; the entry holds the operation, so the id stays
        # its own (strawberry's parser cache hands the same document to the same text)
        self._known: OrderedDict[int, tuple[OperationDefinitionNode, list[Plan] | None]] = \
            OrderedDict()

    def selection(self, info: Info) -> CompiledSelection | None:
        """The subscriber's compiled selection, or None: the resolvers execute each event."""
        if not info.context.settings.compiled_reads:
            return None
        operation = info.operation
        entry = self._known.get(id(operation))
        if entry is None or entry[0] is not operation:
            entry = self._known[id(operation)] = (operation, [])
            while len(self._known) > DOCUMENTS_KEPT:
                self._known.popitem(last=False)
        plans = entry[1]
        if plans is None:
            return None
        variables = with_viewer(info._raw_info.variable_values, info.context.viewer)
        plan = next((p for p in plans if p.fits(variables)), None)
        try:
            if plan is None:
                document = DocumentNode(definitions=(operation, *info._raw_info.fragments.values()))
                plan = compile_subscription(Compiler(info._raw_info.schema, document, operation,
                                                     variables, info.context.settings))
                plans.append(plan)
                del plans[:-PLANS_PER_DOCUMENT]
            params = plan.bind(variables)
        except Unsupported as declined:
            if declined.lasting:
                self._known[id(operation)] = (operation, None)
            return None
        except DomainError:  # e.g. a malformed argument: the resolvers report it
            return None
        except Exception:  # a gap in the compiler must not fail what the resolvers answer
            log.exception("could not compile a subscription; the resolvers answer it from now on")
            self._known[id(operation)] = (operation, None)
            return None
        return CompiledSelection((plan.sql, frozen(params)), plan.sql, tuple(params))


def frozen(value: Any) -> Any:
    """A hashable copy of variables or parameters (dicts by their sorted items)."""
    if isinstance(value, dict):
        return tuple(sorted((k, frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value
