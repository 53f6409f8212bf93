"""Forgetting a customer: its name and e-mail are sealed with its own key, and forgetCustomer
destroys the key. Every read path shows them erased afterwards, the tables hold no
plaintext, everything else is as it was, and only an admin may do it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gql.events import OrderStatus
from gql.http.app import create_app
from gql.identity import SYSTEM
from gql.schema import build_schema
from gql.store import personal
from gql.store.connection import APP_ROLE, as_role, create_pool
from gql.store.customers import forget_customer, load_customers, register_customer
from gql.store.migrations import migrate
from gql.store.projections import rebuild_projections
from tests import factories
from tests.equivalence import answer_both
from tests.factories import order_in, snapshot
from tests.test_access import IDENTITIES, Keys, auth_settings, customer_token, post
from tests.test_cli import run
from tests.test_migrations import _release_0_1
from tests.ws import client as ws_client
from tests.ws import subscriptions_gauge, until_subscribed

FORGET = "mutation($id: UUID!) { forgetCustomer(customerId: $id) { id name email forgottenAt } }"
CUSTOMER = 'query($id: UUID!) { customer(id: $id) { id name email forgottenAt } }'
ORDERS = """query($id: UUID!) { customer(id: $id) { orders(first: 50) { nodes {
    id status totalAmount authorizedAmount capturedAmount refundedAmount version
    customer { name email forgottenAt } stateAt(version: 2) { status totalAmount }
    events(first: 50) { nodes { type streamVersion payload } } } } } }"""
REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    id name email } }"""
# every column that could hold a copy of a value, in every table of the schema
COLUMNS = """
select c.table_name, c.column_name, c.data_type from information_schema.columns c
join information_schema.tables t using (table_schema, table_name)
where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
  and c.data_type in ('text', 'character varying', 'jsonb', 'json', 'bytea')
"""
EVERYTHING_BUT_THE_NEW_FACTS = """
select event_id, order_id, stream_version, event_type, payload from order_events
where event_type <> 'CustomerForgotten' order by global_position
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("jwks") / "jwks.json")


@pytest.fixture
async def http(database_url: str, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    """The app, connected as the server's role: the database enforces who may forget."""
    app_pool = await create_pool(as_role(database_url, APP_ROLE), min_size=1, max_size=4)
    app = create_app(auth_settings(database_url, keys), pool=app_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as client:
        yield client
    await app_pool.close()


def admin(keys: Keys) -> str:
    return keys.token(**IDENTITIES["admin"])


async def _registered(pool: asyncpg.Pool, name: str, email: str) -> uuid.UUID:
    customer_id = uuid.uuid4()
    await register_customer(pool, customer_id, name, email, SYSTEM.claims())
    return customer_id


async def _found_anywhere(pool: asyncpg.Pool, *plain: str) -> list[tuple[str, str]]:
    """The (table, column) pairs where any of `plain` is stored, as text or as bytes."""
    found = []
    for table, column, data_type in await pool.fetch(COLUMNS):
        for value in plain:
            if data_type == "bytea":
                sql = (f'select count(*) from "{table}" '
                       f'where position(convert_to($1, \'UTF8\') in "{column}") > 0')
            else:
                sql = f'select count(*) from "{table}" where strpos(lower("{column}"::text), lower($1)) > 0'
            if await pool.fetchval(sql, value):
                found.append((table, column))
    return found


async def _state(pool: asyncpg.Pool) -> tuple[Any, ...]:
    """Everything forgetting must leave alone: the read model but the stream's head (its
    version and last event, the new fact's), and the log but its new facts."""
    orders = await pool.fetch(
        "select order_id, customer_id, status, currency, total_amount, authorized_amount, "
        "captured_amount, refunded_amount, items, placed_at from orders_current order by order_id")
    events = await pool.fetch(EVERYTHING_BUT_THE_NEW_FACTS)
    return [tuple(r.values()) for r in orders], [tuple(r.values()) for r in events]


def _comparable(orders: dict[str, Any]) -> list[dict[str, Any]]:
    """An orders answer without what forgetting changes (the customer, the new facts and the
    stream's version they take), in id order (the new facts make the orders the latest)."""
    nodes = []
    for node in orders["customer"]["orders"]["nodes"]:
        events = [e for e in node["events"]["nodes"] if e["type"] != "CUSTOMER_FORGOTTEN"]
        nodes.append({**{k: v for k, v in node.items() if k not in ("customer", "events", "version")},
                      "events": events})
    return sorted(nodes, key=lambda n: n["id"])


# -- the cipher ---------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=200), other=st.uuids(), field=st.sampled_from(["name", "email"]))
def test_erasure_sealing_round_trips_any_text_and_binds_customer_and_field(
        name: str, other: uuid.UUID, field: str) -> None:
    customer_id, key = uuid.uuid4(), personal.new_key()
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate is not text a client can send
        return
    sealed = personal.seal(key, customer_id, field, name)
    if len(name.encode()) >= 8:  # a shorter string may occur in random bytes by chance
        assert name.encode() not in sealed
    assert personal.unseal(key, customer_id, field, sealed) == name
    wrong = "email" if field == "name" else "name"
    for args in ((key, other, field), (key, customer_id, wrong), (personal.new_key(), customer_id, field)):
        with pytest.raises(personal.InvalidTag):
            personal.unseal(args[0], args[1], args[2], sealed)


@given(local=st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=20))
def test_erasure_blind_index_ignores_case_and_depends_on_the_secret(local: str) -> None:
    secret = b"s" * 32
    email = f"{local}@Example.COM"
    assert personal.email_index(secret, email) == personal.email_index(secret, email.lower())
    assert personal.email_index(secret, email) != personal.email_index(b"t" * 32, email)


