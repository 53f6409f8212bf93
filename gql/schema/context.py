"""Per-operation context: the pool, settings, and DataLoaders that live for one operation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from gql.config import Settings
from gql.events import EventOrder, EventType, Position
from gql.identity import Grants, Identity
from gql.store import Pool, Row, customers, reads

# Each Order.events page is its own key, so that orders on one page batch into one query
# per distinct (page size, cursor, types, order) combination.
EventsKey = tuple[uuid.UUID, int, int | None, tuple[EventType, ...] | None, EventOrder]


@dataclass
class Loaders:
    """Fresh per operation (and per subscription event), so nobody sees stale rows."""

    pool: Pool
    viewer: uuid.UUID | None  # the only customer whose rows these loaders return; None: all
    orders: DataLoader[uuid.UUID, Row | None] = field(init=False)
    customers: DataLoader[uuid.UUID, Row | None] = field(init=False)
    order_events: DataLoader[EventsKey, list[Row]] = field(init=False)

    def __post_init__(self) -> None:
        self.orders = DataLoader(self._load_orders)
        self.customers = DataLoader(self._load_customers)
        self.order_events = DataLoader(self._load_order_events)

    async def _load_orders(self, ids: list[uuid.UUID]) -> list[Row | None]:
        return await reads.load_orders(self.pool, ids, self.viewer)

    async def _load_customers(self, ids: list[uuid.UUID]) -> list[Row | None]:
        return await customers.load_customers(self.pool, ids, self.viewer)

    async def _load_order_events(self, keys: list[EventsKey]) -> list[list[Row]]:
        groups: dict[tuple[Any, ...], list[uuid.UUID]] = {}
        for order_id, *page in keys:
            groups.setdefault(tuple(page), []).append(order_id)
        pages: dict[EventsKey, list[Row]] = {}
        for (limit, after, types, order), order_ids in groups.items():
            found = await reads.list_order_events(
                self.pool, order_ids, limit=limit, after_version=after, types=types, order=order
            )
            for order_id in order_ids:
                pages[(order_id, limit, after, types, order)] = found.get(order_id, [])
        return [pages[key] for key in keys]


@dataclass
class Context:
    """`identity` is who asks; over a WebSocket it is set at `connection_init`."""

    pool: Pool  # where this operation reads: a replica's pool, or the primary's
    settings: Settings
    grants: Grants
    identity: Identity
    live: Any = None
    request: Any = None
    connection_params: Any = None
    primary: Pool | None = None  # where it writes, when not `pool`
    wrote: bool = False  # a mutation ran: the response carries a position token
    # the connection sends payloads the live hub rendered as they are (gql/http/websocket.py)
    sends_rendered: bool = False
    # GraphQL over SSE (gql/http/sse.py): the position a reconnecting client saw last
    # (Last-Event-ID), where its subscription resumes; and the position of the event the
    # subscription yielded last, which becomes that event's SSE id
    resume_after: Position | None = None
    last_position: Position | None = None
    _loaders: Loaders | None = None

    @property
    def viewer(self) -> uuid.UUID | None:
        """The customer whose rows alone this operation may read (None: every row)."""
        return self.grants.viewer(self.identity)

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.pool, self.viewer)
        return self._loaders

    def for_writes(self) -> Pool:
        """The primary's pool; from the first write on the operation also reads there, so
        that it reads its own writes (a replica may not have them yet)."""
        if self.primary is not None and self.pool is not self.primary:
            self.pool, self._loaders = self.primary, None
        self.wrote = True
        return self.pool

    def fresh(self) -> Context:
        """A copy with new loaders: each subscription event reads current rows."""
        return Context(self.pool, self.settings, self.grants, self.identity, self.live,
                       self.request, self.connection_params, self.primary)


Info = StrawberryInfo[Context, None]
