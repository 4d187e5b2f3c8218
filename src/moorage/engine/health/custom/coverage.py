"""Kinds nothing really judges: no dedicated rule, no user check, and no kstatus fields to read.

Such an object reads Healthy ("exists") by the generic rule — ankra-spec §5.6 — although nothing was
checked. The migration preview and ``moorage health test`` list them as "not covered", with the answer
the generic rule gave, so a team knows where a user check would help.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moorage.engine.health.custom.checks import Checks
from moorage.engine.health.types import Health, section, text

__all__ = ["NotCovered", "has_kstatus_fields", "not_covered"]


@dataclass(frozen=True)
class NotCovered:
    group: str
    kind: str
    objects: tuple[str, ...]  # "namespace/name" of each object of that kind
    answer: Health  # what the generic rule said about the first of them

    @property
    def display(self) -> str:
        return f"{self.group}/{self.kind}" if self.group else self.kind

    def __str__(self) -> str:
        return f"{self.display} ({len(self.objects)}): judged by the generic rule: {self.answer}"


def has_kstatus_fields(obj: Mapping[str, Any]) -> bool:
    """Whether the generic rule has anything to read: status conditions, an observed generation, or
    ``spec.suspend``."""
    status = section(obj, "status")
    conditions = status.get("conditions")
    return (
        (isinstance(conditions, list) and bool(conditions))
        or "observedGeneration" in status
        or isinstance(section(obj, "spec").get("suspend"), bool)
    )


def not_covered(
    objects: Iterable[Mapping[str, Any] | None], now: datetime, checks: Checks | None = None
) -> list[NotCovered]:
    """One entry per kind among ``objects`` that has no dedicated rule, no user check in ``checks``,
    and — on every object of that kind — no kstatus fields; sorted by group and kind."""
    from moorage.engine.health import assess, group_kind, has_rule  # cycle at import

    found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    covered: set[tuple[str, str]] = set()
    for obj in objects:
        if not isinstance(obj, Mapping):
            continue
        key = group_kind(obj)
        if not key[1] or has_rule(*key) or (checks is not None and checks.for_kind(*key) is not None):
            continue
        if has_kstatus_fields(obj):
            covered.add(key)
        found.setdefault(key, []).append(obj)
    out = []
    for key in sorted(found):
        if key in covered:
            continue
        members = found[key]
        names = tuple(
            "/".join(
                p
                for p in (
                    text(section(o, "metadata").get("namespace")),
                    text(section(o, "metadata").get("name")),
                )
                if p
            )
            for o in members
        )
        out.append(NotCovered(key[0], key[1], names, assess(members[0], now)))
    return out