# -- forgetting ----------------------------------------------------------------------------
async def test_erasure_forgotten_customer_is_erased_on_every_read_path(
        http: httpx.AsyncClient, pool: asyncpg.Pool, keys: Keys, database_url: str,
        tmp_path: Path) -> None:
    name, email = "Zoë Quintessa-Ørsted", "zoe.quintessa@example.org"
    customer_id = await _registered(pool, name, email)
    for status in (OrderStatus.PLACED, OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.CANCELLED):
        await order_in(pool, status, customer_id)
    await order_in(pool, OrderStatus.PAID)  # another customer's order is left alone
    token = admin(keys)
    shown = (await post(http, token, CUSTOMER, id=str(customer_id))).json()["data"]["customer"]
    assert (shown["name"], shown["email"], shown["forgottenAt"]) == (name, email, None)
    orders_before = (await post(http, token, ORDERS, id=str(customer_id))).json()["data"]
    state_before = await _state(pool)
    facts_before = await pool.fetchval("select count(*) from order_events")
    assert await _found_anywhere(pool, name, email) == []  # sealed from the start

    forgotten = (await post(http, token, FORGET, id=str(customer_id))).json()
    assert "errors" not in forgotten, forgotten
    erased = forgotten["data"]["forgetCustomer"]
    assert (erased["name"], erased["email"]) == (personal.ERASED, personal.ERASED)
    assert erased["forgottenAt"] is not None

    # the customer, its orders' customer, and the orders themselves
    shown = (await post(http, token, CUSTOMER, id=str(customer_id))).json()["data"]["customer"]
    assert (shown["name"], shown["email"]) == (personal.ERASED, personal.ERASED)
    orders_after = (await post(http, token, ORDERS, id=str(customer_id))).json()["data"]
    assert _comparable(orders_after) == _comparable(orders_before)
    for node in orders_after["customer"]["orders"]["nodes"]:
        assert node["customer"]["name"] == personal.ERASED
        assert [e["type"] for e in node["events"]["nodes"]][-1] == "CUSTOMER_FORGOTTEN"
        assert node["events"]["nodes"][-1]["payload"] == {}
    # the log: one new fact per order, nothing else changed; the read model is its fold
    assert await pool.fetchval("select count(*) from order_events") == facts_before + 4
    assert await _state(pool) == state_before
    async with pool.acquire() as conn:
        assert (await rebuild_projections(conn)).changed_rows == 0
    # both executors answer alike, personal fields included
    config = auth_settings(database_url, keys)
    for document in ('{ customer(id: "%s") { id name email forgottenAt } }' % customer_id,
                     "{ orders(first: 50) { nodes { id customer { id name email forgottenAt } } } }"):
        answered = await answer_both(build_schema(config), pool, config, document)
        assert answered.compiled is not None, answered.reason
        assert answered.compiled == answered.resolvers["data"]
    # the tables, and an export
    assert await _found_anywhere(pool, name, email) == []
    assert await pool.fetchval("select count(*) from customer_keys where customer_id = $1",
                               customer_id) == 0
    result = run("export", "--database-url", database_url, "--output", str(tmp_path / "log.ndjson"))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "log.ndjson").read_text()
    assert name not in text and email not in text and "zoe" not in text.lower()
    lines = [orjson.loads(line) for line in text.splitlines()]
    placed = [line for line in lines if line["customer_id"] == str(customer_id)
              and line["event_type"] == "OrderPlaced"]
    assert placed and all(line["customer"]["name"] is None and line["customer"]["forgotten_at"]
                          for line in placed)


