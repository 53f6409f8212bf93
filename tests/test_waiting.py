"""A bounded wait on an event keeps its task's cancel, even when the event is set in the same
turn of the loop, and so does stopping a helper task: the live hub, the listener and the
relays stop when told to."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from gql.waiting import stopped, until_set

PACKAGE = Path(__file__).resolve().parent.parent / "gql"


async def _wake_forever(event: asyncio.Event) -> None:
    while True:  # the shape of the hub's and the relays' loops
        await until_set(event, 10)
        event.clear()


async def test_a_cancel_in_the_turn_the_event_is_set_ends_the_loop() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(_wake_forever(event))
    await asyncio.sleep(0.01)
    event.set()
    await asyncio.sleep(0)  # the waiter's future is done; the task has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):  # asyncio.wait_for here would run on: a TimeoutError
            await task


async def test_until_set_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert not await until_set(event, 0.01)
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await until_set(event, 5)


async def test_stopping_a_helper_keeps_the_stoppers_own_cancel() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # a read ahead giving its connection back
            raise

    async def stopper() -> None:
        helper = asyncio.create_task(slow_to_stop())
        await asyncio.sleep(0)
        await stopped(helper)
        await asyncio.sleep(10)  # where a lost cancel would leave it

    task = asyncio.create_task(stopper())
    await asyncio.sleep(0.05)  # inside stopped(), waiting for the helper
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task


async def test_stopping_helpers_in_a_finally_after_a_cancel_finishes_the_clean_up() -> None:
    cleaned = []

    async def runner() -> None:  # the relay's shape: stop the listener, then close the sink
        helpers = [asyncio.create_task(asyncio.sleep(10)) for _ in range(2)]
        try:
            await asyncio.sleep(10)
        finally:
            for helper in helpers:
                await stopped(helper)
                cleaned.append(helper)

    task = asyncio.create_task(runner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(cleaned) == 2 and all(h.cancelled() for h in cleaned)


async def test_stopping_a_helper_swallows_its_cancel_and_the_named_errors() -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise OSError("connection reset") from None

    helper = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await stopped(helper, OSError)
    assert helper.done()
    await stopped(None)


def test_no_loop_waits_on_an_event_through_wait_for() -> None:
    """`asyncio.wait_for(x.wait(), t)` loses a cancel on Python 3.11: gql uses until_set."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "wait_for" and node.args
                    and isinstance(node.args[0], ast.Call)
                    and isinstance(node.args[0].func, ast.Attribute)
                    and node.args[0].func.attr == "wait"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders, offenders
