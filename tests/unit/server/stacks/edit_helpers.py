"""What the edit tests share: edits applied to a copy of the example repository (the `repo`
fixture of conftest.py), and the unified diff of one file."""

import difflib
from pathlib import Path

from moorage.server.stacks import edits as E

ROOT = "import-cluster.yaml"


def apply(repo: Path, *edits: E.Edit) -> tuple[E.Workspace, dict[str, str | None]]:
    ws = E.Workspace(repo, ROOT)
    for edit in edits:
        ws.apply(edit)
    changes = ws.changes()
    ws.write_back()
    return ws, changes


def diff(ws: E.Workspace, rel: str, new: str | None) -> str:
    old = ws.original(rel) or ""
    return "".join(
        list(difflib.unified_diff(old.splitlines(keepends=True), (new or "").splitlines(keepends=True)))[2:]
    )