async def test_erasure_an_export_with_a_forgotten_customer_imports(
        pool: asyncpg.Pool, database_url: str, second_database_url: str, tmp_path: Path) -> None:
    kept = await _registered(pool, "Kept Kim", "kept.kim@example.org")
    gone = await _registered(pool, "Gone Gil", "gone.gil@example.org")
    for customer_id in (kept, gone):
        await order_in(pool, OrderStatus.PAID, customer_id)
    await forget_customer(pool, gone, SYSTEM.claims())
    assert run("export", "--database-url", database_url, "--output",
               str(tmp_path / "log.ndjson")).returncode == 0
    result = run("import", str(tmp_path / "log.ndjson"), "--database-url", second_database_url)
    assert result.returncode == 0, result.stderr
    other = await create_pool(second_database_url, min_size=1, max_size=2)
    try:
        shown = await load_customers(other, [kept, gone], None)
        assert [(c["name"], c["email"]) for c in shown if c] == [
            ("Kept Kim", "kept.kim@example.org"), (personal.ERASED, personal.ERASED)]
        assert shown[1] is not None and shown[1]["forgotten_at"] is not None
        assert await _found_anywhere(other, "Gone Gil", "gone.gil") == []
        assert (await _state(other)) == (await _state(pool))
    finally:
        await other.close()


@pytest.mark.parametrize("who", ["customer", "staff", "payments"])
async def test_erasure_only_an_admin_may_forget(http: httpx.AsyncClient, pool: asyncpg.Pool,
                                                keys: Keys, who: str) -> None:
    customer_id = await factories.customer(pool)
    await order_in(pool, OrderStatus.PAID, customer_id)
    token = (customer_token(keys, customer_id) if who == "customer"
             else keys.token(**IDENTITIES[who]))
    before = await snapshot(pool), await pool.fetch("select * from customers order by customer_id")
    refused = (await post(http, token, FORGET, id=str(customer_id))).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", refused
    after = await snapshot(pool), await pool.fetch("select * from customers order by customer_id")
    assert after == before
    assert await pool.fetchval("select count(*) from customer_keys where customer_id = $1",
                               customer_id) == 1


async def test_erasure_the_servers_role_cannot_destroy_a_key_by_sql(
        database_url: str, pool: asyncpg.Pool) -> None:
    customer_id = await factories.customer(pool)
    conn = await asyncpg.connect(as_role(database_url, APP_ROLE))
    try:
        for sql in ("delete from customer_keys where customer_id = $1",
                    "update customers set forgotten_at = now(), email_index = null "
                    "where customer_id = $1"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql, customer_id)
        with pytest.raises(asyncpg.PostgresError) as unclaimed:  # no claims: refused
            await conn.fetchval("select og_forget_customer($1)", customer_id)
        assert unclaimed.value.constraint_name == "forbidden"
    finally:
        await conn.close()
    assert await pool.fetchval("select count(*) from customer_keys where customer_id = $1",
                               customer_id) == 1


