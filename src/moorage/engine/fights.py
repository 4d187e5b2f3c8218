"""Fight detection for self-heal (issue 10, item 4): pure bookkeeping, no I/O.

A field that another field manager keeps setting (an HPA owning ``spec.replicas``, a mutating
webhook, a script running ``kubectl`` in a loop) comes back after every heal. Healing it forever
only hides the conflict, so the sweep asks a :class:`FightDetector` before each heal:

* A field is identified by its object and its drift path (:data:`FieldKey`, ``FieldChange.path``,
  where list items are named, so the key survives reordering).
* Each heal of a field is recorded. When a field drifts again after :data:`FIGHT_HEALS` heals within
  :data:`FIGHT_WINDOW`, it is **in conflict**: the sweep stops healing that field (other drift of the
  add-on still is) and reports a :class:`Conflict` naming the other manager and the
  ``ignore_differences`` entry that would end the fight.
* A conflict (and any heal history) clears once the field has not drifted for :data:`FIGHT_WINDOW`,
  or when the add-on's release revision changes (a new deploy is a new desired state).

With the agent's sweep every 60 s, a field reverted within a minute of each heal is reported after
the fourth sweep (three heals, then a fourth drift); a field edited once an hour is healed every
time. Fields whose drift is a *removal* (live lacks what the chart sets) are not tracked: managed
fields do not say who removed them, and the heal can only put them back.

The detector's memory lives as long as its owner: ``EngineContext.fights``, one per agent process.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import yaml

from moorage.engine.diffing.managedfields import managers_of
from moorage.engine.diffing.model import Path, ResourceDrift, ResourceKey, json_pointer

#: heals of one field within FIGHT_WINDOW after which its next drift is a fight
FIGHT_HEALS = 3
#: how far back heals count, and how long a field must stay quiet for its conflict to clear
FIGHT_WINDOW = timedelta(minutes=10)
#: the manager named when no other field manager owns the field: something changed it during our
#: own apply (a mutating admission webhook), so the API server recorded it as ours
UNKNOWN_MANAGER = "unknown (no other field manager owns it; a mutating webhook?)"

#: (object, drift path as in ``FieldChange.path``)
FieldKey = tuple[ResourceKey, str]


def describe_resource(key: ResourceKey) -> str:
    """``Deployment apps/web`` or ``ClusterRole viewer``: how reports name an object."""
    where = f"{key.namespace}/{key.name}" if key.namespace else key.name
    return f"{key.kind} {where}"


@dataclass(frozen=True)
class Conflict:
    """A field healed again and again: no longer healed, until it stays quiet for FIGHT_WINDOW."""

    resource: str  # "Deployment apps/web"
    path: str  # "spec.replicas" (FieldChange.path)
    manager: str  # the other field manager(s) owning the field live, comma-separated
    ignore_entry: str  # YAML for the add-on's settings.ignore_differences that ends the fight
    heals: int  # heals within FIGHT_WINDOW when the fight was detected
    since: datetime  # when it was detected


def drifting_fields(drift: Iterable[ResourceDrift]) -> set[FieldKey]:
    """The fields a heal would restore and a fight can be about: those present live (modified or
    added by someone else). Missing objects and removed fields are always healed."""
    return {
        (d.key, change.path)
        for d in drift
        if d.drift_type == "modified"
        for change in d.changes
        if change.live_pointer is not None
    }


@dataclass
class _Field:
    last_drift: datetime
    heals: deque[datetime] = field(default_factory=deque)
    since: datetime | None = None  # in conflict since
    heals_at_conflict: int = 0
    manager: str = UNKNOWN_MANAGER
    ignore_entry: str = ""


@dataclass
class _Scope:
    revision: int
    fields: dict[FieldKey, _Field] = field(default_factory=dict)


class FightDetector:
    """Per add-on (``scope``) memory of recent heals. Call :meth:`observe` with what drifts now, heal
    everything it does not return, then :meth:`healed` with what was healed."""

    def __init__(self, heals: int = FIGHT_HEALS, window: timedelta = FIGHT_WINDOW) -> None:
        if heals < 1 or window <= timedelta(0):
            raise ValueError("a fight needs at least one heal within a positive window")
        self.heals = heals
        self.window = window
        self._scopes: dict[str, _Scope] = {}

    def observe(
        self, scope: str, revision: int, drifting: Iterable[FieldKey], now: datetime
    ) -> frozenset[FieldKey]:
        """Record that `drifting` fields drift at `now`; returns those in conflict (not to heal)."""
        state = self._scopes.get(scope)
        if state is None or state.revision != revision:
            state = self._scopes[scope] = _Scope(revision)
        current = set(drifting)
        for key, seen in list(state.fields.items()):
            # quiet for the window: forgotten, its conflict cleared. Also when it drifts now: the
            # sweep observes an add-on only when something of it drifts, so a gap is quiet time.
            if now - seen.last_drift >= self.window:
                del state.fields[key]
        held = set()
        for key in current:
            known = state.fields.setdefault(key, _Field(now))
            known.last_drift = now
            while known.heals and now - known.heals[0] >= self.window:
                known.heals.popleft()
            if known.since is None and len(known.heals) >= self.heals:
                known.since, known.heals_at_conflict = now, len(known.heals)
            if known.since is not None:
                held.add(key)
        if not state.fields:
            del self._scopes[scope]
        return frozenset(held)

    def healed(self, scope: str, fields: Iterable[FieldKey], now: datetime) -> None:
        """Record a heal of each field (fields :meth:`observe` did not see are ignored)."""
        state = self._scopes.get(scope)
        if state is None:
            return
        for key in fields:
            known = state.fields.get(key)
            if known is not None and known.since is None:
                known.heals.append(now)

    def describe(self, scope: str, key: FieldKey, manager: str, ignore_entry: str) -> None:
        """Who else owns a field in conflict, and the ignore entry that ends it (from the live object)."""
        state = self._scopes.get(scope)
        known = state.fields.get(key) if state else None
        if known is not None:
            known.manager, known.ignore_entry = manager, ignore_entry

    def conflicts(self, scope: str) -> list[Conflict]:
        state = self._scopes.get(scope)
        if state is None:
            return []
        return [
            Conflict(
                describe_resource(key[0]), key[1], f.manager, f.ignore_entry, f.heals_at_conflict, f.since
            )
            for key, f in sorted(state.fields.items(), key=lambda item: (tuple(item[0][0]), item[0][1]))
            if f.since is not None
        ]

    def forget(self, scope: str) -> None:
        self._scopes.pop(scope, None)


# ---------------------------------------------------------------------------- conflict details


def other_managers(live: Mapping[str, Any], path: Path, own: Iterable[str]) -> str:
    """The field managers other than ours that own `path` in `live`, comma-separated."""
    others = sorted(managers_of(live, path) - frozenset(own))
    return ", ".join(others) if others else UNKNOWN_MANAGER


_JQ_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def jq_path_expression(live: Mapping[str, Any], path: Path) -> str:
    """A jq path expression for `path` of `live` that names list items by ``name`` where they have
    one (``.spec.template.spec.containers[] | select(.name == "web") | .image``), so it still
    designates the same field after the list is reordered."""
    stages: list[str] = []
    stage = ""
    node: Any = live
    for step in path:
        if isinstance(step, int):
            name = _unique_name(node, step)
            if name is None:
                stage += f".[{step}]" if not stage else f"[{step}]"
            else:
                stages += [f"{stage or '.'}[]", f"select(.name == {json.dumps(name)})"]
                stage = ""
        else:
            stage += f".{step}" if _JQ_PLAIN.match(step) else f".{json.dumps(step)}"
        node = node[step]
    if stage:
        stages.append(stage)
    return " | ".join(stages) or "."


def _unique_name(items: Sequence[Any], index: int) -> str | None:
    names = [item.get("name") if isinstance(item, Mapping) else None for item in items]
    name = names[index]
    if isinstance(name, str) and names.count(name) == 1:
        return name
    return None


def ignore_entry(key: ResourceKey, live: Mapping[str, Any], path: Path) -> str:
    """The ``settings.ignore_differences`` entry (YAML, a one-item list to paste) that stops `path`
    of this object from counting as drift: a JSON pointer, or a jq expression when the path goes
    through list items."""
    entry: dict[str, Any] = {}
    if key.group:
        entry["group"] = key.group
    entry["kind"] = key.kind
    entry["name"] = key.name
    if key.namespace:
        entry["namespace"] = key.namespace
    if any(isinstance(step, int) for step in path):
        entry["jq_path_expressions"] = [jq_path_expression(live, path)]
    else:
        entry["json_pointers"] = [json_pointer(path)]
    text: str = yaml.safe_dump([entry], sort_keys=False, default_flow_style=False, width=1000)
    return text
