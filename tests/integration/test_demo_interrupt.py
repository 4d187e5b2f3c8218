"""`make demo 2>&1 | tee demo.log`, stopped with Ctrl-C, stops everything (issue 16, item 7).

The demo runs in a pipeline in a new session, as a shell without job control runs it; SIGINT goes to
the whole process group, as a terminal sends it on Ctrl-C, so tee dies with the demo and the demo's
later output meets a closed pipe. No process the demo started may be left."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.process_support import kill_all, processes_mentioning

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("marker", "started"),
    [("Ctrl-C stops", 7), ("moorage agent (outbound", 5)],
    ids=["running", "while-starting"],
)
def test_ctrl_c_on_the_demo_in_a_pipeline_stops_everything(tmp_path: Path, marker: str, started: int) -> None:
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "MOORAGE_DEVCLUSTER_HOME": str(tmp_path / "devclusters"),
        "TMPDIR": str(tmp_path),  # the demo's work directory (server, agent, registry, Git server)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SOPS_AGE_KEY_FILE", None)
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} scripts/demo.py 2>&1 | tee {log}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 420
        while marker not in (log.read_text(errors="replace") if log.exists() else ""):
            assert shell.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        # etcd, the API server, the controllers, kwok, the server, the agent, ...
        assert len(processes_mentioning(str(tmp_path))) >= started
        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C: the demo, tee and the shell all get it
        shell.wait(120)
        deadline = time.monotonic() + 30
        while (left := processes_mentioning(str(tmp_path))) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], "\n".join(left)
        assert not (tmp_path / "devclusters" / "demo").exists()
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        kill_all(str(tmp_path))  # never leave a devcluster behind, even when failing