async def test_erasure_forgetting_twice_or_an_unknown_customer_is_a_client_error(
        http: httpx.AsyncClient, pool: asyncpg.Pool, keys: Keys) -> None:
    customer_id = await factories.customer(pool)
    token = admin(keys)
    assert "errors" not in (await post(http, token, FORGET, id=str(customer_id))).json()
    before = await snapshot(pool)
    again = (await post(http, token, FORGET, id=str(customer_id))).json()
    assert again["errors"][0]["extensions"] == {"code": "CUSTOMER_ALREADY_FORGOTTEN",
                                                "field": "customerId"}
    unknown = (await post(http, token, FORGET, id=str(uuid.uuid4()))).json()
    assert unknown["errors"][0]["extensions"] == {"code": "CUSTOMER_NOT_FOUND",
                                                  "field": "customerId"}
    assert await snapshot(pool) == before


async def test_erasure_a_forgotten_email_may_register_again(
        http: httpx.AsyncClient, pool: asyncpg.Pool, keys: Keys) -> None:
    token = admin(keys)
    first = await _registered(pool, "Ann Lee", "ann.lee@example.org")
    taken = (await post(http, token, REGISTER, input={"name": "Ann Other",
                                                      "email": "ANN.LEE@example.org"})).json()
    assert taken["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}
    await forget_customer(pool, first, SYSTEM.claims())
    again = (await post(http, token, REGISTER, input={"name": "Ann Lee",
                                                      "email": "ann.lee@example.org"})).json()
    assert "errors" not in again, again
    assert again["data"]["registerCustomer"]["email"] == "ann.lee@example.org"
    assert again["data"]["registerCustomer"]["id"] != str(first)
    # the forgotten customer's id stays forgotten: registering it again is refused
    reused = (await post(http, token, REGISTER, input={"customerId": str(first), "name": "Ann Lee",
                                                       "email": "ann.lee@example.org"})).json()
    assert reused["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_erasure_a_live_subscription_receives_the_fact_without_personal_data(
        live_server: Any) -> None:
    pool = await create_pool(live_server.database_url, min_size=1, max_size=2)
    try:
        customer_id = await _registered(pool, "Live Lou", "live.lou@example.org")
        order_id = await order_in(pool, OrderStatus.PAID, customer_id)
        query = """subscription($orderId: UUID) { orderEvents(orderId: $orderId) {
            type streamVersion payload order { status capturedAmount
            customer { name email forgottenAt } } } }"""
        baseline = await subscriptions_gauge(live_server.url)
        async with ws_client(live_server.ws_url) as ws:
            await ws.subscribe(query, "events", orderId=str(order_id))
            await until_subscribed(live_server.url, baseline + 1)
            async with httpx.AsyncClient(base_url=live_server.url) as http:
                response = await http.post("/graphql", json={
                    "query": FORGET, "variables": {"id": str(customer_id)}})
                assert "errors" not in response.json(), response.json()
            event = (await ws.data("events"))["orderEvents"]
    finally:
        await pool.close()
    assert event["type"] == "CUSTOMER_FORGOTTEN" and event["payload"] == {}
    assert event["order"]["status"] == "PAID"
    assert event["order"]["customer"]["name"] == personal.ERASED
    assert event["order"]["customer"]["email"] == personal.ERASED
    assert "Live Lou" not in json.dumps(event) and "live.lou" not in json.dumps(event)


async def test_erasure_migrate_seals_the_customers_of_an_older_release(
        empty_database_url: str) -> None:
    await _release_0_1(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        plain = {r["customer_id"]: (r["name"], r["email"])
                 for r in await conn.fetch("select customer_id, name, email from customers")}
        await migrate(conn)
        shown = await load_customers(conn, list(plain), None)
        assert {c["customer_id"]: (c["name"], c["email"]) for c in shown if c} == plain
        some_name, some_email = next(iter(plain.values()))
    finally:
        await conn.close()
    pool = await create_pool(empty_database_url, min_size=1, max_size=2)
    try:
        assert await _found_anywhere(pool, some_name, some_email) == []
    finally:
        await pool.close()


async def test_erasure_the_longest_names_and_emails_fit_their_sealed_size(pool: asyncpg.Pool) -> None:
    """The database checks a sealed value's size: the longest valid details (200 and 320
    characters of four UTF-8 bytes each) fit it, a value that is not a sealed one does not."""
    name, email = "𝄞" * 200, "𝄞" * 310 + "@x.example"  # 320 characters
    customer_id = await _registered(pool, name, email)
    [shown] = await load_customers(pool, [customer_id], None)
    assert shown is not None and (shown["name"], shown["email"]) == (name, email)
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("insert into customers (customer_id, name, email, email_index) "
                           "values ($1, 'Eve', 'eve@example.org', $2)", uuid.uuid4(), b"i" * 32)


async def test_erasure_the_command_line_forgets_again_after_a_restore(
        pool: asyncpg.Pool, database_url: str) -> None:
    forgotten, kept = (await _registered(pool, "Rhea Restored", "rhea@example.org"),
                       await factories.customer(pool))
    await order_in(pool, OrderStatus.PLACED, forgotten)
    await forget_customer(pool, forgotten, SYSTEM.claims())
    again = run("forget-customers", str(forgotten), str(kept), "--database-url", database_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"{forgotten} was forgotten already", f"forgot {kept}"]
    assert await pool.fetchval("select count(*) from customer_keys where customer_id = any($1)",
                               [forgotten, kept]) == 0
    unknown = run("forget-customers", str(uuid.uuid4()), "--database-url", database_url)
    assert unknown.returncode == 1 and "no such customer" in unknown.stderr


_NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(
    lambda n: n.strip(" "))
_LOCALS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                blacklist_characters="@"), min_size=1, max_size=40)


