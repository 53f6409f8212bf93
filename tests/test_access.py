"""Identity and access over real HTTP: tokens, the append grants, scoped reads, the actor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gql.catalogue import CATALOGUE
from gql.config import Settings
from gql.events import EventType, OrderStatus, Position
from gql.http.app import create_app
from gql.identity import Identity
from gql.schema import build_schema
from gql.schema.mutations import APPEND_MUTATIONS
from gql.schema.node import node_id
from gql.store.connection import APP_ROLE, as_role
from tests import factories
from tests.equivalence import answer_both
from tests.factories import order_in, snapshot
from tests.ws import LEGACY, ORDER_EVENTS, STATUS_CHANGED, TRANSPORT
from tests.ws import client as ws_client

ISSUER, AUDIENCE = "https://id.example.test", "ordergraph"
MUTATION_OF = {t: name for name, t in APPEND_MUTATIONS.items()}
# where each event type may follow (the declared state machine), for the grants matrix
FROM = {t: next(iter(factories.ALLOWED[t])) for t in EventType}


class Keys:
    """An RSA key set the test controls, published as a JWKS file."""

    def __init__(self, path: Path) -> None:
        self.path, self.private = path, {}
        self.rotate("k1")

    def rotate(self, kid: str) -> None:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keys = []
        for name, key in self.private.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": name, "alg": "RS256", "use": "sig"})
        self.path.write_text(json.dumps({"keys": keys}))

    def token(self, ttl: float = 300, kid: str = "k1", **claims: Any) -> str:
        now = time.time()
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": int(now), "exp": now + ttl, **claims}
        return jwt.encode(body, self.private[kid], algorithm="RS256", headers={"kid": kid})

    def public_pem(self, kid: str = "k1") -> bytes:
        return self.private[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def auth_settings(database_url: str, keys: Keys, **more: Any) -> Settings:
    return Settings(database_url=database_url, jwks=str(keys.path), jwt_issuer=ISSUER,
                    jwt_audience=AUDIENCE, jwt_leeway=1.0, **more)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
async def http(database_url: str, pool: asyncpg.Pool, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """The app, connected as the server's role (the database enforces the grants for it)."""
    from gql.store.connection import create_pool

    app_pool = await create_pool(as_role(database_url, APP_ROLE), min_size=1, max_size=4)
    app = create_app(auth_settings(database_url, keys), pool=app_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client
    await app_pool.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(http: httpx.AsyncClient, token: str | None, query: str,
               **variables: Any) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables},
                           headers=bearer(token) if token else {})


def customer_token(keys: Keys, customer: uuid.UUID, **more: Any) -> str:
    return keys.token(role="customer", customer_id=str(customer), sub=f"user-{customer}", **more)


IDENTITIES = {  # name: claims
    "customer": None,  # filled per test with the order's own customer
    "payments": {"role": "service", "scope": "payments", "sub": "payments-svc"},
    "fulfilment": {"role": "service", "scope": "fulfilment", "sub": "warehouse"},
    "staff": {"role": "staff", "sub": "ann@shop"},
    "admin": {"role": "admin", "sub": "root"},
}


def input_for(event_type: EventType, order_id: uuid.UUID, customer: uuid.UUID) -> dict[str, Any]:
    data = {k: v for k, v in factories.payload_for(event_type, customer).items()}
    if CATALOGUE.event(event_type.value).starts_stream:
        data.pop("customerId")
        return {"orderId": str(uuid.uuid4()), "customerId": str(customer), **data}
    return {"orderId": str(order_id), **data}


async def test_append_matrix_follows_the_grants_data(http: httpx.AsyncClient, pool: asyncpg.Pool,
                                                     keys: Keys) -> None:
    """Every (role, event type) pair of append_grants, over HTTP: allowed ones append,
    the others are FORBIDDEN and leave the log and the read model unchanged."""
    grants = {(g["role"], g["scope"], g["event_type"]) for g in
              await pool.fetch("select role, scope, event_type from append_grants")}
    customer = await factories.customer(pool)
    checked = 0
    for name, claims in IDENTITIES.items():
        claims = claims or {"role": "customer", "customer_id": str(customer), "sub": "u1"}
        token = keys.token(**claims)
        for event_type in EventType:
            status = FROM[event_type]
            order_id = (await factories.order_for(pool, event_type, status, customer)
                        if status else uuid.uuid4())
            before = await snapshot(pool)
            query = (f"mutation($input: {MUTATION_OF[event_type][0].upper()}"
                     f"{MUTATION_OF[event_type][1:]}Input!) {{ {MUTATION_OF[event_type]}"
                     "(input: $input) { event { type actor { type id } } } }")
            body = (await post(http, token, query,
                               input=input_for(event_type, order_id, customer))).json()
            allowed = (claims["role"], claims.get("scope", ""), event_type.value) in grants
            if allowed:
                assert "errors" not in body, (name, event_type, body)
            else:
                assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (name, event_type, body)
                assert await snapshot(pool) == before
            checked += 1
    assert checked == len(IDENTITIES) * len(EventType)


