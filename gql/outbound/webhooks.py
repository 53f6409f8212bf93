"""The webhook sink: each event POSTed on its own, signed as the Standard Webhooks spec says.

`webhook-id` is the event id (the receiver's idempotency key), `webhook-timestamp` the
attempt's Unix time, and `webhook-signature` `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
with the `whsec_` secret's key. A 2xx answer confirms an event; anything else (another
status, a refused or dropped connection, a timeout) is retried with exponential backoff,
and after the last attempt the event is parked: the consumer goes on, or stops there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from gql import traces
from gql.errors import ConfigurationError
from gql.outbound.consumer import Outcome, OutEvent
from gql.store.consumers import ParkedEvent

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The signing key of a `whsec_…` secret (base64 after the prefix)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigurationError("the webhook secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("the webhook secret must be whsec_ and base64") from None
    if len(key) < 16:
        raise ConfigurationError("the webhook secret's key must have at least 16 bytes")
    return key


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Retry:
    attempts: int = 8
    first: float = 1.0  # seconds before the first retry
    longest: float = 300.0

    def pause(self, failures: int) -> float:
        """The wait after `failures` failed attempts: doubling, capped, with some jitter."""
        return min(self.first * 2 ** (failures - 1), self.longest) * random.uniform(0.8, 1.0)


class WebhookSink:
    kind = "webhook"

    def __init__(self, url: str, secret: str, *, retry: Retry = Retry(), timeout: float = 10.0,
                 stop_on_failure: bool = False) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the webhook URL must be http:// or https://, not {url!r}")
        self.url = url
        self.key = secret_key(secret)
        self.retry = retry
        self.stop_on_failure = stop_on_failure
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def deliver(self, events: Sequence[OutEvent]) -> Outcome:
        parked: list[ParkedEvent] = []
        for n, event in enumerate(events, start=1):
            with traces.continuing("webhook POST", event.trace_parent, url__full=self.url,
                                   messaging__message__id=str(event.event_id)):
                attempts, error = await self._post(event)
            if error is None:
                continue
            parked.append(ParkedEvent(event.event_id, event.position, attempts, error))
            if self.stop_on_failure:
                return Outcome(n, parked, error=error, stop=True)
        return Outcome(len(events), parked)

    async def _post(self, event: OutEvent) -> tuple[int, str | None]:
        """Attempts until one is confirmed (then the error is None) or none are left."""
        message_id = str(event.event_id)
        error = ""
        for attempt in range(1, self.retry.attempts + 1):
            timestamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": message_id,
                       "webhook-timestamp": str(timestamp),
                       "webhook-signature": sign(self.key, message_id, timestamp, event.body)}
            if traces.TRACER is not None:  # the delivery's traceparent: the receiver continues it
                traces.inject(headers)
            try:
                response = await self._client.post(self.url, content=event.body, headers=headers)
                if 200 <= response.status_code < 300:
                    return attempt, None
                error = f"HTTP {response.status_code} from {self.url}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__} posting to {self.url}: {exc}".rstrip(": ")
            if attempt < self.retry.attempts:
                await asyncio.sleep(self.retry.pause(attempt))
        return self.retry.attempts, error

    async def close(self) -> None:
        await self._client.aclose()
