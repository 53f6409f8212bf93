"""Waiting on an asyncio.Event for at most a while, in loops that must end when cancelled.

On Python 3.11 `asyncio.wait_for(event.wait(), t)` returns normally when the event is set in
the same turn of the loop as its task is cancelled: the cancel is lost, and a loop built on it
runs on (a relay that ignores its stop, a server whose shutdown never ends). `asyncio.timeout`
keeps the cancel, so every bounded wait on an event goes through here.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def until_set(event: asyncio.Event, seconds: float) -> bool:
    """True once `event` is set, False when `seconds` passed first; a cancel propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def stopped(task: asyncio.Future[Any] | None, *ignored: type[Exception]) -> None:
    """Cancel `task` and wait until it has ended, its cancel (and `ignored` errors) swallowed.
    A cancel of the caller that arrives while it waits still propagates: a loop that stops a
    helper task is not kept running by it. One the caller was already handling (stopping its
    helpers in a `finally`) does not cut that clean-up short."""
    if task is None:
        return
    current = asyncio.current_task()
    cancels = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, *ignored):
        if current is not None and current.cancelling() > cancels:
            raise