async def test_database_refuses_appends_the_grants_do_not_allow(database_url: str,
                                                                pool: asyncpg.Pool) -> None:
    """As the server's role, bypassing the GraphQL layer: the append function and a plain
    INSERT are checked against the same grants."""
    order_id = await order_in(pool, OrderStatus.PAID)
    before = await snapshot(pool)
    conn = await asyncpg.connect(as_role(database_url, APP_ROLE))
    try:
        with pytest.raises(asyncpg.PostgresError) as refused:
            await conn.execute(
                "select og_append($1, $2, 'OrderShipped', $3::jsonb, null, null, null, null, "
                "'customer', 'u', 1, 'customer', '', $4, 'u')", uuid.uuid4(), order_id,
                json.dumps({"carrier": "DHL", "trackingNumber": "T"}), uuid.uuid4())
        assert refused.value.constraint_name == "order_not_found"  # not its order: unknown
        with pytest.raises(asyncpg.PostgresError) as unclaimed:
            await conn.execute(
                "insert into order_events (event_id, order_id, event_type, payload) "
                "values ($1, $2, 'OrderCancelled', '{\"reason\": \"x\"}')", uuid.uuid4(), order_id)
        assert unclaimed.value.constraint_name == "forbidden"
    finally:
        await conn.close()
    assert await snapshot(pool) == before


async def test_customer_cancels_its_order_only_while_placed(http: httpx.AsyncClient,
                                                            pool: asyncpg.Pool, keys: Keys) -> None:
    customer = await factories.customer(pool)
    paid = await order_in(pool, OrderStatus.PAID, customer)
    before = await snapshot(pool)
    query = "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { order { status } } }"
    body = (await post(http, customer_token(keys, customer), query,
                       input={"orderId": str(paid), "reason": "no"})).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await snapshot(pool) == before


async def test_another_customers_order_is_answered_as_an_unknown_one(
        http: httpx.AsyncClient, pool: asyncpg.Pool, keys: Keys) -> None:
    a, b = await factories.customer(pool), await factories.customer(pool)
    order_a = await order_in(pool, OrderStatus.PLACED, a)
    token_b = customer_token(keys, b)
    before = await snapshot(pool)
    query = ("mutation($input: AddItemToOrderInput!) { addItemToOrder(input: $input) "
             "{ order { id } } }")
    item = {"sku": "X", "quantity": 1, "unitPrice": "1.00"}
    theirs = (await post(http, token_b, query, input={"orderId": str(order_a), **item})).json()
    unknown = (await post(http, token_b, query, input={"orderId": str(uuid.uuid4()), **item})).json()
    assert theirs["errors"][0]["extensions"]["code"] == "ORDER_NOT_FOUND"
    assert unknown["errors"][0]["extensions"]["code"] == "ORDER_NOT_FOUND"
    placed = await post(http, token_b, "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) "
                        "{ order { id } } }", input={"customerId": str(a), "currency": "EUR"})
    assert placed.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await snapshot(pool) == before
    for read in (f'{{ order(id: "{order_a}") {{ id }} }}', f'{{ customer(id: "{a}") {{ id }} }}'):
        for _ in range(2):  # the second answer comes from the compiled path
            body = (await post(http, token_b, read)).json()
            assert body == {"data": {read.split("(")[0].strip("{ "): None}}


