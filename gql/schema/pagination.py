"""Relay connections with opaque keyset cursors (never offsets)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry

from gql.errors import BadUserInput
from gql.events import BIGINT_MAX
from gql.schema.scalars import in_business_range

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


Counter = Callable[[], Awaitable[int]]


async def _nothing() -> int:
    return 0


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    counter: strawberry.Private[Counter] = _nothing

    @strawberry.field
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many items the connection's filters select, all pages "
                      "together (its cursor aside).")
    async def total_count(self) -> int:
        return await self.counter()


# Default page sizes of the API; `first` above the configured cap is an error.
ORDERS_PAGE = 20
EVENTS_PAGE = 50


def page_size(first: int | None, default: int, cap: int) -> int:
    size = default if first is None else first
    if size < 0:
        raise BadUserInput("first must not be negative", field="first")
    if size > cap:
        raise BadUserInput(f"first must be at most {cap}", field="first", max=cap)
    return size


def connection(
    rows: Sequence[R],
    size: int,
    node: Callable[[R], T],
    cursor: Callable[[R], str],
    *,
    after: str | None,
    count: Counter = _nothing,
) -> Connection[T]:
    """A page from `size + 1` fetched rows: the extra row only says there is a next page;
    `count` answers totalCount when it is asked for."""
    edges = [Edge(cursor=cursor(row), node=node(row)) for row in rows[:size]]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > size,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        counter=count,
    )


def encode_cursor(kind: str, *values: Any) -> str:
    """Opaque to clients; schema.sql's og_cursor() renders the same text."""
    raw = "|".join([kind, *(_plain(v) for v in values)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, kind: str, *types: type) -> tuple[Any, ...]:
    """The cursor's values, checked against `types`; BAD_USER_INPUT if malformed."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        parts = raw.split("|")
        if parts[0] != kind or len(parts) != len(types) + 1:
            raise ValueError(kind)
        return tuple(_typed(value, t) for value, t in zip(parts[1:], types, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("after is not a cursor from this connection", field="after") from None


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _typed(value: str, kind: type) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None or not in_business_range(parsed):
            raise ValueError(value)
        return parsed
    typed = kind(value)
    if isinstance(typed, int) and abs(typed) > BIGINT_MAX:
        raise ValueError(value)
    return typed
