"""Which write jobs may run at the same time (docs/decisions.md, "write_worker_count").

A write claims either the whole cluster (a sync of the definition with its waves, parents and prunes,
a sweep, a new definition) or some add-ons (an add-on sync with `only`, a rollback). Two claims
conflict when either is the whole cluster or they share an add-on. A waiting claim starts when it
conflicts with no running claim and with no claim that has waited longer (so conflicting writes keep
their arrival order and a whole-cluster job is never starved), and fewer than `capacity` run.

`startable` is the pure decision; `WriteScheduler` applies it to asyncio tasks."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from moorage.spec.protocol import JobAction


@dataclass(frozen=True)
class Claim:
    """What one write takes: `addons` None is the whole cluster."""

    addons: frozenset[str] | None = None

    @classmethod
    def cluster(cls) -> "Claim":
        return cls(None)

    @classmethod
    def of(cls, *names: str) -> "Claim":
        return cls(frozenset(names))

    def conflicts(self, other: "Claim") -> bool:
        if self.addons is None or other.addons is None:
            return True
        return not self.addons.isdisjoint(other.addons)

    def describe(self) -> str:
        return "the whole cluster" if self.addons is None else ", ".join(sorted(self.addons)) or "nothing"


def claim_of(action: JobAction, payload: Mapping[str, Any]) -> Claim:
    """The claim of a write job: an add-on sync and a rollback take their add-ons, everything else
    (a sync of the definition, a sweep, a delete, a new definition) the whole cluster."""
    if action is JobAction.SYNC:
        only = payload.get("only")
        if isinstance(only, list) and all(isinstance(n, str) for n in only):
            return Claim(frozenset(only))
        return Claim.cluster()
    if action is JobAction.ROLLBACK:
        name = payload.get("addon")
        if isinstance(name, str) and name:
            return Claim.of(name)
    return Claim.cluster()


def startable(waiting: Sequence[Claim], running: Sequence[Claim], capacity: int) -> list[int]:
    """The indices (into `waiting`, oldest first) of the claims that may start now."""
    started: list[int] = []
    busy = list(running)
    for i, claim in enumerate(waiting):
        if len(busy) >= capacity:
            break
        ahead = waiting[:i]
        if any(claim.conflicts(r) for r in busy) or any(claim.conflicts(w) for w in ahead):
            continue
        started.append(i)
        busy.append(claim)
    return started


def batch_size(
    *, held: int, max_held: int, reads_free: int, write_workers: int, writes_held: int, leader: bool
) -> int:
    """How many jobs the agent fetches now (0: none): no more than it may hold in all
    (`nats_worker_max_workers`), at least one while there is room (a read may be waiting), and room
    for writes only on the leader (the others hand write jobs back)."""
    room = max_held - held
    if room <= 0:
        return 0
    writes = max(0, write_workers - writes_held) if leader else 0
    return max(1, min(room, reads_free + writes))


@dataclass
class _Waiter:
    claim: Claim
    ready: asyncio.Future[None]


@dataclass
class WriteScheduler:
    """Runs writes by `startable`: `async with scheduler.hold(claim): …`."""

    capacity: int
    _waiting: list[_Waiter] = field(default_factory=list)
    _running: list[Claim] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("write_worker_count must be 1 or more")

    @property
    def held(self) -> int:
        """Writes running or waiting."""
        return len(self._waiting) + len(self._running)

    @property
    def running(self) -> int:
        return len(self._running)

    @contextlib.asynccontextmanager
    async def hold(self, claim: Claim) -> AsyncIterator[None]:
        waiter = _Waiter(claim, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        self._dispatch()
        try:
            await waiter.ready
        except BaseException:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.ready.done() and not waiter.ready.cancelled():
                self._running.remove(claim)  # granted just as it was cancelled
            self._dispatch()
            raise
        try:
            yield
        finally:
            self._running.remove(claim)
            self._dispatch()

    def _dispatch(self) -> None:
        chosen = startable([w.claim for w in self._waiting], self._running, self.capacity)
        granted = [self._waiting[i] for i in chosen]
        for waiter in granted:
            self._waiting.remove(waiter)
            self._running.append(waiter.claim)
            waiter.ready.set_result(None)