async def test_the_actor_comes_from_the_token(http: httpx.AsyncClient, pool: asyncpg.Pool,
                                             keys: Keys) -> None:
    customer = await factories.customer(pool)
    token = customer_token(keys, customer)
    query = ("mutation($input: PlaceOrderInput!) { placeOrder(input: $input) "
             "{ event { actor { type id } } } }")
    base = {"customerId": str(customer), "currency": "EUR"}
    before = await snapshot(pool)
    forged = (await post(http, token, query,
                         input={**base, "actor": {"type": "staff", "id": "boss"}})).json()
    assert forged["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await snapshot(pool) == before
    own = (await post(http, token, query, input=base)).json()
    assert own["data"]["placeOrder"]["event"]["actor"] == {"type": "customer",
                                                           "id": f"user-{customer}"}
    order_id = await order_in(pool, OrderStatus.PLACED, customer)
    on_behalf = (await post(http, keys.token(**IDENTITIES["payments"]),
                            "mutation($input: AuthorizePaymentInput!) { authorizePayment(input: $input) "
                            "{ event { actor { type id } } } }",
                            input={**input_for(EventType.PAYMENT_AUTHORIZED, order_id, customer),
                                   "actor": {"type": "customer", "id": "u-7"}})).json()
    assert on_behalf["data"]["authorizePayment"]["event"]["actor"] == {"type": "customer",
                                                                       "id": "u-7"}


READS = {
    "order": '{ order(id: "%(order)s") { id status customer { id email } '
             'events { nodes { id type } } stateAt(version: 1) { status totalAmount } } }',
    "orders": "{ orders(first: 50) { nodes { id customer { id } } pageInfo { hasNextPage } } }",
    "orders_filtered": '{ orders(customerId: "%(other)s") { nodes { id } } }',
    "customer": '{ customer(id: "%(customer)s") { id name orders { nodes { id } } } }',
    "event": '{ event(id: "%(event)s") { id orderId order { id } } }',
    "events": "{ events(first: 100) { nodes { id orderId } } }",
    "events_of_order": '{ events(orderId: "%(order)s") { nodes { id } } }',
    "node": '{ node(nodeId: "%(order_node)s") { nodeId ... on Order { id customer { id } } } }',
    "nodes": '{ nodes(nodeIds: ["%(order_node)s", "%(customer_node)s"]) { nodeId '
             '... on Order { id } ... on Customer { id } } }',
    "counts": "{ orders { totalCount } events { totalCount } orderStatistics { count "
              "byCurrency { currency count totalAmount } } }",
}


async def test_reads_are_scoped_alike_on_both_executors(pool: asyncpg.Pool, settings: Settings) -> None:
    """Customer A and B on every root: each sees its own rows only, another customer's are
    answered as unknown ones, and the compiled path answers exactly as the resolvers."""
    schema = build_schema(settings)
    a, b = await factories.customer(pool), await factories.customer(pool)
    order_a, order_b = (await order_in(pool, OrderStatus.PAID, a),
                        await order_in(pool, OrderStatus.PLACED, b))
    event_a = await pool.fetchval("select event_id from order_events where order_id = $1 "
                                  "and stream_version = 1", order_a)
    who = {a: Identity("customer", "a", customer_id=a), b: Identity("customer", "b", customer_id=b)}
    staff = Identity("staff", "s")
    for name, template in READS.items():
        own = template % {"order": order_a, "customer": a, "event": event_a, "other": b,
                          "order_node": node_id("Order", order_a),
                          "customer_node": node_id("Customer", a)}
        answers = {k: await answer_both(schema, pool, settings, own, identity=i)
                   for k, i in (("a", who[a]), ("b", who[b]), ("staff", staff))}
        for key, answer in answers.items():
            assert answer.compiled is not None, (name, key, answer.reason)
            assert answer.compiled == answer.resolvers["data"], (name, key)
        text_a, text_b = json.dumps(answers["a"].compiled), json.dumps(answers["b"].compiled)
        assert str(order_b) not in text_a and str(b) not in text_a, name
        assert str(order_a) not in text_b and str(a) not in text_b, name
        if name == "counts":  # each customer counts its own order and its events only
            assert answers["a"].compiled["orders"]["totalCount"] == 1
            assert answers["a"].compiled["events"]["totalCount"] == 3
            assert answers["b"].compiled["orderStatistics"]["count"] == 1
            assert answers["staff"].compiled["orders"]["totalCount"] == 2
        if name in ("order", "customer", "event", "events_of_order", "node", "nodes"):  # A's own
            assert answers["a"].compiled == answers["staff"].compiled, name
            assert str(order_a) in text_a or str(a) in text_a or name == "events_of_order"
    unknown = READS["order"] % {"order": uuid.uuid4()}
    assert (await answer_both(schema, pool, settings, unknown, identity=who[b])).resolvers == \
        (await answer_both(schema, pool, settings, READS["order"] % {"order": order_a},
                           identity=who[b])).resolvers


BAD = {
    "missing": lambda keys: None,
    "expired": lambda keys: keys.token(ttl=-60, role="staff"),
    "alg none": lambda keys: jwt.encode({"role": "admin", "exp": time.time() + 60, "iss": ISSUER,
                                         "aud": AUDIENCE}, None, algorithm="none",
                                        headers={"kid": "k1"}),
    "wrong aud": lambda keys: keys.token(role="staff", aud="someone-else"),
    "wrong iss": lambda keys: keys.token(role="staff", iss="https://evil.test"),
    "unknown kid": lambda keys: jwt.encode({"role": "admin", "exp": time.time() + 60}, "x" * 32,
                                           algorithm="HS256", headers={"kid": "nope"}),
    "HS256 with the public key": lambda keys: _hmac_with(keys.public_pem(), {
        "role": "admin", "exp": time.time() + 60, "iss": ISSUER, "aud": AUDIENCE}),
    "no exp": lambda keys: keys.token(role="staff", exp=None),
    "garbage": lambda keys: "not.a.jwt",
}


def _hmac_with(secret: bytes, claims: dict[str, Any]) -> str:
    """A token "signed" with the public key as an HMAC secret (PyJWT refuses to make one)."""
    import base64
    import hashlib
    import hmac

    def part(value: Any) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing = part({"alg": "HS256", "typ": "JWT", "kid": "k1"}) + b"." + part(claims)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing, hashlib.sha256).digest())
    return (signing + b"." + signature.rstrip(b"=")).decode()


