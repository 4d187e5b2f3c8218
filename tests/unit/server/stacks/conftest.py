import shutil
from pathlib import Path

import pytest

from tests.unit.server.conftest import EXAMPLE_REPO


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the example repository, for edits to change."""
    dest = tmp_path / "repo"
    shutil.copytree(EXAMPLE_REPO, dest)
    return dest
