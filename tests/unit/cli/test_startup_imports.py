"""`moorage --help` and the client commands start at once: in a fresh interpreter, neither importing the
CLI nor running them through the real entry point loads the server, the agent, the engine, helm, kube
or their libraries (FastAPI, SQLAlchemy, Alembic, nats, uvicorn). Help alone does not load httpx, yaml,
moorage.spec or moorage.devcluster either. The rule these tests hold: see src/moorage/cli/main.py."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HEAVY = (
    "moorage.server",
    "moorage.agent",
    "moorage.engine",
    "moorage.helm",
    "moorage.kube",
    "fastapi",
    "sqlalchemy",
    "alembic",
    "nats",
    "uvicorn",
)
# what a client command needs, but help does not
NOT_FOR_HELP = (*HEAVY, "httpx", "yaml", "moorage.spec", "moorage.devcluster")

# Runs in a fresh interpreter: import the CLI (argv null) or run it the way the `moorage` console
# script does, then write every module loaded by then as JSON to the file given.
PROBE = """
import json, sys
argv, modules_file = json.loads(sys.argv[1]), sys.argv[2]
try:
    from moorage.cli.main import app
    if argv is not None:
        sys.argv = ["moorage", *argv]
        app()
finally:
    with open(modules_file, "w") as f:
        json.dump(sorted(sys.modules), f)
"""

HELP = [
    None,  # only `import moorage.cli.main`
    ["--help"],
    ["addons", "list", "--help"],
    ["addons", "--help"],
    ["cluster", "--help"],
    ["operations", "--help"],
    ["resources", "--help"],
    ["credentials", "--help"],
    ["logs", "--help"],
    ["users", "--help"],
    ["server", "--help"],  # the processes' and the engine commands' help is light too
    ["health", "test", "--help"],
]
CLIENT = [
    ["cluster", "list"],
    ["addons", "list", "-c", "dev"],
    ["addons", "drift", "web", "-c", "dev"],
    ["resources", "get", "Pod", "-c", "dev"],
    ["logs", "web-0", "-c", "dev"],
    ["credentials", "list"],
]


@pytest.fixture(scope="module")
def refused_url() -> Iterator[str]:
    """A loopback URL where every connection is refused at once: the port is bound (so nobody else
    takes it) but not listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def loaded(argv: list[str] | None, tmp_path: Path, server: str, expected_exit: int) -> set[str]:
    """The modules a fresh `moorage ARGV` process has loaded when it exits."""
    modules_file = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {"MOORAGE_SERVER": server, "MOORAGE_TOKEN": "not-a-token", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), str(modules_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == expected_exit, done.stdout + done.stderr
    return set(json.loads(modules_file.read_text()))


def offending(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The forbidden packages among `modules` (a package counts when it or any submodule is loaded)."""
    return sorted({f for f in forbidden for m in modules if m == f or m.startswith(f + ".")})


def why(argv: list[str] | None) -> str:
    what = f"`moorage {' '.join(argv)}`" if argv else "`import moorage.cli.main`"
    run = f"from moorage.cli.main import app; app({argv!r})" if argv else "import moorage.cli.main"
    return (
        f"{what} loads heavy modules; import them inside the command that needs them "
        f"(see src/moorage/cli/main.py). Find the importer with: python -X importtime -c {run!r}"
    )


@pytest.mark.parametrize("argv", HELP, ids=lambda a: " ".join(a) if a else "import")
def test_help_loads_nothing_heavy(argv: list[str] | None, tmp_path: Path, refused_url: str) -> None:
    modules = loaded(argv, tmp_path, refused_url, expected_exit=0)
    assert "moorage.cli.remote_commands" in modules  # the probe did load the CLI
    assert offending(modules, NOT_FOR_HELP) == [], why(argv)


@pytest.mark.parametrize("argv", CLIENT, ids=" ".join)
def test_client_commands_load_nothing_heavy(argv: list[str], tmp_path: Path, refused_url: str) -> None:
    modules = loaded(argv, tmp_path, refused_url, expected_exit=2)  # 2: the server cannot be reached
    assert "httpx" in modules  # the command did try the server
    assert offending(modules, HEAVY) == [], why(argv)


def test_a_command_that_loads_more_is_seen(tmp_path: Path, refused_url: str) -> None:
    """The probe does see what a command imports when it runs: `validate` loads moorage.spec."""
    modules = loaded(["validate", str(tmp_path / "missing")], tmp_path, refused_url, expected_exit=2)
    assert "moorage.spec" in offending(modules, NOT_FOR_HELP)
