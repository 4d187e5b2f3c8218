"""GitOps numbers, with real processes: a Git server over HTTP (git http-backend), `moorage server`
(SQLite, embedded NATS), `moorage agent` and a devcluster.

latency   commit → push → webhook → applied, for a one-value change of a Helm add-on (the
          Deployment's replica count): median over --runs, and the part of it that is not the
          agent's own sync (helm) time.
polling   the cost of polling 100 connected clusters: server CPU (its git children included) per
          round, for 100 repositories and for 100 clusters sharing one repository, and the number
          of `git ls-remote` requests the Git server saw.

    .venv/bin/python bench/gitops.py [--runs 5] [--clusters 100] [--poll-seconds 10] [--rounds 6]"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from moorage import devcluster
from moorage.devcluster import chartsources
from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.gitops import webhooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `bench` importable
from bench.control_plane import free_port, wait_ok

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "tests" / "charts" / "webapp"
MOORAGE = [sys.executable, "-m", "moorage.cli.main"]
DEFINITION = """\
apiVersion: v1
kind: ImportCluster
metadata: {{name: {name}}}
spec:
  helm_registries:
    - {{name: repo, url: "{repo}"}}
  stacks:
    - name: apps
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: repo
          namespace: bench-gitops
          configuration: {{values: {{replicaCount: {replicas}}}}}
"""


def clock_ticks(pid: int) -> int:
    """utime + stime of a process and of its reaped children (git, ssh…), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def start_server(
    work: Path, token: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], httpx.Client, str]:
    port = free_port()
    log = (work / "server.log").open("ab")
    argv = [*MOORAGE, "server", "--port", str(port), "--data-dir", str(work / "server")]
    proc = subprocess.Popen(
        argv, stdout=log, stderr=log, env={**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": token, **env}
    )
    url = f"http://127.0.0.1:{port}"
    wait_ok(f"{url}/healthz")
    api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120)
    return proc, api, url


