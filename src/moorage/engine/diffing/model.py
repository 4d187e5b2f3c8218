"""Result types of the drift diff, shaped like ankra-spec §5.6 ``drift_resources[]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

#: A concrete location inside one object: map keys are ``str``, list positions are ``int``.
Path = tuple[str | int, ...]

DriftType = Literal["missing", "modified"]
#: ``modified``: both sides set, values differ. ``added``: only live has it (an out-of-band addition,
#: owned by a foreign manager; ``helm upgrade`` does not remove such fields, so healing needs a patch).
#: ``removed``: desired sets it, live lacks it.
ChangeType = Literal["modified", "added", "removed"]


def json_pointer(path: Path) -> str:
    """RFC 6901 pointer of ``path`` (``~`` → ``~0``, ``/`` → ``~1``)."""
    return "".join("/" + str(e).replace("~", "~0").replace("/", "~1") for e in path)


class ResourceKey(NamedTuple):
    """How desired and live objects are paired. ``group`` (not apiVersion) so that a live object
    read at another version of the same API still pairs; ``namespace`` is ``""`` when cluster-scoped
    (the convention of ``moorage.engine.objects.ObjectKey``)."""

    group: str
    kind: str
    namespace: str
    name: str


def api_group(api_version: str) -> str:
    """``apps/v1`` → ``apps``; ``v1`` (the core group) → ``""``."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class FieldChange:
    """One drifted field. ``path`` is human-readable (see ``compare.format_path``); ``None``
    stands for "absent on that side". Secret values arrive here already masked."""

    path: str
    desired: Any
    live: Any
    change: ChangeType = "modified"
    #: where the field is in the live object as read (None when live lacks it); lets a healer
    #: build a JSON patch for ``added`` fields
    live_pointer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "desired": self.desired,
            "live": self.live,
            "change": self.change,
            "live_pointer": self.live_pointer,
        }


@dataclass(frozen=True)
class ResourceDrift:
    api_version: str
    kind: str
    namespace: str  # "" when cluster-scoped
    name: str
    drift_type: DriftType
    changes: tuple[FieldChange, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(change.path for change in self.changes)

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(api_group(self.api_version), self.kind, self.namespace, self.name)

    def to_dict(self) -> dict[str, Any]:
        """The wire shape of §5.6 plus ``changes`` (the per-field values, masked for Secrets)."""
        return {
            "api_version": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "drift_type": self.drift_type,
            "paths": list(self.paths),
            "changes": [change.to_dict() for change in self.changes],
        }
