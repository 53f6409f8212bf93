"""GraphQL over WebSocket: strawberry's two protocols, strict about what a client sends.

Any message that is not a JSON object of the protocol's shape closes the connection with
4400 (both subprotocols); the per-connection subscription cap is the live hub's, answered
with TOO_MANY_SUBSCRIPTIONS; server pings keep graphql-transport-ws connections alive.

Identity: the `connection_init` payload carries the token (`Authorization: Bearer …`, as
GraphiQL's headers pane sends it, or `token`); a missing, bad or expired one closes the
connection with 4403, and so does the token's `exp` (plus leeway) on an open connection,
so that clients reconnect with a fresh token and resume from their last position.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import timedelta
from typing import Any

import orjson
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import GraphQL
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from gql.config import Settings
from gql.errors import BadRequest, Unauthenticated
from gql.http.access import NOBODY, Access, bearer
from gql.http.gate import REFUSALS
from gql.http.requestlog import log, operation_name, subject_of
from gql.schema import build_schema
from gql.schema.context import Context
from gql.schema.subscriptions import Rendered

MALFORMED = 4400
FORBIDDEN = 4403
INIT_TIMEOUT = 4408  # no connection_init within ORDERGRAPH_CONNECTION_INIT_TIMEOUT (both protocols)
# message types that name an operation, per protocol, and those that carry a GraphQL request
_WITH_ID = {"subscribe", "complete", "start", "stop"}
_WITH_REQUEST = {"subscribe", "start"}


def malformed(message: Any) -> str | None:
    """Why a parsed client message breaks the protocol's shape, or None when it fits."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be a JSON object with a string `type`"
    kind = message["type"]
    if kind in _WITH_ID and not isinstance(message.get("id"), str):
        return f"a {kind} message needs a string `id`"
    payload = message.get("payload")
    if kind in _WITH_REQUEST:
        if not isinstance(payload, dict) or not (isinstance(payload.get("query"), str)
                                                 or _names_a_document(payload)):
            return f"a {kind} message needs a payload with a string `query` (or `documentId`)"
        for key, kinds in (("variables", dict), ("operationName", str), ("extensions", dict)):
            if payload.get(key) is not None and not isinstance(payload[key], kinds):
                return f"`payload.{key}` has the wrong type"
    elif payload is not None and not isinstance(payload, dict):
        return "`payload` must be a JSON object"
    return None


def _names_a_document(payload: dict[str, Any]) -> bool:
    extensions = payload.get("extensions")
    return "documentId" in payload or (isinstance(extensions, dict) and "persistedQuery" in extensions)


def token_of(payload: Any) -> str | None:
    """The bearer token of a `connection_init` payload."""
    if not isinstance(payload, dict):
        return None
    for key in ("Authorization", "authorization"):
        if isinstance(payload.get(key), str):
            return bearer(payload[key])
    headers = payload.get("headers")
    if isinstance(headers, dict):
        return token_of(headers)
    token = payload.get("token")
    return token if isinstance(token, str) and token else None


class _Admission:
    """Identity at `connection_init`, and the close at the token's expiry (both protocols)."""

    websocket: Any
    view: Any
    context: Context
    _expiry: asyncio.Task[None] | None = None

    async def admit(self, payload: Any) -> bool:
        access: Access = self.view.state.access
        client = getattr(getattr(self.context.request, "client", None), "host", None)
        try:
            identity = await access.identify(token_of(payload), client)
        except Unauthenticated as exc:
            await self.websocket.close(code=FORBIDDEN, reason=exc.message[:120])
            return False
        self.context.identity = identity
        if identity.expires_at is not None:
            self._expiry = asyncio.create_task(self._close_at(
                identity.expires_at + access.settings.jwt_leeway))
        return True

    async def _close_at(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.time()))
        with contextlib.suppress(Exception):
            await self.websocket.close(code=FORBIDDEN, reason="the token has expired")

    async def refused(self, message: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Reads the document a subscribe (start) message names by id into its payload and
        passes the gate (trusted documents, rate limits: a subscription counts when it
        starts); the errors to answer instead, or None when the operation may run."""
        payload, gate = message["payload"], self.view.state.gate
        client = getattr(getattr(self.context.request, "client", None), "host", None)
        try:
            query = gate.documents.resolve(payload) or payload.get("query")
            if not isinstance(query, str) or not query.strip():
                raise BadRequest("no GraphQL query: send `query` as a string, or `documentId`")
            payload["query"] = query
            await gate.admit(query, payload.get("variables"), payload.get("operationName"),
                             self.context.identity, client)
        except (BadRequest, *REFUSALS) as exc:
            self._log(payload, exc.code)
            return [{"message": exc.message, "extensions": {"code": exc.code, **exc.extensions}}]
        self._log(payload, None)
        return None

    def _log(self, payload: dict[str, Any], code: str | None) -> None:
        """One line per operation started over the socket (ORDERGRAPH_LOG_REQUESTS), as
        gql/http/requestlog.py writes one per HTTP request."""
        if not self.view.settings.log_requests:
            return
        query, identity = payload.get("query"), self.context.identity
        operation = payload.get("operationName")
        if operation is None and isinstance(query, str):
            operation = operation_name(query)
        log.info("subscribe", path="/graphql", transport="websocket", operation=operation,
                 code=code, role=identity.role, subject=subject_of(identity))

    def end_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    async def send_message(self, message: Any) -> None:
        """Payloads the live hub rendered go out as their JSON text, framed here (`next` or
        `data`), until the subscription needs its resolvers again; everything else through
        strawberry's JSON encoding."""
        payload = message.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, Rendered):
            await super().send_message(message)  # type: ignore[misc]
            return
        prefix = (f'{{"id":{orjson.dumps(message["id"]).decode()},"type":"{message["type"]}",'
                  '"payload":{"data":')
        delivery = data.pending
        try:
            while delivery is not None:
                if delivery.data is None:
                    data.stopped = delivery
                    return
                await self.websocket.ws.send_text(prefix + delivery.data + "}}")
                delivery = await anext(data.deliveries, None)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
        except Exception as exc:  # the resolver reports it, as for any subscription
            data.error = exc


