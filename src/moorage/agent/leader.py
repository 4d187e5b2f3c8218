"""Leader election of the agents of one cluster through a Kubernetes Lease (coordination.k8s.io/v1),
the way client-go's leaderelection does it: the leader renews the Lease every `retry` seconds; another
replica takes it over once it has seen the same record unchanged for the record's lease duration (its
own monotonic clock, so the replicas' clocks need not agree); a leader that could not renew for
`renew_deadline` (shorter than the duration) steps down before anyone may take over. Writes are made
with the Lease's resourceVersion, so two candidates never both win.

`decide` is the pure decision; `LeaderElector` talks to the API server."""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from moorage.kube import errors
from moorage.kube.client import KubeClient

log = logging.getLogger("moorage.agent.leader")

LEASE_API = "coordination.k8s.io/v1"


class Action(StrEnum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # free, or its holder stopped renewing
    WAIT = "wait"  # someone else holds it


@dataclass(frozen=True)
class Record:
    holder: str
    duration: float
    renewed: str  # renewTime as the API server stores it (compared, never parsed)
    transitions: int

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> "Record":
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=float(duration) if isinstance(duration, int | float) and duration > 0 else 15.0,
            renewed=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


def decide(record: Record | None, me: str, unchanged_since: float, now: float) -> Action:
    """What a candidate does, given the Lease record and since when (monotonic) it has seen it unchanged."""
    if record is None:
        return Action.CREATE
    if record.holder == me:
        return Action.RENEW
    if not record.holder or now - unchanged_since >= record.duration:
        return Action.TAKE
    return Action.WAIT


def micro_time(at: datetime | None = None) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity() -> str:
    """This process among the replicas: the pod's name (its host name) and a random suffix."""
    return f"{socket.gethostname()[:200]}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Timing:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError(
                f"leader election needs 0 < retry ({self.retry}) < renew deadline ({self.renew_deadline}) "
                f"< lease duration ({self.duration})"
            )

    @property
    def attempt_timeout(self) -> float:
        """How long one try may take: a leader cut off from the API server still notices its renew
        deadline before the lease duration is over."""
        return max(self.retry, (self.duration - self.renew_deadline) / 2)

    @classmethod
    def of(cls, duration: float) -> "Timing":
        """client-go's proportions (15 / 10 / 2 s): renew deadline 2/3, retry 2/15 of the duration."""
        return cls(duration=duration, renew_deadline=duration * 2 / 3, retry=duration * 2 / 15)


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        *,
        me: str | None = None,
        timing: Timing | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.me = me or identity()
        self.timing = timing or Timing()
        self.on_change = on_change
        self.is_leader = False
        self.holder: str | None = None  # the holder as last seen
        self._seen: tuple[str, str] | None = None
        self._seen_at = 0.0
        self._renewed_at = 0.0
        self._warned: str | None = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:  # bounded: a leader cut off from the API server must notice its deadline in time
                won = await asyncio.wait_for(self._try(), self.timing.attempt_timeout)
            except TimeoutError:
                won = False
            now = time.monotonic()
            if won:
                self._renewed_at = now
                self._set(True)
            elif self.is_leader and now - self._renewed_at >= self.timing.renew_deadline:
                log.warning(
                    "could not renew the lease %s/%s for %.0fs: no longer the leader",
                    self.namespace,
                    self.name,
                    now - self._renewed_at,
                )
                self._set(False)
            pause = max(0.0, self.timing.retry - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def release(self) -> None:
        """Give the Lease up (at shutdown), so another replica takes over at once."""
        if not self.is_leader:
            return
        self._set(False)
        with contextlib.suppress(errors.KubeError):
            lease = await self.kube.get(LEASE_API, "Lease", self.name, self.namespace)
            if lease is not None and Record.of(lease).holder == self.me:
                spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
                await self._put({**lease, "spec": spec})
                log.info("released the lease %s/%s", self.namespace, self.name)

    def _set(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        if leader:
            self.holder = self.me
            log.info("leader of this cluster's agents (lease %s/%s, %s)", self.namespace, self.name, self.me)
        if self.on_change is not None:
            self.on_change(leader)

    async def _try(self) -> bool:
        try:
            lease = await self.kube.get(LEASE_API, "Lease", self.name, self.namespace)
            now = time.monotonic()
            record = Record.of(lease) if lease is not None else None
            if record is not None:
                self.holder = record.holder or None
                key = (record.holder, record.renewed)
                if key != self._seen:
                    self._seen, self._seen_at = key, now
            action = decide(record, self.me, self._seen_at, now)
            if action is Action.WAIT:
                if self.is_leader:  # another replica holds it now: this one leads no more
                    log.warning("the lease %s/%s is held by %r", self.namespace, self.name, self.holder)
                    self._set(False)
                return False
            spec = self._spec(record, action)
            if lease is None:
                body = {
                    "apiVersion": LEASE_API,
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": spec,
                }
                res = await self.kube.resource(LEASE_API, "Lease")
                await self.kube.request(
                    "POST",
                    res.path(self.namespace),
                    body=body,
                    what=f"create Lease {self.namespace}/{self.name}",
                )
            else:
                await self._put({**lease, "spec": {**(lease.get("spec") or {}), **spec}})
            if action is Action.TAKE:
                log.info("took the lease over from %r", record.holder if record else None)
            self._warned = None
            return True
        except errors.Conflict:  # another replica wrote it first: it leads
            return False
        except errors.KubeError as e:
            text = str(e)
            if text != self._warned:
                hint = " (the agent's role must allow get, create and update of leases here)"
                log.warning("leader election: %s%s", text, hint if isinstance(e, errors.Forbidden) else "")
                self._warned = text
            return False

    def _spec(self, record: Record | None, action: Action) -> dict[str, Any]:
        now = micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.me,
            "leaseDurationSeconds": max(1, round(self.timing.duration)),
            "renewTime": now,
        }
        if action is Action.RENEW and record is not None:
            spec["leaseTransitions"] = record.transitions
            return spec
        spec["acquireTime"] = now
        spec["leaseTransitions"] = (record.transitions + 1) if record is not None else 0
        return spec

    async def _put(self, lease: Mapping[str, Any]) -> None:
        res = await self.kube.resource(LEASE_API, "Lease")
        await self.kube.request(
            "PUT",
            res.path(self.namespace, self.name),
            body=dict(lease),
            what=f"update Lease {self.namespace}/{self.name}",
        )
