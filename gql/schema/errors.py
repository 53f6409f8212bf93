"""Errors for clients: domain errors carry their API error code; anything unexpected is masked."""

from __future__ import annotations

import logging
import re
import uuid

from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from gql.errors import DomainError, OperationRefused, RequestTimeout, ServiceUnavailable
from gql.schema.scalars import InvalidScalar
from gql.store.outage import is_outage

log = logging.getLogger("ordergraph.errors")


def _pre_execution_code(error: GraphQLError) -> str:
    message = error.message
    if message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if (message.startswith(("Variable ", "Expected value of type"))
            or "got invalid value" in message):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


_SUGGESTION = " Did you mean "
# where graphql-core says a variable's value is wrong: "Variable '$input' has invalid value
# at .items[0].unitPrice: …" (a mutation's `input` is the variable, left out of `field`)
_AT = re.compile(r"^Variable '\$(\w+)' has invalid value(?: at \.([^:]+))?:")


def _field(message: str) -> str | None:
    found = _AT.match(message)
    if found is None:
        return None
    return found[2] if found[2] else found[1]
_TIMED_OUT = "57014"  # PostgreSQL's query_canceled: the statement timeout fired


def client_error(error: GraphQLError, *, hide_suggestions: bool = False) -> GraphQLError:
    """The error as a client may see it, always with `extensions.code`; without "Did you
    mean …" when the schema is not to be revealed (introspection off)."""
    if hide_suggestions and _SUGGESTION in error.message:
        error = GraphQLError(error.message.split(_SUGGESTION)[0], error.nodes, error.source,
                             error.positions, error.path, error.original_error, error.extensions)
    original = error.original_error
    if isinstance(original, InvalidOperationTypeError):  # e.g. a query over legacy graphql-ws
        original = OperationRefused(f"{original.operation_type.value} operations cannot be "
                                    "sent this way")
    elif isinstance(original, CannotGetOperationTypeError):
        original = OperationRefused("the document has no operation of that name")
    if getattr(original, "sqlstate", None) == _TIMED_OUT:
        original = RequestTimeout("the request took longer than its time budget; ask for less")
    elif is_outage(original):  # logged once per outage (gql/store/outage.py), not per error
        original = ServiceUnavailable("the database is unavailable; try again shortly")
    if isinstance(original, DomainError):
        extensions = {"code": original.code, **original.extensions}
        return GraphQLError(original.message, error.nodes, error.source, error.positions,
                            error.path, None, extensions)
    if error.extensions and "code" in error.extensions:
        return error
    # parse and validation errors, and our scalars' messages (also wrapped by graphql-core)
    request_error = original is None or isinstance(original, GraphQLError | InvalidScalar)
    if error.path is None and request_error:
        # parsing, validation and variable coercion: the message is about the request
        code = _pre_execution_code(error)
        field = _field(error.message) if code == "BAD_USER_INPUT" else None
        return GraphQLError(error.message, error.nodes, error.source, error.positions,
                            None, None, {"code": code, **({"field": field} if field else {})})
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s at %s", error_id, error.path, exc_info=original or error)
    return GraphQLError(f"Internal server error (id {error_id})", error.nodes, error.source,
                        error.positions, error.path, None,
                        {"code": "INTERNAL_SERVER_ERROR", "errorId": error_id})


class ErrorCodes(MaskErrors):
    """Applies `client_error` to every result, also each subscription result."""

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return client_error(error, hide_suggestions=self.hide_suggestions)

    def _process_result(self, result: object) -> None:
        # strawberry checks a runtime Protocol here (~20 µs per streamed result)
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]
