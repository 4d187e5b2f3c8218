"""The agent's runtime: writes of different add-ons in parallel, and leader hand-over between replicas.

    .venv/bin/python bench/agent_runtime.py [--addons 4] [--lease-seconds 6] [--kills 3]

- parallel writes: `--addons` add-on syncs queued at once, each waiting 5 s for pods no node takes,
  with `--write-workers 1` and with `--write-workers N`: wall time of each and their ratio;
- hand-over: two agents of one cluster; kill -9 of the leader, `--kills` times (a new agent is started
  each time), seconds until the other holds the Lease (median); and SIGTERM of the leader once (it
  gives the Lease up: the other leads within one retry period).

Real processes: a devcluster, `moorage server` (SQLite, embedded NATS), `moorage agent`s."""

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `bench` importable
from bench.control_plane import free_port, wait_ok

from moorage import devcluster
from moorage.devcluster import binaries, chartsources

ROOT = Path(__file__).resolve().parents[1]
LABEL = "moorage.dev/bench-runtime"


def definition(url: str, count: int) -> dict[str, Any]:
    addons = []
    for i in range(count):
        values = {"replicaCount": 1, "nodeSelector": {LABEL: "yes"}}
        addons.append(
            f"        - name: slow-{i}\n"
            "          chart_name: webapp\n"
            '          chart_version: "1.0.0"\n'
            "          registry_name: repo\n"
            "          namespace: bench-runtime\n"
            "          settings: {strict_health_check: true, retry_policy: {limit: 0}}\n"
            "          job_configuration: {create_job_timeout: 5, update_job_timeout: 5}\n"
            f"          configuration: {{values: {json.dumps(values)}}}"
        )
    text = (
        "apiVersion: v1\nkind: ImportCluster\nmetadata: {name: bench}\nspec:\n"
        f'  helm_registries:\n    - {{name: repo, url: "{url}"}}\n'
        "  stacks:\n    - name: apps\n      addons:\n" + "\n".join(addons) + "\n"
    )
    return {"files": {"import-cluster.yaml": text}, "root": "import-cluster.yaml"}


