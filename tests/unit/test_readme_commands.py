"""The README's commands work as printed (issue 16, item 7).

Every `moorage` command line of README.md and examples/gitops-repo/README.md names a command that
exists (its `--help` answers); those that need no cluster, server or placeholder (validate, render,
devcluster status, …) run exactly as printed from the repository's root, on a fresh checkout: no age
key configured, an empty home. The ones that need a devcluster run in
tests/integration/test_devcluster_charts.py."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = (ROOT / "README.md", ROOT / "examples" / "gitops-repo" / "README.md")
BIN = Path(sys.executable).parent
# commands that read only the checkout (or nothing at all)
OFFLINE = ("validate", "render", "devcluster status", "--help")
PLACEHOLDER = re.compile(r"\b(PATH|K|NAME|POD|SHA|VAR|CLUSTER|URL)\b|[\[\]…$]|\bhttps?://127")


def readme_commands() -> list[str]:
    """Each `moorage …` command of the READMEs' code blocks, comments and `;` chains split off."""
    found: list[str] = []
    for readme in READMES:
        # a command continued on the next line (a trailing backslash) is one line
        for line in readme.read_text().replace("\\\n", " ").splitlines():
            if not line.startswith("    "):
                continue
            code = line.strip().split("  #", 1)[0].split(" # ", 1)[0].strip()
            for part in code.split(";"):
                part = part.strip()
                if re.search(r"(^|\s|/)moorage\s", part):
                    found.append(part)
    return found


def _argv_after_moorage(command: str) -> list[str]:
    words = shlex.split(command)
    at = next(i for i, w in enumerate(words) if w == "moorage" or w.endswith("/moorage"))
    return words[at + 1 :]


def _offline(command: str) -> bool:
    args = " ".join(_argv_after_moorage(command))
    return args.startswith(OFFLINE) and not PLACEHOLDER.search(command)


COMMANDS = readme_commands()


@pytest.fixture
def fresh_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "MOORAGE_"))}
    env.update(HOME=str(tmp_path), PATH=f"{BIN}:{env.get('PATH', '')}", NO_COLOR="1")
    env.pop("XDG_CONFIG_HOME", None)
    env.pop("XDG_STATE_HOME", None)
    return env


def test_the_readmes_show_commands_that_run_offline() -> None:
    offline = [c for c in COMMANDS if _offline(c)]
    assert ".venv/bin/moorage validate examples/gitops-repo" in offline
    assert ".venv/bin/moorage render examples/gitops-repo" in offline
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("command", [c for c in COMMANDS if _offline(c)])
def test_offline_command_runs_as_printed(command: str, fresh_env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=fresh_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert "error" not in done.stdout.replace("0 error(s)", "")


@pytest.mark.parametrize("subcommand", sorted({" ".join(_argv_after_moorage(c)[:2]) for c in COMMANDS}))
def test_every_command_shown_exists(subcommand: str, fresh_env: dict[str, str]) -> None:
    words = subcommand.split()
    # a group's first word alone when the second is an argument (moorage validate PATH)
    for argv in (words, words[:1]):
        done = subprocess.run(
            [str(BIN / "moorage"), *argv, "--help"], env=fresh_env, capture_output=True, text=True, timeout=60
        )
        if done.returncode == 0:
            assert "Usage" in done.stdout
            return
    raise AssertionError(f"moorage {subcommand} --help failed: {done.stderr}")
