"""Relays beside the server: the consumers its settings name run in the server's process, woken
by the live hub's doorbell, and every consumer's lag is reported on /metrics and /readyz.

With several workers (or several servers) each runs the same consumers; the consumer's lock
lets one deliver while the others stand by to take over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gql.config import Settings
from gql.errors import ConfigurationError
from gql.events import EventType
from gql.live import LiveHub
from gql.metrics import CONSUMER_LAG_EVENTS, CONSUMER_LAG_SECONDS
from gql.outbound.consumer import ConsumerRunner, Stopped
from gql.store import Pool
from gql.store.consumers import list_consumers
from gql.waiting import stopped

log = logging.getLogger("ordergraph.outbound")


def _types(setting: str, text: str) -> list[str] | None:
    try:
        return sorted({EventType[t.strip()].value for t in text.split(",")}) if text else None
    except KeyError as exc:
        raise ConfigurationError(f"ORDERGRAPH_{setting.upper()}: unknown event type {exc.args[0]}") from None


def configured(settings: Settings) -> list[ConsumerRunner]:
    """The relays the settings name (none by default); a bad setting fails at start-up."""
    runners = []
    if settings.relay_nats_stream:
        from gql.outbound.jetstream import JetStreamSink

        sink = JetStreamSink(settings.relay_nats_url, settings.relay_nats_stream,
                             settings.relay_nats_subject)
        runners.append(ConsumerRunner(
            settings.database_url, settings.relay_nats_consumer, sink,
            types=_types("relay_nats_types", settings.relay_nats_types), own_listener=False))
    if settings.webhook_url:
        from gql.outbound.webhooks import Retry, WebhookSink

        if settings.webhook_on_failure not in ("park", "stop"):
            raise ConfigurationError("ORDERGRAPH_WEBHOOK_ON_FAILURE must be park or stop")
        hook = WebhookSink(settings.webhook_url, settings.webhook_secret,
                           retry=Retry(settings.webhook_max_attempts, settings.webhook_backoff,
                                       settings.webhook_max_backoff),
                           stop_on_failure=settings.webhook_on_failure == "stop")
        runners.append(ConsumerRunner(
            settings.database_url, settings.webhook_consumer, hook,
            types=_types("webhook_types", settings.webhook_types), batch=50, own_listener=False))
    return runners


class Relays:
    """The relays running beside the server, each its own task."""

    def __init__(self, runners: list[ConsumerRunner]) -> None:
        self.runners = runners
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, hub: LiveHub) -> None:
        for runner in self.runners:
            hub.doorbells.append(runner.wake)
            self._tasks.append(asyncio.create_task(self._run(runner), name=f"relay-{runner.name}"))

    async def _run(self, runner: ConsumerRunner) -> None:
        try:
            await runner.run()
        except Stopped as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("the relay of consumer %s failed", runner.name)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await stopped(task)


async def consumer_lag(pool: Pool) -> dict[str, Any]:
    """Each consumer's lag (events, seconds) and who runs it; sets the /metrics gauges."""
    rows = await list_consumers(pool)
    CONSUMER_LAG_EVENTS.clear()
    CONSUMER_LAG_SECONDS.clear()
    report = {}
    for row in rows:
        CONSUMER_LAG_EVENTS.labels(row["name"]).set(row["lag_events"])
        CONSUMER_LAG_SECONDS.labels(row["name"]).set(row["lag_seconds"])
        report[row["name"]] = {"lag_events": row["lag_events"],
                               "lag_seconds": round(row["lag_seconds"], 3),
                               "running": row["holder"] is not None,
                               "parked": row["parked"], "stopped": row["stopped"]}
    return report
