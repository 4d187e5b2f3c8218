"""Vocabulary of the health rules, and the small helpers every rule shares.

Rules read live objects as the API server returns them (plain mappings, camelCase keys)
and never trust their shape: a missing or malformed field is treated as absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "SEVERITY",
    "AddonHealth",
    "Condition",
    "Context",
    "Health",
    "HealthStatus",
]


class HealthStatus(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    SUSPENDED = "Suspended"
    MISSING = "Missing"
    UNKNOWN = "Unknown"


#: Worst first. Why this order:
#:
#: * **Degraded** is a definite failure with a cause someone must act on; it must never be
#:   hidden behind anything else.
#: * **Missing**: a resource the add-on needs does not exist, so the add-on cannot work —
#:   but it is often a step in progress (not created yet), hence below Degraded.
#: * **Progressing** is expected to resolve by itself (and turns Degraded at its deadline).
#: * **Suspended** is a deliberate pause by a person (paused rollout, suspended Job): the
#:   add-on does not converge, but by intent.
#: * **Unknown** means we could not tell (e.g. a Pod whose node stopped reporting). It ranks
#:   below every definite state so that it never masks an actionable message, while still
#:   keeping the add-on from reading Healthy.
#: * **Healthy**.
SEVERITY: tuple[HealthStatus, ...] = (
    HealthStatus.DEGRADED,
    HealthStatus.MISSING,
    HealthStatus.PROGRESSING,
    HealthStatus.SUSPENDED,
    HealthStatus.UNKNOWN,
    HealthStatus.HEALTHY,
)
_RANK = {status: rank for rank, status in enumerate(SEVERITY)}


def rank(status: HealthStatus) -> int:
    """0 for the worst status (Degraded) … 5 for Healthy."""
    return _RANK[status]


@dataclass(frozen=True)
class Health:
    """A status and a sentence a person understands."""

    status: HealthStatus
    reason: str

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


@dataclass(frozen=True)
class AddonHealth:
    """The health of one add-on: the worst of its resources.

    ``acceptable`` tells a deploy whether it may count as successful:

    * ``strict_health_check`` on: only Healthy (ankra-spec §5.4: "Progressing is not enough");
    * off: anything but Degraded or Missing. Progressing, Suspended and Unknown are accepted
      because without strict checking success means "applied" (§5.4); a resource that is
      Missing after the apply, or Degraded, means the apply did not produce a working add-on.
    """

    status: HealthStatus
    reason: str
    acceptable: bool
    resources: tuple[tuple[str, Health], ...] = ()
    resource: str | None = None
    """The resource that decided the status (None when all are Healthy or there are none)."""


@dataclass(frozen=True)
class Context:
    now: datetime
    progress_deadline: timedelta


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition: datetime | None
    last_update: datetime | None

    @property
    def true(self) -> bool:
        return self.status == "True"

    @property
    def false(self) -> bool:
        return self.status == "False"

    def describe(self) -> str:
        """``Reason: message`` (or whichever of the two exists)."""
        return ": ".join(part for part in (self.reason, self.message) if part) or f"{self.type}={self.status}"


# --------------------------------------------------------------------------- field access


def section(obj: Mapping[str, Any] | None, *path: str) -> Mapping[str, Any]:
    """The mapping at ``path``, or an empty mapping if absent or not a mapping."""
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return {}
        current = current.get(key)
    return current if isinstance(current, Mapping) else {}


def integer(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def optional_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes it (``2024-05-01T10:00:00Z``)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def conditions_of(raw: Any) -> list[Condition]:
    return [
        Condition(
            type=text(c.get("type")),
            status=text(c.get("status")),
            reason=text(c.get("reason")),
            message=text(c.get("message")).strip(),
            last_transition=parse_time(c.get("lastTransitionTime")),
            last_update=parse_time(c.get("lastUpdateTime")),
        )
        for c in items(raw)
    ]


def conditions(obj: Mapping[str, Any]) -> list[Condition]:
    return conditions_of(section(obj, "status").get("conditions"))


def find(conds: Iterable[Condition], type_: str) -> Condition | None:
    for cond in conds:
        if cond.type == type_:
            return cond
    return None


def generation_lag(obj: Mapping[str, Any]) -> Health | None:
    """Progressing while the controller has not yet observed the latest spec."""
    generation = optional_int(section(obj, "metadata").get("generation"))
    observed = optional_int(section(obj, "status").get("observedGeneration"))
    if generation is None or observed is None or observed >= generation:
        return None
    return Health(
        HealthStatus.PROGRESSING,
        f"waiting for the controller to observe generation {generation} (it has seen {observed})",
    )


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def names(values: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"


def human_duration(delta: timedelta) -> str:
    """``45s``, ``12m``, ``1h05m``, ``2d3h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" if sec == 0 or minutes >= 10 else f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


# --------------------------------------------------------------------------- deadlines


def last_activity(obj: Mapping[str, Any], conds: Iterable[Condition] | None = None) -> datetime | None:
    """When the resource last showed a sign of change: the newest condition transition or
    update, the newest managedFields write (an apply or a status update by its controller),
    or else its creation."""
    stamps: list[datetime] = []
    for cond in conditions(obj) if conds is None else conds:
        stamps.extend(t for t in (cond.last_transition, cond.last_update) if t is not None)
    metadata = section(obj, "metadata")
    for entry in items(metadata.get("managedFields")):
        stamp = parse_time(entry.get("time"))
        if stamp is not None:
            stamps.append(stamp)
    if stamps:
        return max(stamps)
    return parse_time(metadata.get("creationTimestamp"))


def with_deadline(
    health: Health,
    obj: Mapping[str, Any],
    ctx: Context,
    *,
    since: datetime | None = None,
    conds: Iterable[Condition] | None = None,
) -> Health:
    """Turn Progressing into Degraded once it has lasted ``ctx.progress_deadline``.

    The clock starts at ``since`` if given, else at :func:`last_activity`. Without any
    timestamp the health is returned unchanged (we cannot tell how long it has lasted).
    """
    if health.status is not HealthStatus.PROGRESSING:
        return health
    start = since if since is not None else last_activity(obj, conds)
    if start is None:
        return health
    elapsed = ctx.now - start
    if elapsed < ctx.progress_deadline:
        return health
    return Health(
        HealthStatus.DEGRADED,
        f"{health.reason}; no progress for {human_duration(elapsed)} "
        f"(deadline {human_duration(ctx.progress_deadline)})",
    )
