"""Work stops when the client goes away: the request's task is cancelled, and with it the
SQL statement it awaits (asyncpg asks PostgreSQL to cancel it)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnect:
    """Once a request's body is read, watches for the client's disconnect while the app works;
    a disconnect before the response is complete cancels the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        gone: asyncio.Future[Message] | None = None
        answered = False

        async def watch(future: asyncio.Future[Message]) -> None:
            future.set_result(await receive())  # only a disconnect can come after the body
            if not answered:
                task.cancel()

        async def app_receive() -> Message:
            nonlocal gone
            if gone is not None:
                return await asyncio.shield(gone)
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                gone = asyncio.get_running_loop().create_future()
                watchers.append(asyncio.create_task(watch(gone)))
            return message

        async def app_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        watchers: list[asyncio.Task[None]] = []
        try:
            await self.app(scope, app_receive, app_send)
        except asyncio.CancelledError:
            if gone is None or not gone.done() or answered:
                raise
            task.uncancel()  # the client left: there is no one to answer
        finally:
            for watcher in watchers:
                watcher.cancel()
