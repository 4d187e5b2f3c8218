"""Where each part of the assembled definition came from, and how to name it for people.

The definition is assembled from several files (the root file plus includes). Each spliced part
is "mounted" at its place in the assembled tree; a lookup walks up to the nearest mount and asks
that file's YamlDoc for the exact line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from moorage.spec.report import Location
from moorage.spec.yamlsafe import PathKey, YamlDoc


@dataclass
class SourceMap:
    mounts: dict[PathKey, tuple[YamlDoc, PathKey]] = field(default_factory=dict)

    def mount(self, at: PathKey, doc: YamlDoc, inner: PathKey = ()) -> None:
        self.mounts[at] = (doc, inner)

    def _resolve(self, path: PathKey) -> tuple[YamlDoc, PathKey] | None:
        for cut in range(len(path), -1, -1):
            found = self.mounts.get(path[:cut])
            if found is not None:
                doc, inner = found
                return doc, inner + path[cut:]
        return None

    def location(self, path: PathKey, *, key: bool = False) -> Location | None:
        found = self._resolve(path)
        if found is None:
            return None
        doc, inner = found
        return doc.location(inner, key=key)

    def file_of(self, path: PathKey) -> str | None:
        found = self._resolve(path)
        return found[0].file if found else None

    def raw(self, path: PathKey) -> str | None:
        found = self._resolve(path)
        if found is None:
            return None
        doc, inner = found
        return doc.raws.get(inner)


def display_path(root: Any, path: PathKey) -> str:
    """A path as people read it.

    ``('spec', 'stacks', 0, 'addons', 1, 'chart_version')`` becomes
    ``stacks[logging].addons[fluent-bit].chart_version``.
    """
    parts: list[str] = []
    node = root
    segments = path[1:] if path[:1] == ("spec",) else path
    if path[:1] == ("spec",) and isinstance(node, dict):
        node = node.get("spec")
    for seg in segments:
        if isinstance(seg, int):
            label = str(seg)
            child = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
            if isinstance(child, dict) and isinstance(child.get("name"), str) and child["name"]:
                label = child["name"]
            parts.append(f"[{label}]")
            node = child
        else:
            text = str(seg)
            parts.append(("." if parts else "") + text)
            node = node.get(seg) if isinstance(node, dict) else None
    return "".join(parts)
