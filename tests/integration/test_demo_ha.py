"""`make demo-ha` (`scripts/demo.py --ha 2`, issue 19): the demo on PostgreSQL, three clustered
nats-servers and two server replicas starts, says where each replica listens, each replica answers
for the demo's cluster (its agent registered through one, its Git connection made through the other),
and Ctrl-C stops everything: no process left, PostgreSQL's port closed."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import postgres
from tests.integration.process_support import kill_all, processes_mentioning

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(900)
def test_demo_ha_starts_two_replicas_that_both_answer_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "MOORAGE_DEVCLUSTER_HOME": str(tmp_path / "devclusters"),
        "TMPDIR": str(tmp_path),  # the demo's work directory (replicas, NATS nodes, agent, Git server)
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SOPS_AGE_KEY_FILE", None)
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} scripts/demo.py --ha 2 2>&1 | tee {log}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while "Ctrl-C stops" not in (out := log.read_text(errors="replace") if log.exists() else ""):
            assert shell.poll() is None, out[-3000:]
            assert time.monotonic() < deadline, out[-3000:]
            time.sleep(0.5)
        replicas = dict(re.findall(r"replica ([a-z])\s+(http://127\.0\.0\.1:\d+)", out))
        assert sorted(replicas) == ["a", "b"], out[-3000:]
        assert len(set(replicas.values())) == 2
        assert "GitOps: synced" in out, out[-3000:]
        (token,) = re.findall(r"MOORAGE_TOKEN=(mrg_[A-Za-z0-9_-]+)", out)
        (pg_port,) = re.findall(r"PostgreSQL postgresql\+psycopg://postgres@127\.0\.0\.1:(\d+)/", out)
        nats_urls = re.findall(r"nats://127\.0\.0\.1:(\d+)", out)
        assert len(set(nats_urls)) >= 3, out[-3000:]  # three nodes
        for url in replicas.values():
            cluster = httpx.get(
                f"{url}/api/v1/clusters/demo", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert cluster.status_code == 200, cluster.text
            assert cluster.json()["state"] == "online"
            gitops = httpx.get(
                f"{url}/api/v1/clusters/demo/gitops/status",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert gitops.json()["sync_status"] == "synced", gitops.text
        # the demo's processes: devcluster, replicas, NATS nodes, agent, chart sources, Git server
        assert len(processes_mentioning(str(tmp_path))) >= 10
        assert _listening(int(pg_port))
        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C: the demo, tee and the shell all get it
        shell.wait(180)
        deadline = time.monotonic() + 30
        while (left := processes_mentioning(str(tmp_path))) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], "\n".join(left)
        assert not _listening(int(pg_port))
        assert not (tmp_path / "devclusters" / "demo").exists()
        for url in replicas.values():
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/healthz", timeout=2)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
        kill_all(str(tmp_path))
