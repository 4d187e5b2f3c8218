"""The server's stream of state changes (add-on states, agents going offline), fanned out in
process to every open `GET /api/v1/events` and `moorage addons list -w`. A slow reader is dropped
with a final "overflow" event rather than slowing the server down; it reconnects and re-reads."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

QUEUE_SIZE = 1000


class Broadcaster:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            for queue in list(self._subscribers):
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._subscribers.discard(queue)
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                    queue.put_nowait(None)  # tells the reader it missed events

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator["asyncio.Queue[dict[str, Any] | None]"]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