@pytest.mark.parametrize("kind", list(BAD))
async def test_bad_tokens_are_refused_over_http(http: httpx.AsyncClient, pool: asyncpg.Pool,
                                               keys: Keys, kind: str) -> None:
    token = BAD[kind](keys)
    before = await snapshot(pool)
    response = await post(http, token, "mutation($input: RegisterCustomerInput!) "
                          "{ registerCustomer(input: $input) { id } }",
                          input={"name": "Eve", "email": "eve@example.com"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await pool.fetchval("select count(*) from customers where name = 'Eve'") == 0
    assert await snapshot(pool) == before


async def test_a_rotated_jwks_key_is_accepted_without_restart(http: httpx.AsyncClient,
                                                              keys: Keys) -> None:
    query = "{ orders(first: 1) { nodes { id } } }"
    assert (await post(http, keys.token(role="staff"), query)).status_code == 200
    kid = f"k-{uuid.uuid4().hex[:6]}"
    keys.rotate(kid)
    response = await post(http, keys.token(kid=kid, role="staff"), query)
    assert response.status_code == 200, response.text


async def test_open_mode_serves_loopback_clients_only(settings: Settings, pool: asyncpg.Pool) -> None:
    app = create_app(settings, pool=pool)
    query = {"query": "{ orders(first: 1) { nodes { id } } }"}
    for client, status in ((("127.0.0.1", 5000), 200), (("192.0.2.7", 5000), 401)):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            assert (await http.post("/graphql", json=query)).status_code == status


def test_serve_refuses_an_open_server_on_every_address(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gql", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "ORDERGRAPH_DATA_DIR": str(tmp_path / "pg")})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--insecure-open" in lines[0], done.stderr
    assert not (tmp_path / "pg").exists()  # refused before any database started


async def test_metrics_can_need_a_token(database_url: str, pool: asyncpg.Pool, keys: Keys) -> None:
    app = create_app(auth_settings(database_url, keys, metrics_token="s3cret"), pool=pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers=bearer("s3cret"))).status_code == 200


async def test_dev_tokens_are_trusted_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      database_url: str, pool: asyncpg.Pool) -> None:
    monkeypatch.setenv("ORDERGRAPH_DATA_DIR", str(tmp_path / "pg"))
    customer = await factories.customer(pool)
    minted = (await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "gql", "token", "--role", "customer",
                         "--customer", str(customer), "--ttl", "5m"],
        capture_output=True, text=True, timeout=60, check=True)).stdout.strip()
    query = {"query": f'{{ customer(id: "{customer}") {{ id }} }}'}
    for trusted, status in ((True, 200), (False, 401)):
        settings = Settings(database_url=database_url, trust_dev_key=trusted,
                            jwt_secret="" if trusted else "another-secret-of-32-bytes-length")
        app = create_app(settings, pool=pool)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://localhost") as http:
            response = await http.post("/graphql", json=query, headers=bearer(minted))
            assert response.status_code == status, response.text
            if trusted:
                assert response.json()["data"]["customer"]["id"] == str(customer)



