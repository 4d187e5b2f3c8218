"""What the engine reports per plan entry, per sync and per sweep."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EntryStatus(StrEnum):
    APPLIED = "applied"  # changed the cluster
    UNCHANGED = "unchanged"  # already as desired: nothing ran
    FAILED = "failed"
    BLOCKED = "blocked"  # a parent (or a lower wave) did not succeed
    CANCELLED = "cancelled"  # e.g. outside its sync window
    PLANNED = "planned"  # dry run: would change
    WAITING = "waiting"  # differs, but waits for a person: a manual sync, or a rollback being held


OK_STATUSES = frozenset(
    {EntryStatus.APPLIED, EntryStatus.UNCHANGED, EntryStatus.PLANNED, EntryStatus.WAITING}
)


@dataclass
class EntryOutcome:
    ref: str  # "addon/web", "manifest/namespaces"
    status: EntryStatus
    message: str
    reason: str | None = None  # machine-readable: outside_sync_window, blocked_by_parent, …
    health: str | None = None
    health_reason: str | None = None
    attempts: int = 0
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # pruning refused, with the reason
    adopted: list[str] = field(default_factory=list)  # existing objects the release took over
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": str(self.status),
            "message": self.message,
            "reason": self.reason,
            "health": self.health,
            "health_reason": self.health_reason,
            "attempts": self.attempts,
            "pruned": self.pruned,
            "kept": self.kept,
            "adopted": self.adopted,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SyncResult:
    outcomes: dict[str, EntryOutcome] = field(default_factory=dict)
    pruned_entries: list[str] = field(default_factory=list)  # manifest entries removed from the definition
    pruned_addons: list[str] = field(default_factory=list)  # add-ons removed from it, releases uninstalled
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes.values())


@dataclass
class Heartbeat:
    last_sweep_at: datetime
    sweep_duration_seconds: float
    addons_inspected: int
    drifted: int = 0
    healed: int = 0
    pruned: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_sweep_at": self.last_sweep_at.isoformat(),
            "sweep_duration_seconds": round(self.sweep_duration_seconds, 3),
            "addons_inspected": self.addons_inspected,
            "drifted": self.drifted,
            "healed": self.healed,
            "pruned": self.pruned,
            "recovered": self.recovered,
            "errors": self.errors,
        }
