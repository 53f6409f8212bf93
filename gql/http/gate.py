"""What every GraphQL operation passes before it runs, whatever its transport (HTTP, SSE,
WebSocket): trusted-only mode (gql/schema/documents.py), then the caller's rate limits
(ratelimits.py), charged with the operation's estimated cost (gql/schema/cost.py)."""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError
from starlette.types import Scope

from gql.config import Settings
from gql.errors import (
    DocumentNotTrusted,
    DomainError,
    PersistedQueryNotFound,
    QueryTooComplex,
    RateLimited,
)
from gql.http.access import NOBODY
from gql.http.ratelimits import RateLimits
from gql.identity import OPEN, Identity
from gql.schema.cost import select_operation
from gql.schema.documents import TrustedDocuments, load_trusted
from gql.schema.fastpath import parsed

# what the gate refuses with, each a client's error with its code
REFUSALS = (DocumentNotTrusted, PersistedQueryNotFound, RateLimited)


def caller(identity: Identity, client: str | None) -> str:
    """Whose budget a request spends: its token's subject, else its client address."""
    if identity is OPEN or identity is NOBODY:
        return f"address:{client or 'local'}"
    return f"subject:{identity.subject}"


def client_of(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class Gate:
    """The server's trusted documents and rate limits, built (and checked) at start."""

    def __init__(self, documents: TrustedDocuments, limits: RateLimits | None, schema: Any) -> None:
        self.documents, self.limits, self.schema = documents, limits, schema

    @classmethod
    def of(cls, settings: Settings, schema: Any) -> Gate:
        """ConfigurationError (one line) for a bad documents directory or budget."""
        return cls(load_trusted(settings, schema), RateLimits.configured(settings), schema)

    async def admit(self, query: str, variables: dict[str, Any] | None, operation: str | None,
                    identity: Identity, client: str | None) -> None:
        """DOCUMENT_NOT_TRUSTED or RATE_LIMITED, or nothing: the operation may run."""
        self.documents.admit(query, identity)
        if self.limits is not None:
            cost = self.cost(query, variables, operation) if self.limits.cost else 0
            await self.limits.charge(caller(identity, client), cost)

    def cost(self, query: str, variables: dict[str, Any] | None, operation: str | None) -> int:
        """The estimate the cost limit makes (0 for a document that will be refused anyway:
        unparsable, no such operation, above the ceiling); shapes are cached per document."""
        try:
            document = parsed(query)
            return int(self.schema.limits.cost.check(
                document, select_operation(document, operation), variables or {}))
        except (GraphQLError, QueryTooComplex, DomainError):
            return 0


def refusal(exc: DomainError, refused_status: int) -> tuple[int, bytes, dict[str, str]]:
    """The HTTP status, body and headers of a request the gate (or a document id) refused:
    429 with Retry-After when rate limited, else `refused_status` (200, or 400 for
    application/graphql-response+json clients)."""
    body = orjson.dumps({"errors": [{"message": exc.message,
                                     "extensions": {"code": exc.code, **exc.extensions}}]})
    if isinstance(exc, RateLimited):
        return 429, body, {"Retry-After": str(exc.retry_after)}
    return refused_status, body, {}
