"""GraphQL over HTTP at /graphql: one reading of the request, two ways to its answer.

A request's params are read once (`read_params`: a JSON body, or the query string of a GET)
and its media type picked once (`negotiate`). A document the resolvers answered once is then
answered from its compiled SQL (`answer_compiled`, gql/schema/fastpath.py); anything else
runs through strawberry's executor. Compiled POSTs are answered from the raw ASGI messages by
`CompiledFront`, before starlette's routing, Request and Response, which cost more CPU than
everything else together (bench/RESULTS.md, "Q1"); the starlette endpoint
(`graphql_endpoint`) answers the rest: GETs, bodies without a Content-Length, documents not
compiled yet, and failed reads, which the resolvers answer and report with their codes.

Status codes follow the GraphQL-over-HTTP spec: with `Accept: application/graphql-response+json`
a request that cannot run (unparsable, invalid, its variables not coercible, too costly) gets
400, as the spec's audit (graphql-http, run by tests/test_conformance.py) expects; legacy
`application/json` clients get 200 with `errors`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gql.config import Settings
from gql.errors import BadRequest, PersistedQueryNotFound, RequestTimeout, ServiceUnavailable
from gql.http.access import IDENTITY, NOBODY
from gql.http.gate import REFUSALS, client_of, refusal
from gql.http.positions import (
    POSITION_HEADER,
    POSITION_KEY,
    primary_route,
    route_read,
    served,
    token_of,
    with_position,
    written,
)
from gql.http.requestlog import note, note_errors, note_operation
from gql.http.tracing import annotate, annotate_operation
from gql.identity import Identity
from gql.metrics import COMPILED, REQUESTS
from gql.schema import appends
from gql.schema.appends import Appends
from gql.schema.context import Context
from gql.schema.documents import TrustedDocuments
from gql.schema.errors import client_error
from gql.schema.fastpath import FastPath, Refused
from gql.store import DATABASE_ERRORS, Pool
from gql.store.outage import RETRY_AFTER, is_outage
from gql.store.reads import fetch_document
from gql.store.replicas import Route

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# content types a POST body may declare: none a browser form can send without asking first
JSON_BODIES = (JSON, "application/graphql+json")
# set on the scope by CompiledFront when it already tried the compiled path for this request
COMPILED_TRIED = "ordergraph.compiled_tried"
# set on the scope once the gate (trusted documents, rate limits) let this request through
ADMITTED = "ordergraph.admitted"
NO_DOCUMENTS = TrustedDocuments()  # every document id is unknown
Params = tuple[str, dict[str, Any] | None, str | None]  # query, variables, operationName
log = logging.getLogger("ordergraph.http")
_ANSWERED, _FAILED, _APPENDED = (COMPILED.labels("read", "answered"), COMPILED.labels("read", "failed"),
                                 COMPILED.labels("append", "ran"))


# -- reading the request ------------------------------------------------------------------

def negotiate(accept: str) -> str:
    """The response media type for an Accept header."""
    if GRAPHQL_RESPONSE in accept and not accept.startswith(JSON):
        return GRAPHQL_RESPONSE
    return JSON


def params_of_body(body: bytes, documents: TrustedDocuments = NO_DOCUMENTS) -> Params:
    """The params of a POST body; BadRequest when it is not a GraphQL request,
    PersistedQueryNotFound when it names a document by an id `documents` do not have."""
    params = _loads(body, "body")
    if not isinstance(params, dict):
        raise BadRequest("the body must be a JSON object with a `query`")
    return _check_params(params, documents)


async def read_params(request: Request, settings: Settings,
                      documents: TrustedDocuments = NO_DOCUMENTS) -> Params:
    """The params of a GET's query string or a POST's JSON body (within the size limit); a
    document sent by id (`documentId`, or `extensions.persistedQuery.sha256Hash`) is read
    from `documents`."""
    if request.method in ("GET", "HEAD"):
        params: dict[str, Any] = dict(request.query_params)
        if "variables" in params:
            params["variables"] = _loads(params["variables"], "variables")
        if "extensions" in params:
            params["extensions"] = _loads(params["extensions"], "extensions")
        return _check_params(params, documents)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_BODIES:
        raise BadRequest(f"unsupported content type {content_type or '(none)'}; "
                         "send the body as application/json", 415)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise BadRequest(f"request body larger than {settings.max_body_bytes} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise BadRequest(f"request body larger than {settings.max_body_bytes} bytes", 413)
    return params_of_body(bytes(body), documents)


def _loads(raw: str | bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(f"the {what} is not valid JSON") from None


def _check_params(params: dict[str, Any], documents: TrustedDocuments) -> Params:
    query, variables, operation = (
        documents.resolve(params) or params.get("query"), params.get("variables"),
        params.get("operationName"))
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("no GraphQL query: send `query` as a string, or `documentId`")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("`variables` must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise BadRequest("`operationName` must be a string")
    return query, variables, operation


# -- the compiled answer, shared by both ---------------------------------------------------

@dataclass
class Answered:
    """A compiled answer: the body and the headers saying who served it (gql/http/positions.py)."""

    body: bytes
    headers: dict[str, str]


async def answer_compiled(fast: FastPath | None, state: State, params: Params, *,
                          mutations: bool, identity: Identity,
                          token: int | None) -> Answered | Refused | None:
    """The response from the document's compiled statements (or its refusal), or None: the
    resolvers answer. `mutations` says whether a known mutation may run (never over GET);
    reads are scoped to what `identity` may see and include the position `token`."""
    query, variables, operation = params
    compiled = (fast.compile(query, operation, variables, mutations=mutations,
                             grants=state.access.grants, identity=identity) if fast else None)
    if compiled is None or isinstance(compiled, Refused):
        return compiled
    if isinstance(compiled, Appends):
        _APPENDED.inc()
        body = await appends.run(compiled, state.pool)
        position, headers = await written(state)
        return Answered(with_position(body, position), headers)
    route = await route_read(state, token)
    try:
        try:
            data = await fetch_document(route.lane, *compiled)
        except DATABASE_ERRORS as exc:
            if route.replica is None:
                raise
            route = _off_replica(state, route, exc)  # the primary answers instead
            data = await fetch_document(route.lane, *compiled)
    except DATABASE_ERRORS as exc:
        if is_outage(exc):
            raise  # answered 503 by the caller: the resolvers would only fail again
        # the resolvers answer instead, and report what is still wrong with its error code
        log.exception("compiled query failed; answering through the resolvers")
        _FAILED.inc()
        return None
    _ANSWERED.inc()
    return Answered(b'{"data":' + data + b"}", served(route))


def _off_replica(state: State, route: Route, exc: BaseException) -> Route:
    """A read failed on a replica: it runs again on the primary, and a replica that is out
    leaves the rotation (a failure of the statement itself does not take it out)."""
    if is_outage(exc):
        state.replicas.failed(route, exc)
    log.warning("a read failed on replica %s (%s); the primary answers it",
                route.replica.name if route.replica else "?", type(exc).__name__)
    return primary_route(state)


def unavailable(exc: BaseException, state: State) -> dict[str, Any] | None:
    """The body of a 503 when `exc` means the database cannot answer now (an outage, which
    the app's DatabaseHealth hears of, or a conflict that outlasted its retries); else None."""
    if is_outage(exc):
        state.health.failed(exc)
        message = "the database is unavailable; try again shortly"
    elif isinstance(exc, ServiceUnavailable):
        message = exc.message
    else:
        return None
    return _error_body(message, ServiceUnavailable.code)


UNAVAILABLE_HEADERS = {"Retry-After": str(RETRY_AFTER)}


def refused_status(media_type: str) -> int:
    """A request refused before execution: 400 for GraphQL-over-HTTP clients, else 200."""
    return 400 if media_type == GRAPHQL_RESPONSE else 200


# -- compiled POSTs, straight from the ASGI messages ---------------------------------------

class CompiledFront:
    """Answers `POST <path>` requests whose document has a compiled plan (queries and
    append mutations); passes everything else on to `app` unchanged."""

    def __init__(self, app: ASGIApp, *, fast: FastPath, settings: Settings, state: State,
                 path: str = "/graphql") -> None:
        self.app, self.fast, self.state, self.path = app, fast, state, path
        self.max_body = settings.max_body_bytes
        # what MetricsMiddleware would record: the usual answer's timer, resolved once
        self._timer = REQUESTS.labels("POST", path, "200")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] != scope.get("root_path", "") + self.path):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        length = accept = position = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"accept":
                accept = value
            elif name == b"content-type":
                content_type = value
            elif name == POSITION_KEY:
                position = value
        # the app answers (and refuses) anything unusual: no declared length, too big, not JSON
        if (length is None or not length.isdigit() or int(length) > self.max_body
                or content_type.split(b";")[0].strip().decode("latin-1").lower() not in JSON_BODIES):
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client went away
            return
        media_type = negotiate(accept.decode("latin-1") if accept else "")
        try:
            answer = await self._answer(body, scope, position)
        except REFUSALS as exc:
            status, refused, headers = refusal(exc, refused_status(media_type))
            note(scope, code=exc.code)
            await _send_json(send, status, media_type, refused, headers)
            REQUESTS.labels("POST", self.path, str(status)).observe(time.perf_counter() - started)
            return
        except Exception as exc:
            outage = unavailable(exc, self.state)
            if outage is None:
                raise
            note(scope, code=ServiceUnavailable.code)
            await _send_json(send, 503, media_type, orjson.dumps(outage), UNAVAILABLE_HEADERS)
            return
        if answer is None:
            scope[COMPILED_TRIED] = True
            await self.app(scope, _replay(body, receive), send)
            return
        if isinstance(answer, Refused):
            status, body, headers = refused_status(media_type), answer.body, None
        else:
            status, body, headers = 200, answer.body, answer.headers
        note_errors(scope, body)
        await _send_json(send, status, media_type, body, headers)
        timer = self._timer if status == 200 else REQUESTS.labels("POST", self.path, str(status))
        timer.observe(time.perf_counter() - started)

    async def _answer(self, body: bytes, scope: Scope,
                      position: bytes | None) -> Answered | Refused | None:
        try:
            params = params_of_body(body, self.state.gate.documents)
            token = token_of(position)
        except (BadRequest, PersistedQueryNotFound):  # the endpoint refuses it, with its message
            return None
        identity = scope.get(IDENTITY, NOBODY)
        note_operation(scope, params[0], params[2])
        annotate_operation(scope, params[0], params[2])
        await self.state.gate.admit(*params, identity, client_of(scope))
        scope[ADMITTED] = True
        answer = await answer_compiled(self.fast, self.state, params, mutations=True,
                                       identity=identity, token=token)
        if answer is not None:
            annotate(scope, graphql__executor="compiled")
        return answer