def wait_synced(api: httpx.Client, name: str, sha: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: dict[str, Any] = api.get(f"/clusters/{name}/gitops/status").raise_for_status().json()
        if state["sync_status"] == "synced" and state["last_commit_sha"] == sha:
            return state
        time.sleep(0.02)
    raise SystemExit(f"{name} never synced {sha[:12]}")


def latency(work: Path, runs: int) -> dict[str, Any]:
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    cluster = devcluster.up("gitops-bench", nodes=1)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        chartsources.package_charts([CHART], work / "charts", work / "helm")
        with chartsources.serve_chart_repo(work / "charts") as charts, GitServer(work / "git") as git:
            chartsources.index_repo(work / "charts", charts.url, work / "helm")
            repo_url = git.create_repo("org/platform.git")
            tree = WorkTree(work / "tree", repo_url)
            path = "clusters/bench/import-cluster.yaml"
            first = tree.commit_and_push(
                {path: DEFINITION.format(name="bench", repo=charts.url, replicas=1)}, "first"
            )
            token = "mrg_" + secrets.token_urlsafe(32)
            server, api, url = start_server(work, token, {})
            procs.append(server)
            agent_token = (
                api.post("/clusters", json={"name": "bench"}).raise_for_status().json()["agent_token"]
            )
            health = free_port()
            agent_log = (work / "agent.log").open("ab")
            argv = [*MOORAGE, "agent", "--server", url, "--kubeconfig", str(cluster.kubeconfig)]
            procs.append(
                subprocess.Popen(
                    [*argv, "--health-port", str(health)],
                    stdout=agent_log,
                    stderr=agent_log,
                    env={**os.environ, "MOORAGE_AGENT_TOKEN": agent_token},
                )
            )
            wait_ok(f"http://127.0.0.1:{health}/readyz")
            secret = (
                api.put(
                    "/clusters/bench/gitops",
                    json={"url": repo_url, "branch": "main", "poll_interval_seconds": 86_400},
                )
                .raise_for_status()
                .json()["webhook_secret"]
            )
            wait_synced(api, "bench", first)

            totals: list[float] = []
            not_helm: list[float] = []
            for run in range(runs):
                replicas = 2 + run % 2
                started = time.perf_counter()
                sha = tree.commit_and_push(
                    {path: DEFINITION.format(name="bench", repo=charts.url, replicas=replicas)}, f"run {run}"
                )
                body = json.dumps(
                    {"ref": "refs/heads/main", "after": sha, "repository": {"full_name": "org/platform"}}
                ).encode()
                headers = {"X-GitHub-Event": "push", **webhooks.sign("github", body, secret.encode())}
                httpx.post(f"{url}/api/v1/webhooks/github", content=body, headers=headers).raise_for_status()
                state = wait_synced(api, "bench", sha)
                total = time.perf_counter() - started
                row = api.get("/clusters/bench/gitops/history", params={"page_size": 1}).json()["result"][0]
                operation = api.get(f"/operations/{row['operation_id']}").json()
                (job,) = operation["jobs"]
                agent_seconds = float((job.get("result") or {}).get("seconds") or 0.0)
                totals.append(total)
                not_helm.append(total - agent_seconds)
                assert state["last_synced_from"] == "webhook"
            return {
                "runs": runs,
                "commit_to_applied_s": [round(t, 3) for t in totals],
                "commit_to_applied_s_median": round(statistics.median(totals), 3),
                "without_agent_sync_s_median": round(statistics.median(not_helm), 3),
            }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        devcluster.down(cluster.name)


def polling(work: Path, clusters: int, poll_seconds: int, rounds: int, shared: bool) -> dict[str, Any]:
    """Clusters connected to repositories without a definition at their path: the first sync of
    each fails at validation and is not retried, so what remains is polling alone."""
    with GitServer(work / "git") as git:
        urls = []
        for i in range(1 if shared else clusters):
            url = git.create_repo(f"org/repo-{i}.git")
            WorkTree(work / f"tree-{i}", url).commit_and_push({"README.md": "no definitions here\n"}, "init")
            urls.append(url)
        token = "mrg_" + secrets.token_urlsafe(32)
        server, api, _ = start_server(work, token, {})
        try:
            for i in range(clusters):
                name = f"poll-{i}"
                api.post("/clusters", json={"name": name}).raise_for_status()
                api.put(
                    f"/clusters/{name}/gitops",
                    json={
                        "url": urls[0 if shared else i],
                        "branch": "main",
                        "poll_interval_seconds": poll_seconds,
                    },
                ).raise_for_status()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = [
                    api.get(f"/clusters/poll-{i}/gitops/status").json()["sync_status"]
                    for i in range(clusters)
                ]
                if all(s == "error" for s in states):
                    break
                time.sleep(0.5)
            time.sleep(poll_seconds * 1.2)  # the first polls after connecting
            git.reset_counts()
            ticks, started = clock_ticks(server.pid), time.monotonic()
            time.sleep(poll_seconds * rounds)
            cpu = (clock_ticks(server.pid) - ticks) / os.sysconf("SC_CLK_TCK")
            elapsed = time.monotonic() - started
            counts = git.counts()
        finally:
            server.terminate()
            server.wait(30)
    return {
        "clusters": clusters,
        "repositories": 1 if shared else clusters,
        "poll_interval_s": poll_seconds,
        "elapsed_s": round(elapsed, 1),
        "ls_remote_requests": counts.get("ref_adverts", 0),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_s_per_round": round(cpu / (elapsed / poll_seconds), 3),
        "cpu_share_of_one_core_at_this_interval": round(cpu / elapsed, 4),
        "cpu_share_of_one_core_at_180s": round(cpu / elapsed * poll_seconds / 180, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--poll-seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="moorage-bench-gitops-"))
    result: dict[str, Any] = {}
    if not args.skip_latency:
        result["latency"] = latency(base / "latency", args.runs)
    for shared in (False, True):
        key = "polling_shared_repository" if shared else "polling_own_repositories"
        work = base / key
        work.mkdir(parents=True)
        result[key] = polling(work, args.clusters, args.poll_seconds, args.rounds, shared)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
