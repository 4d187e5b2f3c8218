"""Which live objects may be deleted: pure decisions, so that "never delete on doubt" is testable.

An object is deleted only when every one of these holds:
- it is a candidate: recorded as ours earlier (inventory or an earlier release revision) and absent
  from the desired set now;
- the desired set is not empty (an empty render is more likely a mistake than an intent);
- the live object still exists with the very UID we recorded (or, for Helm, carries the release's
  ownership annotations) — not a namesake created by someone else;
- its kind is not protected (PersistentVolumeClaim, Namespace, CustomResourceDefinition), unless the
  object itself says `moorage.dev/allow-prune: "true"`;
- it does not ask to be kept (`helm.sh/resource-policy: keep`)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moorage.engine.objects import ObjectKey

PROTECTED_KINDS = frozenset(
    {("", "PersistentVolumeClaim"), ("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")}
)
ALLOW_ANNOTATION = "moorage.dev/allow-prune"
GUARD_MANAGER = "moorage-prune-guard"  # the field manager of engine/pruneguard.py


def guarded_by_us(obj: Mapping[str, Any]) -> bool:
    """True when a live object's `helm.sh/resource-policy: keep` was set by Moorage's prune guard
    (auto_prune off), not by the chart: such an object may still be pruned once auto_prune is on."""
    owners = set()
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:annotations") or {}
        if "f:helm.sh/resource-policy" in fields:
            owners.add(entry.get("manager"))
    # shared with the chart (or anyone) means the chart asked for it too: theirs, not ours
    return owners == {GUARD_MANAGER}


@dataclass(frozen=True)
class Candidate:
    api_version: str
    key: ObjectKey
    uid: str | None  # recorded UID; None when only the owner annotations can prove ownership
    owner: Mapping[str, str]  # annotations that must match on the live object


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    delete: bool
    reason: str
    uid: str | None = None  # the live UID to delete with (a precondition)


def decide(
    candidates: Iterable[Candidate],
    desired: set[ObjectKey],
    live: Mapping[ObjectKey, Mapping[str, Any] | None],
) -> list[Decision]:
    decisions = []
    for c in candidates:
        decisions.append(_decide_one(c, desired, live.get(c.key)))
    return decisions


def _decide_one(c: Candidate, desired: set[ObjectKey], obj: Mapping[str, Any] | None) -> Decision:
    if not desired:
        return Decision(c, False, "kept: the desired set is empty, which looks like a mistake, not an intent")
    if c.key in desired:
        return Decision(c, False, "kept: still desired")
    if obj is None:
        return Decision(c, False, "already gone")
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    live_uid = meta.get("uid")
    if meta.get("deletionTimestamp"):
        return Decision(c, False, "already being deleted")
    if c.uid is not None and live_uid != c.uid:
        return Decision(
            c, False, "kept: a different object with this name exists (UID changed); ownership not proven"
        )
    if c.uid is None and not c.owner:
        return Decision(c, False, "kept: ownership not proven")
    for name, value in c.owner.items():
        if annotations.get(name) != value:
            return Decision(c, False, f"kept: annotation {name} is not {value!r}; ownership not proven")
    if (c.key.group, c.key.kind) in PROTECTED_KINDS and annotations.get(ALLOW_ANNOTATION) != "true":
        return Decision(
            c, False, f'kept: {c.key.kind} is never pruned unless annotated {ALLOW_ANNOTATION}: "true"'
        )
    if annotations.get("helm.sh/resource-policy") == "keep" and not guarded_by_us(obj):
        return Decision(c, False, "kept: helm.sh/resource-policy is keep")
    return Decision(c, True, "no longer desired", uid=live_uid)
