"""Rate limits per caller: 429 with Retry-After once a budget is spent, back after the window,
subscriptions counted when they start, and one count for a fleet that shares Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import coredis
import httpx
import jwt
from graphql import parse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from gql.config import Settings
from gql.errors import RateLimited
from gql.http.ratelimits import LEASE_SHARE, RateLimits
from gql.schema import build_schema
from gql.schema.cost import select_operation
from tests.conftest import serving
from tests.factories import customer, snapshot
from tests.processes import free_port, serve_process
from tests.ws import client

ROOT = Path(__file__).resolve().parents[1]
REDIS = os.environ.get("ORDERGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")  # scripts/test
PAGE = "{ orders(first: 10) { nodes { id } } }"
SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def _code(response: httpx.Response) -> str | None:
    errors = response.json().get("errors") or [{}]
    return errors[0].get("extensions", {}).get("code")


async def _post(http: httpx.AsyncClient, query: str = "{ __typename }",
                token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query}, headers=headers)


async def test_ratelimits_refuse_with_429_after_the_budget_and_recover_after_the_window(
        database_url: str) -> None:
    async with serving(database_url, rate_limit_requests="3 per 2 seconds") as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        answered = [await _post(http) for _ in range(3)]
        refused = await _post(http)
        await asyncio.sleep(int(refused.headers["Retry-After"]) + 0.2)
        recovered = await _post(http)
    assert [r.status_code for r in answered] == [200, 200, 200]
    assert refused.status_code == 429 and _code(refused) == "RATE_LIMITED"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    assert refused.json()["errors"][0]["extensions"]["retryAfter"] == int(refused.headers["Retry-After"])
    assert "data" not in refused.json()
    assert recovered.status_code == 200 and recovered.json() == {"data": {"__typename": "Query"}}


async def test_ratelimits_refused_mutation_appends_nothing(database_url: str, pool: asyncpg.Pool) -> None:
    customer_id = await customer(pool)
    place = {"query": "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } } }",
             "variables": {"input": {"customerId": str(customer_id), "currency": "EUR", "items": []}}}
    async with serving(database_url, rate_limit_requests="1 per 30 seconds") as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        first = await _post(http)
        before = await snapshot(pool)
        refused = await http.post("/graphql", json=place)
    assert first.status_code == 200
    assert refused.status_code == 429 and _code(refused) == "RATE_LIMITED"
    assert await snapshot(pool) == before


async def test_ratelimits_spend_the_estimated_cost(database_url: str) -> None:
    schema = build_schema()
    document = parse(PAGE)
    cost = schema.limits.cost.check(document, select_operation(document, None), {})
    async with serving(database_url, rate_limit_cost=f"{cost * 2} per 10 seconds") as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        answered = [await _post(http, PAGE) for _ in range(2)]
        refused = await _post(http, PAGE)
    assert [r.status_code for r in answered] == [200, 200]
    assert refused.status_code == 429 and _code(refused) == "RATE_LIMITED"


async def test_ratelimits_are_per_token_subject(database_url: str) -> None:
    def token(subject: str) -> str:
        return jwt.encode({"role": "staff", "sub": subject, "exp": int(time.time()) + 300},
                          SECRET, algorithm="HS256")

    ada, bob = token("ada"), token("bob")
    async with serving(database_url, jwt_secret=SECRET,
                       rate_limit_requests="2 per 10 seconds") as server, \
            httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        spent = [(await _post(http, token=ada)).status_code for _ in range(3)]
        other = await _post(http, token=bob)
    assert spent == [200, 200, 429]
    assert other.status_code == 200  # another subject has its own budget


async def test_ratelimits_count_subscriptions_when_they_start(database_url: str) -> None:
    subscription = "subscription { orderEvents { id } }"
    async with serving(database_url, rate_limit_requests="2 per 10 seconds") as server, \
            client(server.ws_url) as ws:
        for op in ("1", "2", "3"):
            await ws.subscribe(subscription, op=op)
        refused = await ws.message("3")
    assert refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert refused["payload"][0]["extensions"]["retryAfter"] >= 1


@contextlib.asynccontextmanager
async def _serve_process(database_url: str, env: dict[str, str]) -> AsyncIterator[str]:
    """`ordergraph serve` as its own process, with `env`; its base URL once it is ready."""
    port = free_port()
    async with serve_process(database_url, port, env):
        yield f"http://127.0.0.1:{port}"


async def test_ratelimits_two_servers_sharing_redis_share_the_count(database_url: str) -> None:
    env = {"ORDERGRAPH_RATE_LIMIT_REQUESTS": "4 per 30 seconds",
           "ORDERGRAPH_RATE_LIMIT_REDIS": REDIS,
           "ORDERGRAPH_RATE_LIMIT_PREFIX": f"ordergraph-test-{uuid.uuid4().hex}"}
    async with _serve_process(database_url, env) as first, _serve_process(database_url, env) as second, \
            httpx.AsyncClient(timeout=15) as http:
        statuses = []
        for base in (first, second, first, second, first, second):
            response = await http.post(f"{base}/graphql", json={"query": "{ __typename }"})
            statuses.append((response.status_code, _code(response) if response.status_code != 200
                             else None))
    # four requests in all, whichever server answered them; then both refuse
    assert statuses == [(200, None)] * 4 + [(429, "RATE_LIMITED")] * 2


async def _admitted(limits: RateLimits, caller: str, count: int) -> int:
    async def one() -> bool:
        try:
            await limits.charge(caller, 1)
        except RateLimited:
            return False
        return True

    return sum(await asyncio.gather(*(one() for _ in range(count))))


async def test_ratelimits_concurrent_requests_spend_the_budget_exactly() -> None:
    """Requests charged together admit as many as one at a time would."""
    for redis in ("", REDIS):
        limits = RateLimits(Settings(database_url="", rate_limit_requests="7 per 30 seconds",
                                     rate_limit_redis=redis,
                                     rate_limit_prefix=f"ordergraph-test-{uuid.uuid4().hex}"))
        assert await _admitted(limits, "address:10.0.0.1", 20) == 7, redis or "memory"
        assert await _admitted(limits, "address:10.0.0.2", 5) == 5, redis or "memory"


async def test_ratelimits_in_redis_keep_both_counters_with_their_windows() -> None:
    """One charge updates the request and the cost counter together (one script call), under
    the keys and expiries `limits` reads for Retry-After, and refuses on either budget."""
    prefix = f"ordergraph-test-{uuid.uuid4().hex}"
    limits = _redis_limits("5 per 30 seconds", prefix, "100 per 60 seconds")
    await asyncio.gather(*(limits.charge("subject:a", 30) for _ in range(3)))
    redis = coredis.Redis.from_url(REDIS, decode_responses=True)
    keys = sorted(await redis.keys(f"{prefix}:*"))
    assert len(keys) == 2
    values = {key.split("/")[1]: (int(await redis.get(key) or 0), await redis.ttl(key)) for key in keys}
    assert values["requests"][0] == 3 and 0 < values["requests"][1] <= 30
    assert values["cost"][0] == 90 and 30 < values["cost"][1] <= 60
    try:
        await limits.charge("subject:a", 30)  # 120 > 100: the cost budget refuses
    except RateLimited as refused:
        assert "fields" in str(refused) and 30 < refused.retry_after <= 60
    else:
        raise AssertionError("the cost budget was not enforced")
    await redis.delete(keys)


def _redis_limits(requests: str, prefix: str, cost: str = "") -> RateLimits:
    return RateLimits(Settings(database_url="", rate_limit_requests=requests, rate_limit_cost=cost,
                               rate_limit_redis=REDIS, rate_limit_prefix=prefix))


def _round_trips() -> float:
    return REGISTRY.get_sample_value("ordergraph_rate_limit_redis_round_trips_total") or 0.0


async def test_ratelimits_a_large_budget_is_spent_from_leases_not_a_round_trip_each() -> None:
    """A server asks Redis once for a slice of a large budget and spends it locally; once the
    window ends, so does its slice."""
    prefix = f"ordergraph-test-{uuid.uuid4().hex}"
    limits = _redis_limits("100000 per 2 seconds", prefix)
    before = _round_trips()
    assert await _admitted(limits, "subject:busy", 2_000) == 2_000
    assert _round_trips() - before == 1  # one slice: 100,000 / LEASE_SHARE covers them all
    redis = coredis.Redis.from_url(REDIS, decode_responses=True)
    (key,) = await redis.keys(f"{prefix}:*")
    assert int(await redis.get(key) or 0) == 100_000 // LEASE_SHARE  # the slice, taken at once
    await asyncio.sleep(2.1)  # the window (and the slice with it) ends
    assert await _admitted(limits, "subject:busy", 1) == 1
    assert _round_trips() - before == 2
    assert int(await redis.get(key) or 0) == 100_000 // LEASE_SHARE
    await redis.delete([key])


async def test_ratelimits_servers_taking_leases_never_admit_more_than_the_budget() -> None:
    """Three servers spending one caller's budget from leases, concurrently, with both budgets:
    together they admit the budget that runs out first, and no request more."""
    prefix = f"ordergraph-test-{uuid.uuid4().hex}"
    for requests, cost, each, admitted in (("500 per 30 seconds", "", 400, 500),
                                           ("10000 per 30 seconds", "2000 per 30 seconds", 400, 1000)):
        servers = [_redis_limits(requests, f"{prefix}-{requests}", cost) for _ in range(3)]

        async def one(limits: RateLimits) -> bool:
            try:
                await limits.charge("subject:shared", 2)  # the cost budget: two units a request
            except RateLimited:
                return False
            return True

        results = await asyncio.gather(*(one(servers[n % 3]) for n in range(3 * each)))
        # never more; fewer only by what a server ends holding: less than one request's share
        assert admitted - len(servers) < sum(results) <= admitted, (requests, cost)
        if not cost:  # a share of one: nothing is left over
            assert sum(results) == admitted
        assert not any(results[-30:])  # the last ones, on every server, refused


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.integers(1, 200), cost=st.integers(1, 1000), servers=st.integers(1, 3),
       charges=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 12)), min_size=1, max_size=150),
       together=st.integers(1, 20))
@example(requests=1, cost=1, servers=1, charges=[(0, 5), (0, 1)], together=1)  # refused: spends none
def test_ratelimits_leases_never_admit_more_than_either_budget(
        requests: int, cost: int, servers: int, charges: list[tuple[int, int]], together: int) -> None:
    """Any mix of servers, costs and concurrency: what is admitted fits both budgets, and on
    one server a charge is refused only when it did not fit what was left."""
    prefix = f"ordergraph-test-{uuid.uuid4().hex}"

    async def run() -> list[tuple[int, bool]]:
        fleet = [_redis_limits(f"{requests} per 60 seconds", prefix, f"{cost} per 60 seconds")
                 for _ in range(servers)]

        async def one(server: int, amount: int) -> tuple[int, bool]:
            try:
                await fleet[server % servers].charge("subject:any", amount)
            except RateLimited:
                return amount, False
            return amount, True

        done: list[tuple[int, bool]] = []
        for start in range(0, len(charges), together):  # `together` at a time, concurrently
            done += await asyncio.gather(*(one(*c) for c in charges[start:start + together]))
        redis = coredis.Redis.from_url(REDIS)
        await redis.delete(await redis.keys(f"{prefix}:*") or [f"{prefix}:none"])
        return done

    done = asyncio.run(run())
    admitted = [amount for amount, ok in done if ok]
    assert len(admitted) <= requests and sum(admitted) <= cost
    if servers == 1:
        for amount, ok in done:
            assert ok or len(admitted) + 1 > requests or sum(admitted) + amount > cost


async def test_ratelimits_a_lease_taken_on_a_stale_view_keeps_only_what_fits() -> None:
    """Server A leases, server B spends the rest of the budget; A, asking again for a slice of
    what it thinks is left, gets none: nothing more is admitted, then or later."""
    prefix = f"ordergraph-test-{uuid.uuid4().hex}"
    a, b = (_redis_limits("1600 per 30 seconds", prefix) for _ in range(2))
    assert await _admitted(a, "subject:x", 100) == 100  # its first slice: 1600 / 16
    assert await _admitted(b, "subject:x", 2_000) == 1_500
    assert await _admitted(a, "subject:x", 1) == 0  # asks for 93 more: none fits
    assert await _admitted(a, "subject:x", 50) == 0  # and spends none of them later


async def test_ratelimits_a_refused_request_spends_nothing_of_either_budget() -> None:
    """Refused by its cost, a request does not spend the request budget either: in memory and
    in Redis, the next requests that fit are admitted."""
    for redis in ("", REDIS):
        limits = RateLimits(Settings(database_url="", rate_limit_requests="2 per 30 seconds",
                                     rate_limit_cost="1 per 30 seconds", rate_limit_redis=redis,
                                     rate_limit_prefix=f"ordergraph-test-{uuid.uuid4().hex}"))
        outcomes = []
        for cost in (2, 0, 1, 0):
            try:
                await limits.charge("subject:a", cost)
            except RateLimited:
                outcomes.append(False)
            else:
                outcomes.append(True)
        assert outcomes == [False, True, True, False], redis or "memory"


def test_ratelimits_a_steady_stream_across_window_ends_keeps_the_loop_turning() -> None:
    """Requests arriving every turn of the loop while leases end with their one-second
    windows and are asked for again: every charge is answered. Run in a thread of its own with
    its own loop, so that a charge spinning without yielding fails the test instead of
    stopping the suite's loop."""
    answered: list[int] = []

    async def stream() -> None:
        limits = _redis_limits("1000000 per 1 second", f"ordergraph-test-{uuid.uuid4().hex}")
        pending = set()
        until = time.monotonic() + 2.5  # three windows
        while time.monotonic() < until:
            task = asyncio.create_task(limits.charge("subject:steady", 1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(lambda _: answered.append(1))
            await asyncio.sleep(0)
        await asyncio.gather(*pending)

    thread = threading.Thread(target=asyncio.run, args=(stream(),), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "a charge kept the loop from turning"
    assert len(answered) > 1000
