"""Shared test settings."""

from pathlib import Path

import pytest

CHARTS = Path(__file__).parent / "charts"


@pytest.fixture(scope="session")
def charts_dir() -> Path:
    return CHARTS
