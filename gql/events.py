"""The order domain's vocabulary: event types, statuses, new events and log positions.

Event types and statuses are those of the declarations (gql/catalogue.py); the rules
themselves are generated from them into the database, where they hold for every writer.
This module only names things.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gql.catalogue import CATALOGUE
from gql.declaration import CODE
from gql.errors import BadUserInput

# Member names are the GraphQL enum values; values are the names stored in the log.
EventType = enum.Enum(  # type: ignore[misc]
    "EventType", [(e.constant, e.name) for e in CATALOGUE.events], module=__name__)
OrderStatus = enum.Enum(  # type: ignore[misc]
    "OrderStatus", [(s.name, s.name) for s in CATALOGUE.statuses], module=__name__)
# The enums of coded event data (e.g. OrderCancelled's `reasonCode`), by name.
CODES: dict[str, type[enum.Enum]] = {
    d.enum: enum.Enum(d.enum, [(c, c) for c in d.codes], module=__name__)  # type: ignore[misc]
    for e in CATALOGUE.events for d in e.data if d.kind == CODE
}
CancellationReason = CODES["CancellationReason"]


class EventOrder(enum.Enum):
    STREAM_VERSION = "stream_version"
    OCCURRED_AT = "occurred_at"
    RECORDED_AT = "recorded_at"


class TimeAxis(enum.Enum):
    OCCURRED = "occurred_at"
    RECORDED = "recorded_at"


@dataclass(frozen=True)
class Actor:
    type: str
    id: str


@dataclass(frozen=True)
class NewEvent:
    """An event a writer asks to append; the database decides whether it may follow."""

    order_id: uuid.UUID
    type: EventType
    payload: dict[str, Any]
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    expected_version: int | None = None
    occurred_at: datetime | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    actor: Actor | None = None
    schema_version: int | None = None  # None: the type's current version (schema.sql)


BIGINT_MAX = 2**63 - 1  # positions are PostgreSQL bigints
_POSITION = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})$")


@dataclass(frozen=True, order=True)
class Position:
    """A place in the global log: (writing transaction id, sequence number).

    Encoded as a fixed-width string so that clients may compare positions as strings.
    """

    xid: int
    seq: int

    def encode(self) -> str:
        return f"{self.xid:016x}-{self.seq:016x}"

    @classmethod
    def decode(cls, text: str, field: str = "after") -> Position:
        match = _POSITION.match(text)
        if match is None or max(int(match[1], 16), int(match[2], 16)) > BIGINT_MAX:
            raise BadUserInput(f"{field} is not a position in the log", field=field)
        return cls(int(match[1], 16), int(match[2], 16))


ORIGIN = Position(0, 0)
