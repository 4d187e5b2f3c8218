"""Shared test settings."""

import os
from pathlib import Path

import pytest

CHARTS = Path(__file__).parent / "charts"

# pytest-xdist gives its workers the terminal's COLUMNS; rich would fix the CLI's consoles to that
# width when they are created, where the CLI tests set their own width for each command
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture(scope="session")
def charts_dir() -> Path:
    return CHARTS
