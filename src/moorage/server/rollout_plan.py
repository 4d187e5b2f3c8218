"""Fleet roll-forward, the pure decision (issue 12, item 6): given the newest published agent chart
version, the clusters (online or not, the chart version their agent reports, opted out or not) and
the roll-forward's own Upgrade Agent operations towards that version, which clusters to upgrade now,
as which batch, and when to stop.

The plan is derived from the database every round, never held in a replica's memory: a cluster whose
agent reports the target (or newer) is done; one with a roll-forward operation still running, or
succeeded and not yet reported, is upgrading; a failed operation, or no report within
`report_within` after it succeeded, is a failure and stops the whole roll-out (no new batch starts)
until a newer version is published. Batches run one after the other: the next starts when the
previous one is all done and `pause` has passed since its last upgrade finished. Offline agents and
those not installed with the chart are left out (an offline one joins a later batch once back);
opted-out clusters are never touched.

Versions compare as semver MAJOR.MINOR.PATCH; pre-releases (`1.2.0-rc.1`) are not rolled out unless
`prereleases` is asked for, build metadata (`+…`) is ignored."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

_SEMVER = re.compile(
    r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)
FINAL_FAILED = frozenset({"failed", "critical", "cancelled"})

Status = Literal["current", "pending", "upgrading", "upgraded", "failed", "opted_out", "offline", "no_chart"]
State = Literal["up_to_date", "rolling", "paused", "done", "failed"]
# a version as a sort key: (major, minor, patch, is-release, pre-release identifiers)
Key = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def version_key(text: str, *, prereleases: bool = False) -> Key | None:
    """The sort key of a semver version, or None when it is none (or a pre-release not asked for)."""
    m = _SEMVER.match(text.strip())
    if m is None:
        return None
    pre = m.group(4)
    if pre is not None and not prereleases:
        return None
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in (pre or "").split(".") if p)
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, parts


def newest(versions: Iterable[str], *, prereleases: bool = False) -> str | None:
    """The highest version among `versions` (tags or index entries); None when none is one."""
    keyed = [(k, v) for v in versions if (k := version_key(v, prereleases=prereleases)) is not None]
    return max(keyed)[1].removeprefix("v") if keyed else None


@dataclass(frozen=True)
class Member:
    """A cluster as the plan sees it."""

    name: str
    online: bool
    chart_version: str | None  # what its agent's heartbeat reports (None: not installed with the chart)
    roll_forward: bool = True  # False: opted out


@dataclass(frozen=True)
class Attempt:
    """The roll-forward's latest Upgrade Agent operation of one cluster towards the target."""

    cluster: str
    batch: int
    state: str  # the operation's state
    created_at: datetime
    finished_at: datetime | None = None
    operation_id: str = ""
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    batch_size: int = 5
    pause: timedelta = timedelta(seconds=60)
    report_within: timedelta = timedelta(seconds=300)
    prereleases: bool = False


@dataclass(frozen=True)
class Entry:
    cluster: str
    status: Status
    chart_version: str | None
    batch: int | None = None
    reason: str = ""
    operation_id: str | None = None


@dataclass(frozen=True)
class Plan:
    target: str
    state: State
    entries: tuple[Entry, ...]
    start: tuple[str, ...] = ()  # clusters to upgrade now, as batch `batch`
    batch: int | None = None
    failure: str | None = None
    next_batch_at: datetime | None = None
    batches: tuple[tuple[str, ...], ...] = field(default=())  # clusters of each batch so far, in order


def _entry(
    member: Member, attempt: Attempt | None, target: str, tkey: Key, policy: Policy, now: datetime
) -> Entry:
    version = member.chart_version
    if not member.roll_forward:
        return Entry(member.name, "opted_out", version, reason="opted out of the roll-forward")
    if version is None:
        return Entry(
            member.name,
            "no_chart",
            None,
            reason="its agent reports no chart version (not installed with the chart)",
        )
    key = version_key(version, prereleases=True)
    reached = key is not None and key >= tkey
    if attempt is not None:
        batch, op = attempt.batch, attempt.operation_id
        if reached:
            return Entry(member.name, "upgraded", version, batch=batch, operation_id=op)
        if attempt.state in FINAL_FAILED:
            why = attempt.messages[-1] if attempt.messages else f"the upgrade ended {attempt.state}"
            return Entry(member.name, "failed", version, reason=why, batch=batch, operation_id=op)
        if attempt.state == "success":
            since = attempt.finished_at or attempt.created_at
            if now - since > policy.report_within:
                why = (
                    f"the upgrade to {target} was applied, but its agent did not report chart {target} "
                    f"within {policy.report_within.total_seconds():.0f} s (it reports {version}): "
                    "check the agent's pods"
                )
                return Entry(member.name, "failed", version, reason=why, batch=batch, operation_id=op)
            return Entry(
                member.name,
                "upgrading",
                version,
                reason="waiting for the new agent's report",
                batch=batch,
                operation_id=op,
            )
        return Entry(
            member.name, "upgrading", version, reason=f"upgrade {attempt.state}", batch=batch, operation_id=op
        )
    if key is None:
        return Entry(
            member.name, "no_chart", version, reason=f"its agent reports chart {version!r}, not a version"
        )
    if reached:
        return Entry(member.name, "current", version)
    if not member.online:
        return Entry(member.name, "offline", version, reason="its agent is offline; upgraded once it is back")
    return Entry(member.name, "pending", version)


def decide(
    target: str,
    members: Sequence[Member],
    attempts: Mapping[str, Attempt],
    policy: Policy,
    now: datetime,
) -> Plan:
    """What the roll-forward to `target` does now. `attempts`: cluster name → its latest roll-forward
    operation towards `target`."""
    tkey = version_key(target, prereleases=True)
    if tkey is None:
        raise ValueError(f"target {target!r} is not a semver version")
    if policy.batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    entries = tuple(
        _entry(m, attempts.get(m.name), target, tkey, policy, now)
        for m in sorted(members, key=lambda m: m.name)
    )
    done = [a for a in attempts.values() if a.cluster in {m.name for m in members}]
    last = max((a.batch for a in done), default=0)
    batches = tuple(tuple(sorted(a.cluster for a in done if a.batch == n)) for n in range(1, last + 1))
    failed = sorted((e for e in entries if e.status == "failed"), key=lambda e: (e.batch or 0, e.cluster))
    if failed:
        first = failed[0]
        failure = f"cluster {first.cluster} (batch {first.batch}): {first.reason}"
        return Plan(state="failed", failure=failure, target=target, entries=entries, batches=batches)
    if any(e.status == "upgrading" for e in entries):
        return Plan(state="rolling", batch=last, target=target, entries=entries, batches=batches)
    pending = [e.cluster for e in entries if e.status == "pending"]
    if not pending:
        return Plan(state="done" if done else "up_to_date", target=target, entries=entries, batches=batches)
    if last:
        finished = max(a.finished_at or a.created_at for a in done if a.batch == last)
        ready = finished + policy.pause
        if now < ready:
            return Plan(
                state="paused",
                batch=last,
                next_batch_at=ready,
                target=target,
                entries=entries,
                batches=batches,
            )
    start = tuple(pending[: policy.batch_size])
    return Plan(state="rolling", start=start, batch=last + 1, target=target, entries=entries, batches=batches)
