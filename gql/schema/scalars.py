"""Scalars: UUID, DateTime (offset required), Decimal (strings only, never floats), JSON."""

from __future__ import annotations

import decimal
import re
import uuid
from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON

__all__ = ["JSON", "SCALARS", "UUID", "DateTime", "Decimal", "in_business_range", "money"]

# Business time lies in 1970…9999 (UTC); schema.sql holds the log to the same range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# Money: digits and an optional point, as schema.sql's og_money reads it (no exponent, no
# spaces, no "+"); the order's currency then decides how many decimals are allowed.
_AMOUNT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,6})?")


class InvalidScalar(ValueError):
    """A client's value that is not of the scalar's form; its message is for the client."""


def _parse_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise InvalidScalar("UUID must be a string such as 5f0e…-…")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidScalar(f"{value!r} is not a UUID") from None


def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidScalar("DateTime must be an ISO 8601 string with an offset")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidScalar(f"{value!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidScalar(f"{value!r} has no UTC offset; add one, e.g. 'Z' or '+02:00'")
    if not in_business_range(parsed):
        raise InvalidScalar(f"{value!r} is outside 1970-01-01 … 9999-12-31 (UTC)")
    return parsed


def in_business_range(value: datetime) -> bool:
    try:
        return EARLIEST <= value.astimezone(UTC) <= LATEST
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
        return False


def _parse_decimal(value: Any) -> decimal.Decimal:
    if not isinstance(value, str):
        raise InvalidScalar("Decimal amounts are strings such as \"12.50\", never numbers")
    if _AMOUNT.fullmatch(value) is None:
        raise InvalidScalar(f"{value[:40]!r} is not a decimal amount: digits with an optional "
                            "point, at most 15 before it and 6 after, e.g. \"12.50\"")
    return decimal.Decimal(value)


def iso(value: datetime) -> str:
    """ISO 8601 as PostgreSQL writes it in JSON: fractions without trailing zeros."""
    text = value.isoformat()
    if value.microsecond and value.utcoffset() is not None:
        text = text[:-6].rstrip("0") + text[-6:]
    return text


def money(value: decimal.Decimal | str) -> str:
    """An amount as stored: the database writes every amount with exactly its currency's
    minor units ("300" JPY, "4.50" EUR), so its digits are shown as they are."""
    return str(decimal.Decimal(value))


UUID = NewType("UUID", uuid.UUID)
DateTime = NewType("DateTime", datetime)
Decimal = NewType("Decimal", decimal.Decimal)

SCALARS = {
    UUID: strawberry.scalar(
        name="UUID",
        description="A UUID, e.g. 0b9f5c1e-3a4d-4c2e-9a7b-5d6e7f8a9b0c.",
        serialize=str,
        parse_value=_parse_uuid,
    ),
    DateTime: strawberry.scalar(
        name="DateTime",
        description="An ISO 8601 date-time with a UTC offset, e.g. 2026-11-30T09:15:00+01:00.",
        serialize=iso,
        parse_value=_parse_datetime,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description="Money as a decimal string, e.g. \"12.50\"; never a float.",
        serialize=money,
        parse_value=_parse_decimal,
    ),
}