async def _send_json(send: Send, status: int, media_type: str, body: bytes,
                     headers: dict[str, str] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", f"{media_type}; charset=utf-8".encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in (headers or {}).items())]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes | None:
    """A request's whole body from its ASGI messages; None when the client went away."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app: the body already read, then the client's later messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
        return message

    return replay


# -- everything else: the starlette endpoint and the resolvers -----------------------------

def _replica_failure(errors: list[Any] | None, route: Route,
                     context: Context) -> BaseException | None:
    """The database error a read on a replica failed with (None: it did not, or it wrote)."""
    if route.replica is None or context.wrote:
        return None
    for error in errors or []:
        if isinstance(error.original_error, DATABASE_ERRORS):
            return error.original_error
    return None


def codes_of(errors: list[Any]) -> set[str | None]:
    return {(e.extensions or {}).get("code") for e in errors}


def _response(body: dict[str, Any], status: int, media_type: str,
              headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type=f"{media_type}; charset=utf-8")


def _error_body(message: str, code: str = BadRequest.code) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def graphql_endpoint(
    schema: Schema,
    settings: Settings,
    context: Callable[[Request, Pool], Context],
    ide: Callable[[Request], Response] | None,
    fast: FastPath | None,
) -> Callable[[Request], Awaitable[Response]]:
    """The `/graphql` HTTP handler; `fast` learns the documents it answers without errors."""

    async def endpoint(request: Request) -> Response:
        response = await answer(request)
        body = getattr(response, "body", None)  # GraphiQL's page is a file
        if isinstance(body, bytes):
            note_errors(request.scope, body)
        return response

    async def answer(request: Request) -> Response:
        media_type = negotiate(request.headers.get("accept", ""))
        reading = request.method in ("GET", "HEAD")  # HEAD: GET's answer without its body
        if (reading and ide is not None and "query" not in request.query_params
                and "documentId" not in request.query_params
                and "text/html" in request.headers.get("accept", "")):
            return ide(request)
        gate = request.app.state.gate
        try:
            params = await read_params(request, settings, gate.documents)
            token = token_of(request.headers.get(POSITION_HEADER))
            note_operation(request.scope, params[0], params[2])
            annotate_operation(request.scope, params[0], params[2])
            if not request.scope.get(ADMITTED):
                await gate.admit(*params, request.scope.get(IDENTITY, NOBODY),
                                 client_of(request.scope))
        except BadRequest as exc:
            return _response(_error_body(exc.message), exc.status, media_type, exc.headers)
        except REFUSALS as exc:
            status, body, headers = refusal(exc, refused_status(media_type))
            return Response(body, status, headers, media_type=f"{media_type}; charset=utf-8")
        try:
            async with asyncio.timeout(settings.request_timeout):
                return await run(request, params, media_type, reading, token)
        except TimeoutError:
            return _response(_error_body("the request took longer than its time budget; ask for "
                                         "less", RequestTimeout.code), 503, media_type)

    async def run(request: Request, params: Params, media_type: str, reading: bool,
                  token: int | None) -> Response:
        state = request.app.state
        try:
            answer = (None if request.scope.get(COMPILED_TRIED) else
                      await answer_compiled(fast, state, params, mutations=not reading,
                                            identity=request.scope.get(IDENTITY, NOBODY),
                                            token=token))
            route = await route_read(state, token) if answer is None else primary_route(state)
        except Exception as exc:
            refusal = unavailable(exc, state)
            if refusal is None:
                raise
            return _response(refusal, 503, media_type, UNAVAILABLE_HEADERS)
        annotate(request.scope, graphql__executor="resolvers" if answer is None else "compiled")
        if isinstance(answer, Refused):
            return Response(answer.body, refused_status(media_type),
                            media_type=f"{media_type}; charset=utf-8")
        if answer is not None:
            return Response(answer.body, 200, answer.headers,
                            media_type=f"{media_type}; charset=utf-8")
        query, variables, operation = params
        allowed = ({OperationType.QUERY} if reading
                   else {OperationType.QUERY, OperationType.MUTATION})
        try:
            operation_context = context(request, route.pool)
            result = await schema.execute(query, variables, operation_context,
                                          operation_name=operation,
                                          allowed_operation_types=allowed)
            failure = _replica_failure(result.errors, route, operation_context)
            if failure is not None:  # the replica failed the read: the primary answers it
                route = _off_replica(state, route, failure)
                operation_context = context(request, route.pool)
                result = await schema.execute(query, variables, operation_context,
                                              operation_name=operation,
                                              allowed_operation_types=allowed)
        except CannotGetOperationTypeError:
            missing = (f"the document has no operation named {operation!r}" if operation
                       else "the document has no operation")
            return _response(_error_body(missing), 400, media_type)
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.SUBSCRIPTION:
                return _response(_error_body("subscriptions run over WebSocket at /graphql"),
                                 405 if reading else 400, media_type, {"Allow": "POST"})
            return _response(_error_body("mutations must be sent with POST"),
                             405, media_type, {"Allow": "POST"})
        except MissingQueryError:
            return _response(_error_body("no GraphQL query"), 400, media_type)
        body: dict[str, Any] = {}
        for error in result.errors or []:
            if is_outage(error.original_error):  # logged once per outage, not per request
                request.app.state.health.failed(error.original_error)
                break
        errors = [client_error(e) for e in result.errors or []]  # coded ones pass unchanged
        # errors before execution (parse, validation, variables) have no path and no data
        refused = bool(errors) and result.data is None and all(e.path is None for e in errors)
        if errors:
            body["errors"] = [e.formatted for e in errors]
        if not refused:
            body["data"] = result.data
        status = refused_status(media_type) if refused else 200
        if result.extensions:
            body["extensions"] = result.extensions
        if ServiceUnavailable.code in codes_of(errors):  # the database, not the request
            return _response(body, 503, media_type, UNAVAILABLE_HEADERS)
        if fast is not None and not errors:
            fast.remember(query, operation)
        elif fast is not None and refused and codes_of(errors) == {"QUERY_TOO_COMPLEX"}:
            fast.remember_costly(query, operation)
        if operation_context.wrote:
            position, headers = await written(state)
            if position is not None:
                body["extensions"] = {**body.get("extensions", {}), "position": position}
        else:
            headers = served(route)
        return _response(body, status, media_type, headers)

    return endpoint
