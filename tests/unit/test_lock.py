"""requirements.lock pins every dependency pyproject.toml names, each with hashes, and the venv holds
exactly the locked versions (so a fresh machine installs what CI ran)."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes)."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := _PIN.match(line):
            current = normalise(match[1])
            pins[current] = (match[2], 0)
        elif "--hash=sha256:" in line and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    wanted += (ROOT / "tools/lock/build.in").read_text().splitlines()
    return {normalise(m[1]) for line in wanted if not line.startswith("#") and (m := _NAME.match(line))}


def test_every_declared_dependency_is_locked_with_hashes() -> None:
    pins = locked()
    missing = sorted(declared() - pins.keys())
    assert not missing, f"not in requirements.lock: {missing}; run `make lock`"
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"pinned without hashes: {unhashed}; run `make lock`"


def test_the_venv_holds_the_locked_versions() -> None:
    wrong = []
    for name, (version, _) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: not installed")
            continue
        if installed != version:
            wrong.append(f"{name}: {installed} installed, {version} locked")
    assert not wrong, f"{wrong}; run `make venv` (it installs from requirements.lock)"
