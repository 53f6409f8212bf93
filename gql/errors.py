"""Every error a client can see, with its `extensions.code`: the one place codes are defined.

Each expected failure is a `DomainError` subclass here; the code travels to the client in
`errors[].extensions.code`, with the exception's other extensions. The codes and what HTTP
answers them (for a GraphQL error the status follows GraphQL over HTTP: 200 with `errors`,
or 400 for a request refused before it runs when the client asks for
`application/graphql-response+json`):

| code | class | meaning | HTTP |
|---|---|---|---|
| `BAD_USER_INPUT` | BadUserInput | an invalid value; `extensions.field` names it | 200 / 400 |
| `WRONG_EXPECTED_VERSION` | WrongExpectedVersion | `expectedVersion` ≠ the stream's version | 200 |
| `INVALID_TRANSITION` | InvalidTransition | the state machine forbids the event | 200 |
| `ORDER_NOT_FOUND` | OrderNotFound | an unknown (or another customer's) order | 200 |
| `CUSTOMER_NOT_FOUND` | CustomerNotFound | an unknown customer | 200 |
| `CUSTOMER_ALREADY_FORGOTTEN` | CustomerAlreadyForgotten | `forgetCustomer` of a forgotten customer | 200 |
| `ORDER_ALREADY_EXISTS` | OrderAlreadyExists | `placeOrder` on an existing stream | 200 |
| `IDEMPOTENCY_CONFLICT` | IdempotencyConflict | an id reused with different content | 200 |
| `FORBIDDEN` | Forbidden, LogImmutable | the role may not do this; the log is never changed | 200 |
| `FORBIDDEN` | (the Host/Origin guard) | a browser origin outside the allow-list | 403 |
| `UNAUTHENTICATED` | Unauthenticated | a missing, bad or expired token | 401 |
| `MISDIRECTED_REQUEST` | MisdirectedRequest | a `Host` outside the allow-list | 421 |
| `QUERY_TOO_COMPLEX` | QueryTooComplex | estimated cost above the ceiling | 200 / 400 |
| `BAD_REQUEST` | OperationNotFound, OperationRefused | which operation, or one not run here | 200 / 400 |
| `BAD_REQUEST` | BadRequest | not a GraphQL request (type, size, JSON, params) | 400 405 413 415 |
| `REQUEST_TIMEOUT` | RequestTimeout | a statement, or the request, outran its budget | 200 / 503 |
| `SUBSCRIPTION_OVERFLOW` | SubscriptionOverflow | a subscriber too slow for its queue | (WebSocket) |
| `TOO_MANY_SUBSCRIPTIONS` | TooManySubscriptions | the per-connection cap | (WebSocket) |
| `SERVICE_UNAVAILABLE` | ServiceUnavailable | the database is unreachable, or busy beyond retries | 503 |
| `SERVICE_UNAVAILABLE` | LiveUnavailable | the live hub is not running | (WebSocket) |
| `PERSISTED_QUERY_NOT_FOUND` | PersistedQueryNotFound | a document id no trusted document has | 200 / 400 |
| `DOCUMENT_NOT_TRUSTED` | DocumentNotTrusted | trusted-only mode: a document not trusted | 200 / 400 |
| `RATE_LIMITED` | RateLimited | the caller spent its requests or cost of the window | 429 |

Codes without a class, given by gql/schema/errors.py to graphql-core's own errors:
`GRAPHQL_PARSE_FAILED` (400 / 200), `GRAPHQL_VALIDATION_FAILED` (400 / 200) and
`INTERNAL_SERVER_ERROR` (masked, logged with the `errorId` the client sees). The database's
rule names map to these classes in gql/store/errors.py.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An expected failure, reported to clients with `extensions.code`."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


# The event store's rules (raised by schema.sql, mapped in gql/store/errors.py)

class BadUserInput(DomainError):
    code = "BAD_USER_INPUT"


class WrongExpectedVersion(DomainError):
    code = "WRONG_EXPECTED_VERSION"


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"


class OrderNotFound(DomainError):
    code = "ORDER_NOT_FOUND"


class CustomerNotFound(DomainError):
    code = "CUSTOMER_NOT_FOUND"


class CustomerAlreadyForgotten(DomainError):
    """forgetCustomer of a customer whose key is already destroyed: nothing is left to erase."""

    code = "CUSTOMER_ALREADY_FORGOTTEN"


class OrderAlreadyExists(DomainError):
    code = "ORDER_ALREADY_EXISTS"


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


class LogImmutable(DomainError):
    code = "FORBIDDEN"


# Identity and access

class Forbidden(DomainError):
    """The caller's role may not do this (the grants in schema.sql)."""

    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    """A missing, malformed, expired or untrusted token."""

    code = "UNAUTHENTICATED"


class MisdirectedRequest(DomainError):
    """A request for a host name this server does not answer for (DNS rebinding)."""

    code = "MISDIRECTED_REQUEST"


# The request itself

class BadRequest(DomainError):
    """An HTTP request that is not a GraphQL request (content type, size, JSON, parameters);
    answered before anything runs, with its own HTTP status."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class OperationNotFound(DomainError):
    """The request does not say which of the document's operations to run (or names none)."""

    code = "BAD_REQUEST"


class OperationRefused(DomainError):
    """An operation the transport does not run (e.g. a query over legacy graphql-ws)."""

    code = "BAD_REQUEST"


class QueryTooComplex(DomainError):
    code = "QUERY_TOO_COMPLEX"


class RequestTimeout(DomainError):
    code = "REQUEST_TIMEOUT"


class ServiceUnavailable(DomainError):
    """The database cannot answer now (unreachable, or a transient conflict that outlasted
    the retries); the same request may succeed later (HTTP 503 with Retry-After)."""

    code = "SERVICE_UNAVAILABLE"


class PersistedQueryNotFound(DomainError):
    """A request names a document by an id (sha256) that no trusted document has."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class DocumentNotTrusted(DomainError):
    """Trusted-only mode: the document is not one of the trusted documents."""

    code = "DOCUMENT_NOT_TRUSTED"


class RateLimited(DomainError):
    """The caller spent its budget of requests (or of estimated cost) for the window;
    `retry_after` seconds until the window ends (HTTP 429 with Retry-After)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retryAfter=retry_after)
        self.retry_after = retry_after


# Live delivery

class SubscriptionOverflow(DomainError):
    code = "SUBSCRIPTION_OVERFLOW"


class TooManySubscriptions(DomainError):
    code = "TOO_MANY_SUBSCRIPTIONS"


class LiveUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"


# Not for clients: the command line reports these as one line

class DatabaseUnavailable(Exception):
    """The database could not be reached or started; the message is for humans."""


class ConfigurationError(Exception):
    """A setting (flag or environment variable) has an unusable value."""


class ConsumerRefused(Exception):
    """A durable consumer cannot do what was asked (unknown, running, another filter)."""