# -- WebSocket --------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _auth_server(database_url: str, keys: Keys, **more: Any) -> AsyncIterator[str]:
    """A real uvicorn server requiring tokens; yields its WebSocket URL."""
    from tests.conftest import _run_server

    server, thread, url = await asyncio.to_thread(
        _run_server, auth_settings(as_role(database_url, APP_ROLE), keys, **more))
    try:
        yield url.replace("http://", "ws://") + "/graphql"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


@pytest.fixture
async def auth_server(database_url: str, keys: Keys) -> AsyncIterator[str]:
    async with _auth_server(database_url, keys) as url:
        yield url


async def _close_code(url: str, protocol: str, payload: dict[str, Any]) -> int | None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(url, subprotocols=[protocol], open_timeout=10) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_bad_tokens_close_the_socket_with_4403(auth_server: str, keys: Keys,
                                                     protocol: str) -> None:
    for kind, make in BAD.items():
        token = make(keys)
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        assert await _close_code(auth_server, protocol, payload) == 4403, kind


async def test_legacy_operations_need_an_admitted_connection(auth_server: str) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async with connect(auth_server, subprotocols=[LEGACY], open_timeout=10) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": ORDER_EVENTS}}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_subscriptions_deliver_a_customers_own_events_only(
        database_url: str, pool: asyncpg.Pool, keys: Keys, compiled: bool) -> None:
    a, b = await factories.customer(pool), await factories.customer(pool)
    async with _auth_server(database_url, keys, compiled_reads=compiled) as url:
        for protocol in (TRANSPORT, LEGACY):
            async with ws_client(url, protocol, {"token": customer_token(keys, b)}) as ws:
                await ws.subscribe(ORDER_EVENTS, "events")
                await ws.subscribe(STATUS_CHANGED, "status")
                await asyncio.sleep(0.3)  # subscribed before the appends
                await order_in(pool, OrderStatus.PAID, a)  # A's: never delivered to B
                order_b = await order_in(pool, OrderStatus.PAYMENT_AUTHORIZED, b)
                events = await ws.collect(2, "events")
                changes = await ws.collect(2, "status")
            assert {e["orderEvents"]["orderId"] for e in events} == {str(order_b)}
            assert {c["orderStatusChanged"]["order"]["id"] for c in changes} == {str(order_b)}
            assert [c["orderStatusChanged"]["status"] for c in changes] == [
                "PLACED", "PAYMENT_AUTHORIZED"]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_a_customers_replay_holds_its_own_events_only(
        database_url: str, pool: asyncpg.Pool, keys: Keys, compiled: bool) -> None:
    a, b = await factories.customer(pool), await factories.customer(pool)
    await order_in(pool, OrderStatus.PAID, a)
    order_b = await order_in(pool, OrderStatus.PLACED, b)
    async with _auth_server(database_url, keys, compiled_reads=compiled) as url, \
            ws_client(url, TRANSPORT, {"token": customer_token(keys, b)}) as ws:
        await ws.subscribe(ORDER_EVENTS, "events", after="0" * 16 + "-" + "0" * 16)
        [replayed] = await ws.collect(1, "events")
        await order_in(pool, OrderStatus.PLACED, a)
        await factories.append(pool, order_b, EventType.ITEM_ADDED_TO_ORDER,
                               factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))
        [live] = await ws.collect(1, "events")
    assert replayed["orderEvents"]["orderId"] == live["orderEvents"]["orderId"] == str(order_b)
    assert [replayed["orderEvents"]["streamVersion"], live["orderEvents"]["streamVersion"]] == [1, 2]


