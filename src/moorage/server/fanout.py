"""What one replica must tell the others at once, over core NATS (no stream: a replica that is down
has no subscribers to tell, and one that starts reads the database):

- `moorage.server.fanout.events`: the live events it published (`GET /api/v1/events` subscribers
  of every replica see them),
- `moorage.server.fanout.jobs`: the ids of jobs whose result it recorded (reads through the agent
  waiting on another replica wake at once instead of at their slow tick),
- `moorage.server.fanout.wake`: a GitOps request it wrote (a webhook, Sync Now), so the replica
  that owns the cluster's sync looks now.

Each message names the replica that sent it; a replica ignores its own. Only the server's NATS user
may publish under `moorage.server.>` (agents' permissions are allow-lists of their own subjects)."""

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from moorage.server.events import Broadcaster, JobWaiters

log = logging.getLogger("moorage.server.fanout")

PREFIX = "moorage.server.fanout"
EVENTS_SUBJECT = f"{PREFIX}.events"
JOBS_SUBJECT = f"{PREFIX}.jobs"
WAKE_SUBJECT = f"{PREFIX}.wake"
MAX_BYTES = 512 * 1024  # one message; a bigger batch is sent event by event


def encode(origin: str, **fields: Any) -> bytes:
    return json.dumps({"origin": origin, **fields}, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any] | None:
    """The message, or None for one that is too big or not what a replica sends."""
    if len(data) > 2 * MAX_BYTES:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("origin"), str):
        return None
    return message


def batches(origin: str, events: list[dict[str, Any]]) -> list[bytes]:
    """`events` as few messages as fit MAX_BYTES each (an event too big alone is dropped, logged)."""
    whole = encode(origin, events=events)
    if len(whole) <= MAX_BYTES:
        return [whole]
    out = []
    for event in events:
        one = encode(origin, events=[event])
        if len(one) <= MAX_BYTES:
            out.append(one)
        else:
            log.warning("an event of %d bytes is not sent to the other replicas", len(one))
    return out


class Fanout:
    def __init__(self, events: Broadcaster, waiters: JobWaiters) -> None:
        self.origin = secrets.token_hex(8)  # this replica, for this run
        self.events = events
        self.waiters = waiters
        self.wake: Callable[[], None] | None = None
        self.received = 0  # messages from other replicas handled
        self._nc: Client | None = None
        self._subs: list[Subscription] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def start(self, nc: Client) -> None:
        self._nc = nc
        for subject in (EVENTS_SUBJECT, JOBS_SUBJECT, WAKE_SUBJECT):
            self._subs.append(await nc.subscribe(subject, cb=self._received))
        await nc.flush()  # subscribed at the server before anything is published
        self.events.forward = lambda batch: self._send_all(batches(self.origin, batch), EVENTS_SUBJECT)
        self.waiters.forward = lambda job_id: self._send_all([encode(self.origin, job=job_id)], JOBS_SUBJECT)

    def woken(self) -> None:
        """This replica wrote a GitOps request: the others look too."""
        self._send_all([encode(self.origin)], WAKE_SUBJECT)

    def _send_all(self, messages: list[bytes], subject: str) -> None:
        nc = self._nc
        if nc is None or not nc.is_connected:
            return  # the others read the database (events are best effort, waiters have a slow tick)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for data in messages:
            task = loop.create_task(self._send(nc, subject, data))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, nc: Client, subject: str, data: bytes) -> None:
        try:
            await nc.publish(subject, data)
        except Exception as e:
            log.warning("telling the other replicas (%s) failed: %s", subject, e)

    async def _received(self, msg: Msg) -> None:
        message = decode(msg.data)
        if message is None:
            log.warning("a malformed message on %s was dropped", msg.subject)
            return
        if message["origin"] == self.origin:
            return
        self.received += 1
        if msg.subject == EVENTS_SUBJECT:
            events = message.get("events")
            if isinstance(events, list):
                self.events.deliver(e for e in events if isinstance(e, dict))
        elif msg.subject == JOBS_SUBJECT:
            job = message.get("job")
            if isinstance(job, str):
                self.waiters.done(job, forward=False)
        elif msg.subject == WAKE_SUBJECT and self.wake is not None:
            self.wake()

    async def close(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as e:
                log.debug("unsubscribing failed: %s", e)
        self._subs.clear()
        self.events.forward = None
        self.waiters.forward = None
