"""Rate limits per caller: requests and estimated cost per time window, with `limits`.

A caller is its token's subject, or its client address when it has no token (open mode).
Counts are kept in memory (one server) or in Redis (`ORDERGRAPH_RATE_LIMIT_REDIS`), where a
fleet of servers shares them. Windows are fixed: a budget of "100/minute" is 100 requests in
each minute of the clock, and a refused caller is told when the window ends (Retry-After).
When Redis cannot be reached the request goes through and a warning is logged: the limits
protect the service, they must not take it down.
"""

from __future__ import annotations

import asyncio
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

log = logging.getLogger("ordergraph.ratelimits")
_WARN_EVERY = 60.0  # seconds between two warnings that the storage is unreachable
_CALLERS_KEPT = 10_000  # callers whose storage keys are remembered


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
# expiry when this increment created it (as `limits`' own incr_expire script, for several keys).
INCR_ALL = """
local values = {}
for i, key in ipairs(KEYS) do
    local amount = tonumber(ARGV[2 * i])
    local value = redis.call('incrby', key, amount)
    if value == amount then redis.call('expire', key, ARGV[2 * i - 1]) end
    values[i] = value
end
return values
"""

Counts = Callable[[tuple[str, ...], tuple[int, ...], Sequence[int]], Awaitable[list[int]]]


def memory_counts(storage: Storage) -> Counts:
    """Each counter incremented in memory, at once."""
    async def incr(keys: tuple[str, ...], expiries: tuple[int, ...], amounts: Sequence[int]) -> list[int]:
        return [await storage.incr(key, expiry, amount)
                for key, expiry, amount in zip(keys, expiries, amounts, strict=True)]
    return incr


def redis_counts(url: str, prefix: str) -> Counts:
    """Every counter of a charge by one script call: one Redis round trip per charge. Keys are
    those `limits` uses (`<prefix>:<key>`), so its window statistics read the same counters."""
    client = coredis.Redis.from_url(url)
    script = client.register_script(INCR_ALL)

    async def incr(keys: tuple[str, ...], expiries: tuple[int, ...], amounts: Sequence[int]) -> list[int]:
        args: list[int] = []
        for expiry, amount in zip(expiries, amounts, strict=True):
            args += (expiry, amount)
        values = await script.execute(keys=[f"{prefix}:{key}" for key in keys], args=args)
        return [int(value) for value in values]  # type: ignore[union-attr]
    return incr


class Coalescer:
    """Charges of the same counters that arrive while the previous charge of them is on its way
    go to the storage together, as one: the counters end as they would after one charge each,
    and each caller learns the values just after its own share, as if it had been sent alone.
    Under load this spares a Redis round trip (and its client's CPU) per request."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self._waiting: dict[tuple[str, ...], list[tuple[Sequence[int], asyncio.Future[list[int]]]]] = {}
        self._sending: dict[tuple[str, ...], asyncio.Task[None]] = {}

    async def incr(self, keys: tuple[str, ...], expiries: tuple[int, ...], amounts: Sequence[int],
                   ) -> list[int]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(keys, []).append((amounts, future))
        if keys not in self._sending:
            self._sending[keys] = asyncio.create_task(self._send(keys, expiries))
        return await future

    async def _send(self, keys: tuple[str, ...], expiries: tuple[int, ...]) -> None:
        try:
            while batch := self._waiting.pop(keys, None):
                totals = [sum(amounts[i] for amounts, _ in batch) for i in range(len(keys))]
                try:
                    counters = await self.counts(keys, expiries, totals)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                values = [counter - total for counter, total in zip(counters, totals, strict=True)]
                for amounts, future in batch:
                    values = [value + amount for value, amount in zip(values, amounts, strict=True)]
                    if not future.done():  # a caller that left (cancelled) still counted
                        future.set_result(values)
        finally:
            del self._sending[keys]


@dataclass(frozen=True, slots=True)
class _Counters:
    """A caller's counters: its hashed name, the budgets it spends, their keys and expiries."""

    key: str
    budgets: list[tuple[RateLimitItem, str]]
    stored: tuple[str, ...]
    expiries: tuple[int, ...]


class RateLimits:
    """The budgets of the settings and the counts that spend them."""

    def __init__(self, settings: Settings) -> None:
        self.requests = _budget("rate_limit_requests", settings.rate_limit_requests)
        self.cost = _budget("rate_limit_cost", settings.rate_limit_cost)
        self.limiter = FixedWindowRateLimiter(storage_of(settings))
        url = _redis_url(settings)
        # memory answers at once: coalescing would only add its task and futures
        self._count = (Coalescer(redis_counts(url, _prefix(settings))).incr if url
                       else memory_counts(self.limiter.storage))
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
                tuple(budget.get_expiry() for budget, _ in budgets))
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
            values = await self._count(counters.stored, counters.expiries, spent)
            for (budget, what), amount, value in zip(counters.budgets, spent, values, strict=True):
                if amount and value > budget.amount:
                    stats = await self.limiter.get_window_stats(budget, what, counters.key)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(f"too many {'requests' if what == 'requests' else 'fields'}: "
                                      f"the budget is {budget}; try again in {wait} s", wait)
        except RateLimited:
            raise
        except Exception as exc:  # the storage is away: serve, and say so now and then
            now = time.monotonic()
            if now - self._warned > _WARN_EVERY:
                self._warned = now
                log.warning("rate limits not enforced: their storage failed (%s)", exc)
