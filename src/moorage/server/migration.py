"""Confirming a migration from Argo CD (`moorage cluster migrate NAME --confirm`): the cluster's last
applied definition with the ArgoCD engine switched off, as the user would edit it by hand — the root
file's `spec.deployment_engine: argo_cd` becomes `ankra_native`, and `settings.engine: argo_cd` is
removed from every add-on entry (a mapping with a `chart_name`) in every file. Comments, key order and
the other lines stay (round-trip YAML); SOPS-encrypted files are never rewritten (their MAC covers
them). Applying the result migrates each eligible add-on at the next sync (engine/migrate.py).

Pure: files in, files out. Definitions kept in Git are not edited here: Git is their truth, so the
change is made there (by hand or with `moorage stacks`)."""

from collections.abc import Iterator, Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap

from moorage.server.stacks.yamlrt import RoundTrip, YamlEditError

ARGO, NATIVE = "argo_cd", "ankra_native"


def _mappings(node: Any) -> Iterator[CommentedMap]:
    if isinstance(node, CommentedMap):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _mappings(item)


def _switch(doc: Any, path: str, root: bool) -> list[str]:
    changed = []
    spec = doc.get("spec") if root and isinstance(doc, CommentedMap) else None
    if isinstance(spec, CommentedMap) and spec.get("deployment_engine") == ARGO:
        spec["deployment_engine"] = NATIVE
        changed.append(f"{path}: spec.deployment_engine {ARGO} → {NATIVE}")
    for entry in _mappings(doc):
        settings = entry.get("settings")
        if "chart_name" in entry and isinstance(settings, CommentedMap) and settings.get("engine") == ARGO:
            del settings["engine"]
            if not settings:
                del entry["settings"]
            changed.append(f"{path}: add-on {entry.get('name')}: settings.engine {ARGO} removed")
    return changed


def to_native(files: Mapping[str, str], root: str) -> tuple[dict[str, str], list[str]]:
    """`files` with the ArgoCD engine switched to the native one, and what changed ("file: what")."""
    out, changes = dict(files), []
    for path, text in sorted(files.items()):
        if not path.endswith((".yaml", ".yml")) or ARGO not in text:
            continue
        try:
            edited = RoundTrip.load(path, text)
        except YamlEditError:
            continue  # not YAML the definition reads as such: the validation of the result says so
        if any(isinstance(d, Mapping) and "sops" in d for d in edited.docs):
            continue
        found = [c for doc in edited.docs for c in _switch(doc, path, path == root)]
        if found:
            out[path] = edited.text()
            changes += found
    return out, changes
