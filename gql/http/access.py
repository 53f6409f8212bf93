"""The HTTP edge of identity: who each request is, before anything else runs.

`Access` turns an `Authorization: Bearer` header (or a WebSocket's `connection_init`
payload) into an Identity, or refuses with UNAUTHENTICATED; with no keys configured every
caller is admin, but only from a loopback address unless `insecure_open` says otherwise.
`Authenticate` runs it for every GraphQL request (HTTP 401 when refused) and guards
/metrics with its own token when one is configured.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from gql.config import Settings
from gql.errors import Unauthenticated
from gql.identity import OPEN, Grants, Identity
from gql.store.access import load_grants
from gql.tokens import Verifier

IDENTITY = "ordergraph.identity"  # where a request's Identity is kept on its ASGI scope
NOBODY = Identity("anonymous", "anonymous")  # reads nothing, appends nothing


def is_loopback(host: str | None) -> bool:
    if host is None or host == "":  # a unix socket: local by construction
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Access:
    """The app's verifier and the grants read from the database (once, on first use)."""

    def __init__(self, settings: Settings, verifier: Verifier, state: Any) -> None:
        self.settings, self.verifier, self.state = settings, verifier, state
        self._grants: Grants | None = None

    @property
    def open(self) -> bool:
        return not self.verifier.configured

    @property
    def grants(self) -> Grants:
        if self._grants is None:
            raise RuntimeError("the grants are read on the first request (Access.load)")
        return self._grants

    async def load(self) -> Grants:
        if self._grants is None:
            self._grants = await load_grants(self.state.pool)
        return self._grants

    async def identify(self, token: str | None, client: str | None) -> Identity:
        """The caller of a request with this bearer token (None: none sent)."""
        await self.load()
        if self.open:
            if not (self.settings.insecure_open or is_loopback(client)):
                raise Unauthenticated("no keys are configured: this server answers loopback "
                                      "clients only")
            return OPEN
        if not token:
            raise Unauthenticated("send a token: Authorization: Bearer <JWT>")
        return await self.verifier.verify(token)


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` value (None when it is not one)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def refuse(send: Send, message: str) -> None:
    body = orjson.dumps({"errors": [{"message": message,
                                     "extensions": {"code": Unauthenticated.code}}]})
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})


def _names_a_document(scope: Scope) -> bool:
    params = QueryParams(scope["query_string"])
    return "query" in params or "documentId" in params or "extensions" in params


class Authenticate:
    """Sets the request's Identity on its scope, or answers 401."""

    def __init__(self, app: ASGIApp, access: Access, path: str = "/graphql") -> None:
        self.app, self.access, self.path = app, access, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"][len(scope.get("root_path", "")):]
        if path == "/metrics" and self.access.settings.metrics_token:
            given = bearer(_header(scope, b"authorization")) or ""
            if not hmac.compare_digest(given.encode(), self.access.settings.metrics_token.encode()):
                await refuse(send, "/metrics needs its token: Authorization: Bearer <token>")
                return
        elif path == self.path and not (scope["method"] in ("GET", "HEAD")
                                        and not _names_a_document(scope)):
            # read as the endpoint reads it (`?%71uery=` is `?query=`): only a GET without a
            # query or a document id (GraphiQL's page, or a refusal) goes on without an identity
            client = scope.get("client")
            try:
                scope[IDENTITY] = await self.access.identify(
                    bearer(_header(scope, b"authorization")), client[0] if client else None)
            except Unauthenticated as exc:
                await refuse(send, exc.message)
                return
        await self.app(scope, receive, send)
