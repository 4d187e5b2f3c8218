"""The server's stream of state changes (add-on states, agents going offline), fanned out in
process to every open `GET /api/v1/events` and `moorage addons list -w`. A slow reader is dropped
with a final "overflow" event rather than slowing the server down; it reconnects and re-reads.

With several replicas, `moorage.server.fanout` sets `forward` on both classes: what one replica
publishes (or a result it records) reaches the subscribers and waiters of the others through NATS,
which hand it to `deliver` / `done(…, forward=False)`."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

QUEUE_SIZE = 1000


class JobWaiters:
    """Wakes the requests that wait for a job's result (reads through the agent) as soon as the
    result is in the database, instead of each request polling it."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Event]] = {}
        self.forward: Callable[[str], None] | None = None  # to the other replicas

    def done(self, job_id: str, *, forward: bool = True) -> None:
        if forward and self.forward is not None:
            self.forward(job_id)
        for event in self._waiting.pop(job_id, []):
            event.set()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(job_id, []).append(event)
        try:
            yield event
        finally:
            events = self._waiting.get(job_id)
            if events is not None and event in events:
                events.remove(event)
                if not events:
                    del self._waiting[job_id]


class Broadcaster:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.forward: Callable[[list[dict[str, Any]]], None] | None = None  # to the other replicas

    def publish(self, events: Iterable[dict[str, Any]]) -> None:
        """To this replica's subscribers, and (with `forward`) to the other replicas'."""
        batch = list(events)
        if batch and self.forward is not None:
            self.forward(batch)
        self.deliver(batch)

    def deliver(self, events: Iterable[dict[str, Any]]) -> None:
        """To this replica's subscribers only."""
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