class _TransportWS(_Admission, BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws with server pings, as graphql-ws has its keep-alive messages."""

    async def handle(self) -> None:
        pinger = asyncio.create_task(self._ping(self.view.settings.keepalive_interval))
        try:
            await super().handle()
        finally:
            pinger.cancel()
            self.end_expiry()

    async def handle_connection_init(self, message: Any) -> None:
        if not self.connection_init_received and not await self.admit(message.get("payload")):
            return
        await super().handle_connection_init(message)

    async def handle_message(self, message: Any) -> None:
        reason = malformed(message)
        if reason is not None:
            await self.websocket.close(code=MALFORMED, reason=reason)
            return
        if message["type"] == "subscribe" and self.connection_acknowledged:
            errors = await self.refused(message)
            if errors is not None:
                await self.send_message({"id": message["id"], "type": "error", "payload": errors})
                return
        await super().handle_message(message)

    async def _ping(self, interval: float) -> None:
        with contextlib.suppress(Exception):
            while True:
                # jitter: connections opened together must not all ping in the same instant
                await asyncio.sleep(interval * random.uniform(0.75, 1.0))
                if self.connection_acknowledged:
                    await self.send_message({"type": "ping"})


class _LegacyWS(_Admission, BaseGraphQLWSHandler):  # type: ignore[type-arg]
    """graphql-ws, closing with 4400 on frames that are not JSON (strawberry ignores them),
    and with 4403 on an operation before an admitted `connection_init`."""

    admitted = False

    async def handle(self) -> None:
        waiting = asyncio.create_task(self._close_unless_admitted(
            self.view.settings.connection_init_timeout))
        try:
            try:
                async for message in self.websocket.iter_json():
                    await self.handle_message(message)
            except (NonTextMessageReceived, NonJsonMessageReceived):
                await self.websocket.close(code=MALFORMED, reason="messages must be JSON text")
        except WebSocketDisconnected:
            pass
        finally:
            waiting.cancel()
            self.end_expiry()
            if self.keep_alive_task:
                self.keep_alive_task.cancel()
                with contextlib.suppress(BaseException):
                    await self.keep_alive_task
            await self.cleanup()

    async def _close_unless_admitted(self, seconds: float) -> None:
        """A socket that sends no `connection_init` in time is closed, as graphql-transport-ws
        does (strawberry's legacy handler waits forever)."""
        await asyncio.sleep(seconds)
        if not self.admitted:
            with contextlib.suppress(Exception):
                await self.websocket.close(code=INIT_TIMEOUT, reason="Connection initialisation timeout")

    async def handle_message(self, message: Any) -> None:
        reason = malformed(message)
        if reason is not None:
            await self.websocket.close(code=MALFORMED, reason=reason)
            return
        if message["type"] == "connection_init":
            if self.admitted:
                await self.websocket.close(code=4429, reason="Too many initialisation requests")
                return
            if not await self.admit(message.get("payload")):
                return
            self.admitted = True
        elif message["type"] == "start" and not self.admitted:
            await self.websocket.close(code=FORBIDDEN, reason="send connection_init first")
            return
        elif message["type"] == "start":
            errors = await self.refused(message)
            if errors is not None:
                await self.send_message({"id": message["id"], "type": "error", "payload": errors[0]})
                return
        await super().handle_message(message)


class WebSocketEndpoint(GraphQL):  # type: ignore[type-arg]
    """strawberry's WebSocket protocols, with a fresh context per connection."""

    graphql_transport_ws_handler_class = _TransportWS
    graphql_ws_handler_class = _LegacyWS

    def __init__(self, settings: Settings, state: Any) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
            keep_alive=True,
            keep_alive_interval=settings.keepalive_interval,
            # the live hub caps subscriptions, answering TOO_MANY_SUBSCRIPTIONS; strawberry's
            # own cap would answer the same request in another shape, without a code
            max_subscriptions_per_connection=None,
        )
        self.settings = settings
        self.state = state

    async def get_context(self, request: Any, response: Any = None) -> Context:
        # who asks is known at connection_init (_Admission.admit); until then: nobody
        return Context(self.state.pool, self.settings, self.state.access.grants, NOBODY,
                       getattr(self.state, "live", None), request, sends_rendered=True)
