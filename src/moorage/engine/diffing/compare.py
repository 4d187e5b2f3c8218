"""The tree walk: desired vs live, both already normalised and ignore-pruned.

Rules (each one is there to avoid a false positive or a false negative seen in practice):

* A field set in desired whose live value differs is a change (``live`` = None when absent).
* A desired ``null`` means "not set" (server-side apply drops it). A desired zero value (``false``,
  ``0``, ``""``, ``[]``, ``{}``) that is absent live is not drift: Go's ``omitempty`` drops it on the
  server. Exception: entries of free-form string maps (labels, annotations, data…), where an
  empty value is a real value.
* Live-only fields are server defaults and not drift, unless a *foreign* manager (see
  ``managedfields.foreign_entries``) owns them: then they are an out-of-band edit
  (``kubectl edit`` adding a label). Reported as precisely as ownership allows: a foreign label,
  not the whole labels map; a foreign env item as a whole.
* A difference on a field owned by an ignored manager (``managed_fields_managers``) is not drift.
* Lists whose items are all maps with a unique string ``name`` (containers, env, ports, volumes)
  are matched by name, other lists by position.
* Secret ``data``/``stringData`` values are replaced by :data:`SECRET_PLACEHOLDER` before they
  reach a :class:`FieldChange`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.engine.diffing.managedfields import Ownership
from moorage.engine.diffing.model import ChangeType, FieldChange, Path, json_pointer
from moorage.engine.diffing.values import is_quantity_location, scalars_equal

SECRET_PLACEHOLDER = "(secret value changed)"  # noqa: S105 - a mask, not a password
SECRET_FIELDS: frozenset[str] = frozenset({"data", "stringData"})
FREEFORM_MAPS: frozenset[str] = frozenset(
    {"labels", "annotations", "data", "binaryData", "stringData", "matchLabels", "nodeSelector"}
)

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.:/@-]+$")
_ABSENT: Any = object()
#: Stands in for a live list item removed by an ignore rule (``remove_paths(list_placeholder=…)``),
#: so that the remaining items keep their positions in the object as read.
IGNORED_ITEM: Any = object()

#: Display segments: ``".key"``, ``'["odd.key"]'``, ``"[name]"``, ``"[3]"``.
Display = tuple[str, ...]


def format_key(key: str) -> str:
    return f".{key}" if _PLAIN_KEY.match(key) else f"[{json.dumps(key)}]"


def format_item(name: str | None, index: int) -> str:
    if name is None:
        return f"[{index}]"
    plain = _PLAIN_NAME.match(name) and not name.isdigit()
    return f"[{name}]" if plain else f"[{json.dumps(name)}]"


def format_path(display: Display) -> str:
    return "".join(display).removeprefix(".")


def present(items: list[Any]) -> list[tuple[int, Any]]:
    """(position, item) of the items not removed by an ignore rule."""
    return [(index, item) for index, item in enumerate(items) if item is not IGNORED_ITEM]


def named_items(items: list[tuple[int, Any]]) -> dict[str, int] | None:
    """name → position when every item is a map with a unique string ``name``, else None."""
    names: dict[str, int] = {}
    for index, item in items:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or name in names:
            return None
        names[name] = index
    return names


def _is_zero(value: Any) -> bool:
    return value is False or value == 0 or value in ("", [], {})


@dataclass
class Walk:
    """One comparison. ``foreign`` must exclude the ignored managers; ``ignored`` holds only them."""

    foreign: Ownership
    ignored: Ownership
    secret: bool = False
    changes: list[FieldChange] = field(default_factory=list)

    def run(self, desired: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[FieldChange, ...]:
        self._map(desired, live, (), ())
        return tuple(self.changes)

    # ------------------------------------------------------------------ both sides present

    def _value(self, desired: Any, live: Any, path: Path, display: Display) -> None:
        if isinstance(desired, Mapping) and isinstance(live, Mapping):
            self._map(desired, live, path, display)
        elif isinstance(desired, list) and isinstance(live, list):
            self._list(desired, live, path, display)
        elif not self._same_leaf(desired, live, path):
            self._record(path, display, desired, live)

    def _same_leaf(self, desired: Any, live: Any, path: Path) -> bool:
        # a difference on a field that an ignored manager owns is not drift
        return scalars_equal(desired, live, quantity=is_quantity_location(path)) or bool(
            self.ignored.owners(path)
        )

    def _map(self, desired: Mapping[str, Any], live: Mapping[str, Any], path: Path, display: Display) -> None:
        parent = path[-1] if path else None
        # key=str: YAML may give non-string keys (``80: x``) that the API server would refuse
        for key in sorted(set(desired) | set(live), key=str):
            sub_path, sub_display = (*path, key), (*display, format_key(str(key)))
            wanted = desired.get(key)
            if wanted is None:  # absent, or null = "not set"
                if key in live:
                    self._live_only(live[key], sub_path, sub_display)
            elif key in live:
                self._value(wanted, live[key], sub_path, sub_display)
            elif parent in FREEFORM_MAPS or not _is_zero(wanted):
                self._record(sub_path, sub_display, wanted, _ABSENT)

    def _list(self, desired: list[Any], live: list[Any], path: Path, display: Display) -> None:
        # desired positions are only shown; live positions are kept for ownership and pointers
        desired_items, live_items = list(enumerate(desired)), present(live)
        desired_names, live_names = named_items(desired_items), named_items(live_items)
        if desired_names is None or live_names is None:
            self._list_by_index(desired, live_items, path, display)
            return
        for name, index in desired_names.items():
            label = format_item(name, index)
            if name in live_names:
                at = live_names[name]
                self._value(desired[index], live[at], (*path, at), (*display, label))
            else:
                self._record((*path, label), (*display, label), desired[index], _ABSENT)
        for name, at in live_names.items():
            if name not in desired_names:
                self._live_only(live[at], (*path, at), (*display, format_item(name, at)))

    def _list_by_index(
        self, desired: list[Any], live_items: list[tuple[int, Any]], path: Path, display: Display
    ) -> None:
        for index in range(max(len(desired), len(live_items))):
            sub_display = (*display, format_item(None, index))
            if index >= len(live_items):
                self._record((*path, index), sub_display, desired[index], _ABSENT)
                continue
            at, item = live_items[index]
            if index >= len(desired):
                self._live_only(item, (*path, at), sub_display)
            else:
                self._value(desired[index], item, (*path, at), sub_display)

    # ------------------------------------------------------------------ live only

    def _live_only(self, value: Any, path: Path, display: Display) -> None:
        if not self.foreign.owners_within(path):
            return  # a server default, or written by us or by a controller
        is_item = isinstance(path[-1], int)
        if self.foreign.owns_whole(path) or (is_item and self.foreign.owners(path)):
            self._record(path, display, _ABSENT, value)
        elif isinstance(value, Mapping):
            for key in sorted(value, key=str):
                self._live_only(value[key], (*path, key), (*display, format_key(str(key))))
        elif isinstance(value, list):
            items = present(value)
            names = named_items(items)
            for index, item in items:
                name = item["name"] if names is not None else None
                self._live_only(item, (*path, index), (*display, format_item(name, index)))
        else:
            self._record(path, display, _ABSENT, value)

    # ------------------------------------------------------------------ output

    def _record(self, path: Path, display: Display, desired: Any, live: Any) -> None:
        """``path`` is the live location (where it would be, when live lacks the field)."""
        masked = self.secret and path[0] in SECRET_FIELDS
        change: ChangeType = "removed" if live is _ABSENT else "added" if desired is _ABSENT else "modified"
        self.changes.append(
            FieldChange(
                path=format_path(display),
                desired=_shown(desired, masked=masked),
                live=_shown(live, masked=masked),
                change=change,
                live_pointer=None if live is _ABSENT else json_pointer(path),
            )
        )


def _shown(value: Any, *, masked: bool) -> Any:
    if value is _ABSENT:
        return None
    return SECRET_PLACEHOLDER if masked else value
