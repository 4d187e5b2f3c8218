"""Helpers: build a small repository in tmp_path and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from moorage.spec.loader import LoadOptions, LoadResult, load
from moorage.spec.report import Issue

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gitops-repo"
EXAMPLE_KEY = EXAMPLE / "keys" / "test-only.agekey"

HEADER = """\
apiVersion: v1
kind: ImportCluster
metadata:
  name: test-cluster
spec:
  helm_registries:
    - name: local
      url: http://127.0.0.1:8879
"""


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))


Loader = Callable[..., LoadResult]


@pytest.fixture
def repo(tmp_path: Path) -> Loader:
    """repo({"import-cluster.yaml": "...", ...}, **options) -> LoadResult."""

    def _load(files: dict[str, str | bytes], **options: Any) -> LoadResult:
        write(tmp_path, files)
        return load(tmp_path / "import-cluster.yaml", LoadOptions(**options), repo_root=tmp_path)

    return _load


def issues(result: LoadResult, code: str) -> list[Issue]:
    return [i for i in result.report.sorted() if i.code == code]


def one(result: LoadResult, code: str) -> Issue:
    found = issues(result, code)
    assert len(found) == 1, f"expected one {code!r}, got: {result.report.to_text()}"
    return found[0]


def at(issue: Issue) -> tuple[str, int, int]:
    assert issue.location is not None
    return (issue.location.file, issue.location.line, issue.location.column)