class Bench:
    def __init__(self, work: Path, cluster: devcluster.DevCluster) -> None:
        self.work = work
        self.cluster = cluster
        self.procs: list[subprocess.Popen[bytes]] = []
        self.moorage = [sys.executable, "-m", "moorage.cli.main"]
        self.kubectl = [str(binaries.find("kubectl")), f"--kubeconfig={cluster.kubeconfig}"]
        self.helm = [str(binaries.find("helm")), f"--kubeconfig={cluster.kubeconfig}"]

    def server(self) -> None:
        token = "mrg_" + secrets.token_urlsafe(32)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.work / "server.log").open("ab")
        argv = [*self.moorage, "server", "--port", str(port), "--data-dir", str(self.work / "server")]
        env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": token, "MOORAGE_EGRESS_ALLOW": "loopback"}
        env["MOORAGE_AGENT_ACK_WAIT_SECONDS"] = "3"
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=env))
        wait_ok(f"{self.url}/healthz")
        self.api = httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300
        )

    def agent(self, token: str, *args: str) -> subprocess.Popen[bytes]:
        health = free_port()
        log = (self.work / f"agent-{len(self.procs)}.log").open("ab")
        argv = [*self.moorage, "agent", "--server", self.url, "--kubeconfig", str(self.cluster.kubeconfig)]
        argv += ["--health-port", str(health), "--sweep-interval", "3600", *args]
        env = {**os.environ, "MOORAGE_AGENT_TOKEN": token, "MOORAGE_AGENT_WATCH": "0"}
        env["MOORAGE_AGENT_IN_PROGRESS_SECONDS"] = "1"
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        self.procs.append(proc)
        wait_ok(f"http://127.0.0.1:{health}/readyz")
        return proc

    def register(self, name: str) -> tuple[str, str]:
        created = self.api.post("/clusters", json={"name": name}).raise_for_status().json()
        return created["agent_token"], created["id"]

    def wait_done(self, operation: str) -> dict[str, Any]:
        while True:
            op: dict[str, Any] = self.api.get(f"/operations/{operation}").json()
            if op["state"] not in ("pending", "running"):
                return op
            time.sleep(0.1)

    def holder(self, lease: str) -> str:
        out = subprocess.run(
            [*self.kubectl, "get", "lease", lease, "-n", "default", "-o", "jsonpath={.spec.holderIdentity}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()

    def until_holder(self, lease: str, pid: int, timeout: float = 60) -> float:
        mine = re.compile(rf"-{pid}-[0-9a-f]+$")
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if mine.search(self.holder(lease)):
                return time.monotonic() - started
            time.sleep(0.05)
        raise SystemExit(f"agent {pid} never took the lease")

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(40)


def parallel_writes(bench: Bench, chart_url: str, count: int) -> dict[str, float]:
    """Wall time of `count` add-on syncs queued at once, with one write worker and with `count`."""
    token, _ = bench.register("writes")
    result: dict[str, float] = {}
    for workers in (1, count):
        agent = bench.agent(token, "--write-workers", str(workers))
        subprocess.run([*bench.kubectl, "label", "nodes", "--all", f"{LABEL}=yes", "--overwrite"], check=True)
        applied = bench.api.post(
            "/clusters/writes/apply", params={"wait": 300}, json=definition(chart_url, count)
        )
        assert applied.json()["state"] == "success", applied.text
        subprocess.run([*bench.kubectl, "label", "nodes", "--all", f"{LABEL}-"], check=True)
        for i in range(count):
            subprocess.run([*bench.helm, "uninstall", f"slow-{i}", "-n", "bench-runtime"], check=True)
        started = time.monotonic()
        operations = [
            bench.api.post(f"/clusters/writes/addons/slow-{i}/sync", params={"wait": 0}).json()[
                "operation_id"
            ]
            for i in range(count)
        ]
        for operation in operations:
            bench.wait_done(operation)
        result[f"write_workers_{workers}_seconds"] = round(time.monotonic() - started, 2)
        bench.stop(agent)
    result["ratio"] = round(result["write_workers_1_seconds"] / result[f"write_workers_{count}_seconds"], 2)
    return result


def hand_over(bench: Bench, lease_seconds: float, kills: int) -> dict[str, Any]:
    token, cluster_id = bench.register("leader")
    lease = f"moorage-agent-{cluster_id}"
    args = ["--leader-election", "on", "--lease-namespace", "default", "--lease-seconds", str(lease_seconds)]
    leader = bench.agent(token, *args)
    bench.until_holder(lease, leader.pid)
    follower = bench.agent(token, *args)
    after_kill = []
    for _ in range(kills):
        time.sleep(2)  # the follower has seen a few renewals
        leader.send_signal(signal.SIGKILL)
        leader.wait()
        after_kill.append(round(bench.until_holder(lease, follower.pid), 2))
        leader, follower = follower, bench.agent(token, *args)
    time.sleep(2)
    leader.send_signal(signal.SIGTERM)
    after_term = round(bench.until_holder(lease, follower.pid), 2)
    leader.wait(40)
    return {
        "lease_seconds": lease_seconds,
        "take_over_after_kill_9_seconds": after_kill,
        "take_over_after_kill_9_median": statistics.median(after_kill),
        "take_over_after_sigterm_seconds": after_term,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addons", type=int, default=4)
    parser.add_argument("--lease-seconds", type=float, default=6.0)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-runtime-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    cluster = devcluster.up("runtime-bench", nodes=1)
    bench = Bench(work, cluster)
    charts, helm_home = work / "charts", work / "helm"
    charts.mkdir()
    try:
        chartsources.package_charts([ROOT / "tests" / "charts" / "webapp"], charts, helm_home)
        with chartsources.serve_chart_repo(charts) as repo:
            chartsources.index_repo(charts, repo.url, helm_home)
            bench.server()
            writes = parallel_writes(bench, repo.url, args.addons)
            leader = hand_over(bench, args.lease_seconds, args.kills)
        print(
            json.dumps({"parallel_writes": {"addons": args.addons, **writes}, "hand_over": leader}, indent=2)
        )
    finally:
        for proc in reversed(bench.procs):
            bench.stop(proc)
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
