"""Control plane numbers: read-job round trip (API → NATS → agent → Kubernetes → NATS → API) p50/p99,
heartbeat-to-server lag, and idle RSS of the agent and the server (and its embedded nats-server).

    .venv/bin/python bench/control_plane.py [--jobs 200] [--idle 20]

Real processes: a devcluster, `moorage server` (SQLite, embedded NATS), `moorage agent`."""

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from moorage import devcluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def wait_ok(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-cp-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    cluster = devcluster.up("cp-bench", nodes=1)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        token = "mrg_" + secrets.token_urlsafe(32)
        port, health = free_port(), free_port()
        url = f"http://127.0.0.1:{port}"
        moorage = [sys.executable, "-m", "moorage.cli.main"]
        log = (work / "server.log").open("ab")
        server_argv = [*moorage, "server", "--port", str(port), "--data-dir", str(work / "server")]
        env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": token}
        procs.append(subprocess.Popen(server_argv, stdout=log, stderr=log, env=env))
        wait_ok(f"{url}/healthz")
        api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        agent_token = api.post("/clusters", json={"name": "bench"}).raise_for_status().json()["agent_token"]
        agent_argv = [*moorage, "agent", "--server", url, "--kubeconfig", str(cluster.kubeconfig)]
        agent_argv += ["--health-port", str(health), "--heartbeat-interval", "1"]
        agent_log = (work / "agent.log").open("ab")
        procs.append(
            subprocess.Popen(
                agent_argv,
                stdout=agent_log,
                stderr=agent_log,
                env={**os.environ, "MOORAGE_AGENT_TOKEN": agent_token},
            )
        )
        wait_ok(f"http://127.0.0.1:{health}/readyz")

        latencies: list[float] = []
        for _ in range(args.jobs):
            started = time.perf_counter()
            api.get(
                "/clusters/bench/resources", params={"kind": "ConfigMap", "namespace": "kube-system"}
            ).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()

        lags: list[float] = []
        seen = None
        deadline = time.monotonic() + 15
        while len(lags) < 10 and time.monotonic() < deadline:
            c = api.get("/clusters/bench").json()
            beat = c.get("heartbeat") or {}
            if beat.get("sent_at") and c.get("last_heartbeat_at") and beat["sent_at"] != seen:
                seen = beat["sent_at"]
                sent = datetime.fromisoformat(beat["sent_at"].replace("Z", "+00:00"))
                recorded = datetime.fromisoformat(c["last_heartbeat_at"].replace("Z", "+00:00"))
                lags.append((recorded - sent).total_seconds() * 1000)
            time.sleep(0.3)

        time.sleep(args.idle)
        server, agent = procs
        nats = [p for p in children(server.pid) if "nats-server" in Path(f"/proc/{p}/cmdline").read_text()]
        print(
            json.dumps(
                {
                    "read_jobs": args.jobs,
                    "round_trip_ms_p50": round(statistics.median(latencies), 1),
                    "round_trip_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
                    "heartbeat_lag_ms": [round(x, 1) for x in lags],
                    "heartbeat_lag_ms_median": round(statistics.median(lags), 1) if lags else None,
                    "idle_rss_mib": {
                        "agent": rss_mib(agent.pid),
                        "server": rss_mib(server.pid),
                        "nats_server": rss_mib(nats[0]) if nats else None,
                    },
                },
                indent=2,
            )
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