async def test_a_socket_closes_at_exp_and_a_new_token_resumes_without_loss(
        auth_server: str, pool: asyncpg.Pool, keys: Keys) -> None:
    """A token valid for 3 s: the server closes with 4403 within leeway (1 s) + 1 s of its
    exp; reconnecting with a fresh token from the last position misses nothing."""
    order_id = await order_in(pool, OrderStatus.PLACED)
    seen: list[str] = []
    from websockets.exceptions import ConnectionClosed

    expires = time.time() + 3
    async with ws_client(auth_server, TRANSPORT, {"Authorization": "Bearer " + keys.token(
            ttl=3, role="staff")}) as ws:
        await ws.subscribe(ORDER_EVENTS, "1", orderId=str(order_id), after="0" * 16 + "-" + "0" * 16)
        seen += [e["orderEvents"]["globalPosition"] for e in await ws.collect(1)]
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    seen.append((await ws.data(within=10))["orderEvents"]["globalPosition"])
                    await factories.append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                           factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))
    closed_at = time.time()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert expires <= closed_at <= expires + 1.0 + 1.0 + 0.5  # leeway + 1 s (+ scheduling)
    for _ in range(3):  # appended while no socket was open
        await factories.append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                               factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))
    total = await pool.fetchval("select count(*) from order_events where order_id = $1", order_id)
    async with ws_client(auth_server, TRANSPORT,
                         {"Authorization": "Bearer " + keys.token(role="staff")}) as ws:
        await ws.subscribe(ORDER_EVENTS, "1", orderId=str(order_id), after=seen[-1])
        seen += [e["orderEvents"]["globalPosition"] for e in await ws.collect(total - len(seen))]
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen)


ROOT = Path(__file__).resolve().parent.parent
GRAPHQL_WS = ROOT / "web" / "node_modules" / "graphql-ws" / "dist" / "client.js"


def _node() -> list[str]:
    """node, with the WebSocket global that Node 20 keeps behind a flag (22 has it built in)."""
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    return ["node", "--experimental-websocket"] if major < 22 else ["node"]


async def test_the_graphql_ws_client_reconnects_at_exp_and_resumes_without_loss(
        auth_server: str, pool: asyncpg.Pool, keys: Keys) -> None:
    """The npm graphql-ws client, as a front-end runs it: its socket is closed with 4403 when
    the first token expires, it reconnects with the next token and, resubscribing from the
    last globalPosition it saw, receives every event of the order once and in order."""
    if not GRAPHQL_WS.exists():
        pytest.fail("the web app's node modules are missing: run `npm --prefix web ci`")
    order_id = await order_in(pool, OrderStatus.PLACED)
    expires = time.time() + 3
    short, fresh = keys.token(ttl=3, role="staff"), keys.token(role="staff")
    node = await asyncio.create_subprocess_exec(
        *_node(), str(ROOT / "tests" / "clients" / "follow.mjs"), str(GRAPHQL_WS), auth_server,
        str(order_id), "0" * 16 + "-" + "0" * 16, short, fresh,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert node.stdout is not None
    lines: list[dict[str, Any]] = []
    closed_at: float | None = None

    async def follow() -> None:
        nonlocal closed_at
        assert node.stdout is not None
        while line := await node.stdout.readline():
            lines.append(json.loads(line))
            if lines[-1].get("closed") == 4403 and closed_at is None:
                closed_at = time.time()

    reader = asyncio.create_task(follow())
    try:
        async with asyncio.timeout(30):
            # appends while the first socket lives, across its close and on the new socket
            while not (closed_at and sum("connected" in line for line in lines) >= 2):
                await factories.append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                       factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))
                await asyncio.sleep(0.2)
            for _ in range(3):
                await factories.append(pool, order_id, EventType.ITEM_ADDED_TO_ORDER,
                                       factories.payload_for(EventType.ITEM_ADDED_TO_ORDER))
            logged = [Position(r["log_xid"], r["global_position"]).encode() for r in await pool.fetch(
                "select log_xid, global_position from order_events where order_id = $1 "
                "order by log_xid, global_position", order_id)]
            while [line["event"] for line in lines if "event" in line] != logged:
                assert len([line for line in lines if "event" in line]) <= len(logged), lines
                await asyncio.sleep(0.05)
    finally:
        node.kill()
        await node.wait()
        reader.cancel()
    assert not [line for line in lines if "error" in line or "errors" in line], lines
    assert closed_at is not None and expires <= closed_at <= expires + 1.0 + 1.0 + 0.5
    assert [line for line in lines if "connected" in line] == [{"connected": 1}, {"connected": 2}]
