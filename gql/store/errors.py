"""The one table from database constraint names to domain errors."""

from __future__ import annotations

import asyncpg
import orjson

from gql import errors
from gql.events import EventType

# Rules raised by schema.sql's functions (`og_fail(code, …)`) and named table constraints.
_BY_CONSTRAINT: dict[str, tuple[type[errors.DomainError], dict[str, str]]] = {
    "bad_user_input": (errors.BadUserInput, {}),
    "invalid_transition": (errors.InvalidTransition, {}),
    "order_not_found": (errors.OrderNotFound, {}),
    "order_already_exists": (errors.OrderAlreadyExists, {}),
    "orders_current_pkey": (errors.OrderAlreadyExists, {}),
    "idempotency_conflict": (errors.IdempotencyConflict, {}),
    "wrong_expected_version": (errors.WrongExpectedVersion, {}),
    "log_immutable": (errors.LogImmutable, {}),
    "forbidden": (errors.Forbidden, {}),
    "order_events_customer_fkey": (errors.CustomerNotFound, {"field": "customerId"}),
    "orders_current_customer_fkey": (errors.CustomerNotFound, {"field": "customerId"}),
    "order_events_payload_size": (errors.BadUserInput, {"field": "payload"}),
    "order_events_actor_type_valid": (errors.BadUserInput, {"field": "actor.type"}),
    "order_events_actor_id_valid": (errors.BadUserInput, {"field": "actor.id"}),
    "order_events_occurred_at_range": (errors.BadUserInput, {"field": "occurredAt"}),
    "customers_email_index_key": (errors.BadUserInput, {"field": "email"}),
    "customer_not_found": (errors.CustomerNotFound, {"field": "customerId"}),
    "customer_already_forgotten": (errors.CustomerAlreadyForgotten, {"field": "customerId"}),
}

_MESSAGES = {
    "order_events_customer_fkey": "customer does not exist",
    "orders_current_customer_fkey": "customer does not exist",
    "order_events_payload_size": "the event data is larger than 64 KB",
    "order_events_actor_type_valid": "actor.type is longer than 100 characters",
    "order_events_actor_id_valid": "actor.id is longer than 200 characters",
    "order_events_occurred_at_range": "occurredAt must lie between 1970-01-01 and 9999-12-31",
    "customers_email_index_key": "a customer with this email is already registered",
    "orders_current_pkey": "the order already exists",
}

# Failures a concurrent writer can cause between og_append's checks and its insert; a
# retry sees the other writer's committed row and answers deduplicated or the real error.
RETRYABLE = frozenset({
    "order_events_pkey", "orders_current_pkey", "order_events_authorization_key",
    "order_already_exists",
})


# Transient failures PostgreSQL asks the client to retry (deadlock_detected,
# serialization_failure): a statement that runs alone in its transaction is simply sent again.
TRANSIENT = frozenset({"40P01", "40001"})


def is_transient(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in TRANSIENT


def domain_error(exc: asyncpg.PostgresError) -> errors.DomainError | None:
    """The domain error a database failure stands for, or None for an unexpected one."""
    name = getattr(exc, "constraint_name", None)
    if name not in _BY_CONSTRAINT:
        return None
    cls, defaults = _BY_CONSTRAINT[name]
    extensions: dict[str, object] = dict(defaults)
    detail = getattr(exc, "detail", None)
    if detail and detail.startswith("{"):
        extensions.update(orjson.loads(detail))
    if "eventType" in extensions:
        extensions["eventType"] = EventType(extensions["eventType"]).name
    message = _MESSAGES.get(name) or getattr(exc, "message", None) or str(exc)
    return cls(message, **extensions)


def line_error(exc: asyncpg.PostgresError) -> errors.DomainError | None:
    """What an imported line that the database refused stands for: its rule's domain error,
    or BAD_USER_INPUT for a value PostgreSQL cannot take (data exceptions, class 22) or a
    constraint without a rule name (class 23); None for anything else (the import stops)."""
    refused = domain_error(exc)
    if refused is None and (exc.sqlstate or "")[:2] in ("22", "23"):
        message = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
        refused = errors.BadUserInput(f"the database refused a value: {message}")
    return refused