def test_erasure_any_valid_details_read_back_until_forgotten(database_url: str) -> None:
    """Any name and e-mail a client may send (hypothesis: any Unicode, up to the limits)
    reads back as sent through the database, its row holds no trace of it, and forgetting
    erases it."""
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(database_url, min_size=1, max_size=2))

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(name=_NAMES, local=_LOCALS)
    def check(name: str, local: str) -> None:
        email = f"{local}@{uuid.uuid4().hex}.example"

        async def run() -> None:
            customer_id = await _registered(pool, name, email)
            [shown] = await load_customers(pool, [customer_id], None)
            assert shown is not None and (shown["name"], shown["email"]) == (name, email)
            row = await pool.fetchrow("select name, email from customers where customer_id = $1",
                                      customer_id)
            for plain in (name, email):
                if len(plain.encode()) >= 8:
                    assert plain.encode() not in row["name"] + row["email"]
            await forget_customer(pool, customer_id, SYSTEM.claims())
            [shown] = await load_customers(pool, [customer_id], None)
            assert shown is not None and shown["name"] == shown["email"] == personal.ERASED

        loop.run_until_complete(run())

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


async def test_erasure_an_import_refuses_a_line_whose_customer_details_are_invalid(
        pool: asyncpg.Pool, database_url: str, second_database_url: str, tmp_path: Path) -> None:
    """The details are checked before they are sealed (the database can no longer read
    them): a bad e-mail refuses its line only."""
    for n in range(2):
        await order_in(pool, OrderStatus.PLACED, await _registered(pool, f"Ok {n}", f"ok{n}@x.example"))
    assert run("export", "--database-url", database_url, "--output",
               str(tmp_path / "log.ndjson")).returncode == 0
    lines = [orjson.loads(line) for line in (tmp_path / "log.ndjson").read_bytes().splitlines()]
    bad = next(i for i, line in enumerate(lines) if line["event_type"] == "OrderPlaced")
    lines[bad]["customer"]["email"] = "not an address"
    (tmp_path / "bad.ndjson").write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    result = run("import", str(tmp_path / "bad.ndjson"), "--database-url", second_database_url)
    assert result.returncode == 1
    assert f"line {bad + 1}: BAD_USER_INPUT" in result.stdout + result.stderr
    assert "appended 1, deduplicated 0, refused 1" in result.stdout
