"""Read-your-writes over HTTP: the position token a write answers with, and a read sends back.

When the server reads from replicas, a mutation's response carries the primary's WAL
position after it, in the header `X-Ordergraph-Position` and in `extensions.position`. A
read that sends the same header is answered from data that includes that position
(gql/store/replicas.py). Every GraphQL
response says who answered it in `X-Ordergraph-Served-By` (`replica` or `primary`).
"""

from __future__ import annotations

from starlette.datastructures import State

from gql.errors import BadRequest
from gql.metrics import READS_SERVED
from gql.store.replicas import PRIMARY, Replicas, Route, current_position, parse_position

POSITION_HEADER = "X-Ordergraph-Position"
SERVED_BY_HEADER = "X-Ordergraph-Served-By"
POSITION_KEY = POSITION_HEADER.lower().encode()
_SERVED = {by: READS_SERVED.labels(by) for by in ("primary", "replica")}


def token_of(value: str | bytes | None) -> int | None:
    """The position a request's header names; BadRequest when it is not a token."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not text.strip():
        return None
    try:
        return parse_position(text)
    except ValueError:
        raise BadRequest(f"{POSITION_HEADER} must be a position token from a mutation's "
                         f"response, such as 0/16B3748, not {text[:40]!r}") from None


def _replicas(state: State) -> Replicas | None:
    """The app's read router; None in an app state built without one (the primary serves)."""
    return getattr(state, "replicas", None)


def primary_route(state: State) -> Route:
    replicas = _replicas(state)
    return replicas.primary if replicas is not None else Route(state.pool, state.reads, PRIMARY)


async def route_read(state: State, token: int | None) -> Route:
    """Where a read runs (the primary when no replica is configured)."""
    replicas = _replicas(state)
    return await replicas.route(token) if replicas is not None else primary_route(state)


def served(route: Route) -> dict[str, str]:
    """The headers of a read's response."""
    _SERVED[route.served_by].inc()
    return {SERVED_BY_HEADER: route.served_by}


async def written(state: State) -> tuple[str | None, dict[str, str]]:
    """The token of a write just committed, and the headers of its response. Without a
    replica every read sees every write: no token, and no round trip to read one."""
    replicas = _replicas(state)
    if replicas is None or not replicas.replicas:
        return None, {SERVED_BY_HEADER: PRIMARY}
    position = await current_position(replicas.primary.lane)
    return position, {POSITION_HEADER: position, SERVED_BY_HEADER: PRIMARY}


def with_position(body: bytes, position: str | None) -> bytes:
    """A compiled response body (a JSON object) with `extensions.position` added."""
    if position is None:
        return body
    return body[:-1] + b',"extensions":{"position":"' + position.encode() + b'"}}'
