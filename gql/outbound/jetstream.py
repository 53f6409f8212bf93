"""The NATS JetStream sink: each event a message whose `Nats-Msg-Id` is its event id.

A batch is published pipelined on one connection and confirmed by JetStream's acks in order:
the first event without an ack ends what the batch confirms. The connection never reconnects
by itself (a client's reconnect buffer could deliver later messages of a batch after a lost
earlier one); after a failure the next batch opens a new connection and publishes again from
the consumer's position. What was stored but not confirmed is published again, and
JetStream's duplicate window drops the repeats by `Nats-Msg-Id`, so the stream holds each
event once, in the log's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import string
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from gql import traces
from gql.errors import ConfigurationError
from gql.outbound.consumer import Outcome, OutEvent

log = logging.getLogger("ordergraph.outbound.nats")

PLACEHOLDERS = {"type", "order"}  # {type}: the stored event type (OrderPlaced), {order}: its id


def check_subject(template: str) -> str:
    """The stream's subjects for a subject template (each placeholder a `*` token); refuses a
    template NATS could not take."""
    tokens = template.split(".")
    wildcard = []
    for token in tokens:
        parts = list(string.Formatter().parse(token))
        names = [name for _, name, _, _ in parts if name is not None]
        if any(name not in PLACEHOLDERS for name in names):
            raise ConfigurationError(
                f"subject {template!r}: the placeholders are {{type}} and {{order}}")
        if names and (len(parts) != 1 or parts[0][0]):
            raise ConfigurationError(
                f"subject {template!r}: a placeholder must be a whole token (between dots)")
        if not token or (any(c in token for c in " \t*>") and not names):
            raise ConfigurationError(f"subject {template!r} is not a NATS subject")
        wildcard.append("*" if names else token)
    return ".".join(wildcard)


def headers(event: OutEvent) -> dict[str, str]:
    found = {
        "Nats-Msg-Id": str(event.event_id),
        "Ordergraph-Position": event.position.encode(),
        "Ordergraph-Order-Id": str(event.order_id),
        "Ordergraph-Stream-Version": str(event.stream_version),
        "Ordergraph-Event-Type": event.event_type,
    }
    if event.correlation_id is not None:
        found["Ordergraph-Correlation-Id"] = str(event.correlation_id)
    if event.causation_id is not None:
        found["Ordergraph-Causation-Id"] = str(event.causation_id)
    if traces.TRACER is not None:  # the publishing span's traceparent: downstream continues it
        traces.inject(found)
    return found


class JetStreamSink:
    kind = "nats"

    def __init__(self, url: str, stream: str, subject: str, *, ack_timeout: float = 5.0,
                 duplicate_window: float = 120.0) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.subjects = check_subject(subject)
        self.ack_timeout = ack_timeout
        self.duplicate_window = duplicate_window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    def subject_for(self, event: OutEvent) -> str:
        return self.subject.format(type=event.event_type, order=event.order_id)

    async def _connect(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self.close()
        nc = await nats.connect(self.url, allow_reconnect=False, connect_timeout=5,
                                name="ordergraph-relay", error_cb=_quiet, closed_cb=_nothing,
                                disconnected_cb=_nothing)
        try:
            js = nc.jetstream(timeout=self.ack_timeout, publish_async_max_pending=100_000)
            await self._ensure_stream(js)
        except BaseException:
            await nc.close()
            raise
        self._nc, self._js = nc, js
        return js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """The stream, created (with this subject's wildcard) when it does not exist."""
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[self.subjects],
                                             duplicate_window=self.duplicate_window))
            log.info("created JetStream stream %s for %s", self.stream, self.subjects)

    async def deliver(self, events: Sequence[OutEvent]) -> Outcome:
        try:
            js = await self._connect()
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            return Outcome(0, error=f"NATS at {self.url}: {_describe(exc)}")
        acks: list[asyncio.Future[object]] = []
        error: str | None = None
        try:
            for event in events:
                subject = self.subject_for(event)
                with traces.continuing(f"publish {self.stream}", event.trace_parent,
                                       messaging__system="nats", messaging__destination__name=subject,
                                       messaging__message__id=str(event.event_id)):
                    acks.append(await js.publish_async(subject, event.body, headers=headers(event),
                                                       stream=self.stream))
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            error = f"publishing to NATS: {_describe(exc)}"
        done = 0
        deadline = asyncio.get_running_loop().time() + self.ack_timeout
        for ack in acks:
            try:
                async with asyncio.timeout_at(deadline):
                    await ack
            except (TimeoutError, nats.errors.Error) as exc:
                error = f"JetStream did not acknowledge {events[done].event_id}: {_describe(exc)}"
                break
            done += 1
        if done < len(events):
            for ack in acks[done:]:
                ack.cancel()
            await self.close()  # publish again on a new connection, from the first unconfirmed
        return Outcome(done, error=error or None)

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _quiet(exc: Exception) -> None:
    log.debug("NATS: %s", exc)


async def _nothing() -> None:
    pass
