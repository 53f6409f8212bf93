"""Domain errors: each expected failure has an API error code and extensions for clients."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An expected failure, reported to clients with `extensions.code`."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions


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


class OrderAlreadyExists(DomainError):
    code = "ORDER_ALREADY_EXISTS"


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


class LogImmutable(DomainError):
    code = "FORBIDDEN"


class Forbidden(DomainError):
    """The caller's role may not do this (the grants in schema.sql)."""

    code = "FORBIDDEN"


class Unauthenticated(DomainError):
    """A missing, malformed, expired or untrusted token."""

    code = "UNAUTHENTICATED"


class DatabaseUnavailable(Exception):
    """The database could not be reached or started; the message is for humans."""


class ConfigurationError(Exception):
    """A setting (flag or environment variable) has an unusable value."""
