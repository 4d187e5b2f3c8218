"""`moorage devcluster up --with-charts` serves the example's charts where examples/gitops-repo
expects them, so the README's block "To deploy the example on a local cluster" runs as printed on a
fresh checkout (issue 16, item 7): up, the test key, sync, status, down, and nothing is left."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.process_support import kill_all, processes_mentioning

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def readme_block(after: str) -> list[str]:
    """The indented lines of the README's code block that follows the paragraph ending with `after`."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith(after))
    block = []
    for line in lines[start + 1 :]:
        if line.startswith("    "):
            block.append(line.strip())
        elif block:
            break
    return block


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.timeout(600)
def test_the_readme_deploys_the_example_on_a_devcluster(tmp_path: Path) -> None:
    block = readme_block("To deploy the example on a local cluster:")
    assert any("--with-charts" in line for line in block)
    assert any(line.startswith(".venv/bin/moorage sync examples/gitops-repo") for line in block)
    assert _port_free(8879), "port 8879 is taken: the example's charts cannot be served"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "MOORAGE_"))}
    env.update(HOME=str(tmp_path), PATH=f"{BIN}:{env.get('PATH', '')}", NO_COLOR="1")
    env.pop("XDG_STATE_HOME", None)
    *deploy, last = block
    assert last == ".venv/bin/moorage devcluster down --name dev"
    try:
        done = subprocess.run(
            ["bash", "-ec", "\n".join(deploy)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=480
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "charts of " in done.stderr
        assert "served at http://127.0.0.1:8879" in done.stderr
        # two tables: the sync's entries, then the status of each add-on
        sync_out, status_out = done.stdout.split("┏")[1:3]
        assert sync_out.count("│ applied │") == 8, sync_out  # 4 manifests, 4 add-ons
        for addon in ("crd-widget", "hooked", "webapp", "stateful"):
            assert f"│ {addon} " in status_out, status_out
        assert status_out.count("deployed") == 4, status_out
        assert "Degraded" not in status_out
        assert processes_mentioning(str(tmp_path))  # the devcluster and its chart server run

        down = subprocess.run(
            ["bash", "-ec", last], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert down.returncode == 0, down.stderr
        assert processes_mentioning(str(tmp_path)) == []
        assert _port_free(8879)
    finally:
        kill_all(str(tmp_path))
