"""Rate limits per caller: requests and estimated cost per time window, with `limits`.

A caller is its token's subject, or its client address when it has no token (open mode).
Counts are kept in memory (one server) or in Redis (`ORDERGRAPH_RATE_LIMIT_REDIS`), where a
fleet of servers shares them, each spending slices it leased (Leases). Windows are fixed: a
budget of "100/minute" is 100 requests in the minute from the caller's first request, and a
refused caller is told when the window ends (Retry-After). When Redis cannot be reached the
request goes through and a warning is logged: the limits protect the service, they must not
take it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import coredis
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from gql.config import Settings
from gql.errors import ConfigurationError, RateLimited
from gql.metrics import REDIS_ROUND_TRIPS

log = logging.getLogger("ordergraph.ratelimits")
_WARN_EVERY = 60.0  # seconds between two warnings that the storage is unreachable
_CALLERS_KEPT = 10_000  # callers whose storage keys (and leases) are remembered
LEASE_SHARE = 16  # a lease takes this fraction of what is left of a budget (Leases)


def _budget(name: str, value: str) -> RateLimitItem | None:
    if not value.strip():
        return None
    try:
        return parse(value)
    except ValueError:
        raise ConfigurationError(f"ORDERGRAPH_{name.upper()} must be a budget such as 100/minute "
                                 f"or 5000 per 10 seconds, not {value!r}") from None


def storage_of(settings: Settings) -> Storage:
    """Memory, or the Redis server the settings name."""
    url = _redis_url(settings)
    if not url:
        return MemoryStorage()
    storage = storage_from_string(f"async+{url}", key_prefix=_prefix(settings))
    if not isinstance(storage, Storage):  # pragma: no cover - limits maps async+ to aio storage
        raise ConfigurationError("ORDERGRAPH_RATE_LIMIT_REDIS: not an asynchronous storage")
    return storage


def _redis_url(settings: Settings) -> str:
    url = settings.rate_limit_redis.strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"ORDERGRAPH_RATE_LIMIT_REDIS must be a redis:// URL, not {url!r}")
    return url


def _prefix(settings: Settings) -> str:
    return settings.rate_limit_prefix.strip() or "ordergraph"


# Every counter of a charge in one round trip: INCRBY each key, and give a key its window's
# expiry when this increment created it (as `limits`' own incr_expire script, for several keys);
# then each key's milliseconds left, which is how long a lease taken from it lasts.
INCR_ALL = """
local values = {}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local value = redis.call('incrby', key, amount)
    if value == amount then redis.call('expire', key, ARGV[2 * i - 1]) end
    values[i] = value
    values[#KEYS + i] = redis.call('pttl', key)
end
return values
"""

Counted = tuple[list[int], list[int]]  # each counter's value after the charge, its ms left
Counts = Callable[[tuple[str, ...], tuple[int, ...], Sequence[int]], Awaitable[Counted]]


def redis_counts(url: str, prefix: str) -> Counts:
    """Every counter of a charge by one script call: one Redis round trip. Keys are those
    `limits` uses (`<prefix>:<key>`), so its window statistics read the same counters."""
    client = coredis.Redis.from_url(url)
    script = client.register_script(INCR_ALL)

    async def incr(keys: tuple[str, ...], expiries: tuple[int, ...], amounts: Sequence[int]) -> Counted:
        args: list[int] = []
        for expiry, amount in zip(expiries, amounts, strict=True):
            args += (expiry, amount)
        found = await script.execute(keys=[f"{prefix}:{key}" for key in keys], args=args)
        REDIS_ROUND_TRIPS.inc()
        values = [int(value) for value in found]  # type: ignore[union-attr]
        return values[:len(keys)], values[len(keys):]
    return incr


@dataclass(frozen=True, slots=True)
class _Counters:
    """A caller's counters: its hashed name, the budgets it spends, their keys and expiries."""

    key: str
    budgets: list[tuple[RateLimitItem, str]]
    stored: tuple[str, ...]
    expiries: tuple[int, ...]
    amounts: tuple[int, ...]  # each budget's amount (per window)


Spend = Callable[[_Counters, Sequence[int]], Awaitable[list[int]]]


def memory_counts(storage: Storage) -> Spend:
    """Each counter incremented in memory, at once."""
    async def incr(counters: _Counters, amounts: Sequence[int]) -> list[int]:
        return [await storage.incr(key, expiry, amount)
                for key, expiry, amount in zip(counters.stored, counters.expiries, amounts, strict=True)]
    return incr


@dataclass(slots=True)
class _Lease:
    """What this server took of a Redis counter and has not spent yet: `left` units of a
    counter that stood at `top` once taken (counting only what fits in the budget), until the
    counter's window ends (`until`, monotonic)."""

    left: int
    top: int
    until: float


class Leases:
    """Redis counters spent in leases. A server that has to ask Redis takes, beside its
    request's share, a slice of what is left of the caller's budget (1/LEASE_SHARE of it) and
    spends the slice locally until the slice or the window ends; while it asks, the caller's
    other requests on this server wait for that answer instead of asking too. A large budget
    then costs a round trip per slice rather than per request; a small one (under twice
    LEASE_SHARE) is asked for at every request that fits, as before. A caller known to have
    spent its budget is refused without asking until the window ends, and a refused request
    spends nothing of its lease.

    No more than the budget is admitted, in a fleet as in one server; a caller may be refused
    before its budget is spent by slices other servers took and have not used (each at most
    1/LEASE_SHARE of what was left when taken)."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self._leases: dict[str, _Lease] = {}
        self._asking: dict[tuple[str, ...], asyncio.Future[list[int]]] = {}

    async def incr(self, counters: _Counters, amounts: Sequence[int]) -> list[int]:
        while (asking := self._asking.get(counters.stored)) is not None and not asking.done():
            # one question at a time per caller, and no spending meanwhile: its answer changes
            # the leases, and whoever waited decides on them afterwards. (An answered one may
            # still be registered until its callback runs: awaiting it would not yield, and this
            # loop would spin.)
            with contextlib.suppress(Exception):  # its failure is its asker's to report
                await asyncio.shield(asking)
        leases = [self._live(key) for key in counters.stored]
        budgets = counters.amounts
        covered = True
        for lease, budget, amount in zip(leases, budgets, amounts, strict=True):
            if lease is not None and lease.left + max(0, budget - lease.top) < amount:
                # spent in this window, as far as anyone could take: refused, no round trip
                return [0 if other is None else other.top - other.left + spend
                        for other, spend in zip(leases, amounts, strict=True)]
            covered = covered and lease is not None and lease.left >= amount
        if covered:  # no await between the test and the spending
            values = []
            for lease, amount in zip(leases, amounts, strict=True):
                assert lease is not None
                lease.left -= amount
                values.append(lease.top - lease.left)
            return values
        # what the leases lack for this request, or a slice of what is left, whichever is more
        wants = [max(amount - (lease.left if lease else 0),
                     (budget - (lease.top if lease else 0)) // LEASE_SHARE, 0)
                 for budget, lease, amount in zip(budgets, leases, amounts, strict=True)]
        asking = asyncio.ensure_future(self._take(counters, wants, amounts))
        self._asking[counters.stored] = asking
        asking.add_done_callback(functools.partial(self._asked, counters.stored))
        return await asyncio.shield(asking)  # a caller that leaves does not undo the lease

    def _asked(self, stored: tuple[str, ...], done: asyncio.Future[list[int]]) -> None:
        if self._asking.get(stored) is done:
            del self._asking[stored]
        if not done.cancelled():
            done.exception()  # its asker reports a failure; one that left has it dropped here

    async def _take(self, counters: _Counters, wants: Sequence[int], amounts: Sequence[int],
                    ) -> list[int]:
        budgets = counters.amounts
        found, left_ms = await self.counts(counters.stored, counters.expiries, wants)
        leases = []
        for key, ms in zip(counters.stored, left_ms, strict=True):
            lease = self._live(key)
            if lease is None:
                lease = self._leases[key] = _Lease(0, 0, time.monotonic() + ms / 1000)
            leases.append(lease)
        # of each slice, what fits in the budget; the request spends its share only if it fits
        # every budget (a refused request spends nothing, as one refused without asking)
        rooms = [min(want, max(0, budget - (value - want)))
                 for budget, want, value in zip(budgets, wants, found, strict=True)]
        fits = all(lease.left + room >= amount
                   for lease, room, amount in zip(leases, rooms, amounts, strict=True))
        values = []
        for lease, budget, want, amount, value, room in zip(leases, budgets, wants, amounts, found,
                                                            rooms, strict=True):
            lease.left += room - (amount if fits else 0)
            # the counter before this slice (what of it fits the budget), and the slice's room
            lease.top = max(lease.top, min(budget, value - want) + room)
            values.append(lease.top - lease.left if fits else lease.top + amount - lease.left)
        return values

    def seconds_left(self, key: str) -> float | None:
        """Until the window of a counter this server holds a lease of ends."""
        lease = self._live(key)
        return None if lease is None else lease.until - time.monotonic()

    def _live(self, key: str) -> _Lease | None:
        lease = self._leases.get(key)
        if lease is not None and lease.until <= time.monotonic():
            del self._leases[key]
            return None
        if lease is None and len(self._leases) >= _CALLERS_KEPT:
            self._leases.clear()
        return lease


class RateLimits:
    """The budgets of the settings and the counts that spend them."""

    def __init__(self, settings: Settings) -> None:
        self.requests = _budget("rate_limit_requests", settings.rate_limit_requests)
        self.cost = _budget("rate_limit_cost", settings.rate_limit_cost)
        self.limiter = FixedWindowRateLimiter(storage_of(settings))
        url = _redis_url(settings)
        # memory answers at once: leases would only add their work
        self._leases = Leases(redis_counts(url, _prefix(settings))) if url else None
        self._count: Spend = self._leases.incr if self._leases else memory_counts(self.limiter.storage)
        self._warned = 0.0
        # each caller's counters, worked out once per caller, not per request
        self._keys: dict[str, _Counters] = {}

    def _counters(self, caller: str) -> _Counters:
        found = self._keys.get(caller)
        if found is None:
            if len(self._keys) >= _CALLERS_KEPT:
                self._keys.clear()
            key = hashlib.blake2b(caller.encode(), digest_size=12).hexdigest()  # no subject in Redis
            budgets = [(budget, what) for budget, what in (
                (self.requests, "requests"), (self.cost, "cost")) if budget is not None]
            found = self._keys[caller] = _Counters(
                key, budgets, tuple(budget.key_for(what, key) for budget, what in budgets),
                tuple(budget.get_expiry() for budget, _ in budgets),
                tuple(budget.amount for budget, _ in budgets))
        return found

    @classmethod
    def configured(cls, settings: Settings) -> RateLimits | None:
        """None when the settings set no budget (rate limits are off)."""
        limits = cls(settings)
        return limits if limits.requests or limits.cost else None

    async def charge(self, caller: str, cost: int) -> None:
        """Counts one request of `cost` for `caller`; RATE_LIMITED once a budget is spent."""
        try:
            counters = self._counters(caller)  # as FixedWindowRateLimiter.hit, all at once
            spent = [1 if what == "requests" else max(cost, 0) for _, what in counters.budgets]
            values = await self._count(counters, spent)
            for (budget, what), stored, amount, value in zip(counters.budgets, counters.stored, spent,
                                                             values, strict=True):
                if amount and value > budget.amount:
                    if self._leases is None:  # in memory it was counted: a refusal spends nothing
                        for key, share in zip(counters.stored, spent, strict=True):
                            await self.limiter.storage.decr(key, share)
                    left = self._leases.seconds_left(stored) if self._leases else None
                    if left is None:
                        stats = await self.limiter.get_window_stats(budget, what, counters.key)
                        left = stats.reset_time - time.time()
                    wait = max(1, math.ceil(left))
                    raise RateLimited(f"too many {'requests' if what == 'requests' else 'fields'}: "
                                      f"the budget is {budget}; try again in {wait} s", wait)
        except RateLimited:
            raise
        except Exception as exc:  # the storage is away: serve, and say so now and then
            now = time.monotonic()
            if now - self._warned > _WARN_EVERY:
                self._warned = now
                log.warning("rate limits not enforced: their storage failed (%s)", exc)
