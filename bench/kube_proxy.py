"""kubectl proxy numbers (issue 15), through `moorage server` (HTTPS), its embedded NATS and `moorage
agent` against a devcluster, each against direct access to the same API server in the same run:

get       `kubectl get pods -n NS -o name` (the real binary, --kubectl runs each, alternating direct
          and proxied, discovery cached): p50 / p99 and their ratio; and the same GET of the pod list
          with an HTTP client kept open (--requests each): the proxy's own cost without kubectl's start.
list      a LIST of --objects (5,000) ConfigMaps: `kubectl get configmaps -o name` (kubectl pages by
          500) and one unpaged GET (bytes and seconds), median of --list-runs, direct and proxied.
parallel  --concurrency (64) clients each sending GETs of the pod list for --seconds: requests per
          second, p50 / p99, direct and proxied; then the agent's and the server's RSS.

    .venv/bin/python bench/kube_proxy.py [--kubectl 30] [--requests 300] [--objects 5000]
        [--list-runs 3] [--concurrency 64] [--seconds 10]

Prints one JSON object (progress on stderr)."""

import argparse
import asyncio
import json
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from moorage import devcluster
from moorage.devcluster import binaries
from moorage.kube import config as kube_config
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def wait_ok(url: str, verify: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


class Target:
    """One way to the API server: its base URL, TLS, and credential."""

    def __init__(
        self, name: str, base: str, verify: ssl.SSLContext, token: str | None, kubeconfig: Path
    ) -> None:
        self.name, self.base, self.verify, self.token, self.kubeconfig = name, base, verify, token, kubeconfig

    def client(self, **kw: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        return httpx.AsyncClient(base_url=self.base, verify=self.verify, headers=headers, limits=limits, **kw)

    def kubectl(self, *args: str) -> float:
        started = time.perf_counter()
        subprocess.run(
            [str(binaries.find("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            check=True,
            capture_output=True,
        )
        return (time.perf_counter() - started) * 1000


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    started = time.perf_counter()
    response = await call()
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


async def serial_gets(target: Target, path: str, n: int) -> list[float]:
    async with target.client(timeout=60) as c:
        await c.get(path)
        return [await timed(lambda: c.get(path)) for _ in range(n)]


async def parallel(target: Target, path: str, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with target.client(timeout=120) as c:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                try:
                    latencies.append(await timed(lambda: c.get(path)))
                except httpx.HTTPError as e:
                    what = f"{type(e).__name__} {getattr(getattr(e, 'response', None), 'status_code', '')}"
                    errors[what.strip()] = errors.get(what.strip(), 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


async def create_configmaps(target: Target, namespace: str, count: int) -> None:
    async with target.client(timeout=60) as c:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}"}}
            body["data"] = {"key": "v" * 200}
            async with sem:
                r = await c.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body)
                if r.status_code not in (201, 409):
                    r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


async def unpaged(target: Target, path: str) -> tuple[float, int]:
    async with target.client(timeout=300) as c:
        started = time.perf_counter()
        r = await c.get(path, headers={"Accept-Encoding": "identity"})
        r.raise_for_status()
        return (time.perf_counter() - started) * 1000, len(r.content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubectl", type=int, default=30)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--list-runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-kube-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    say("devcluster up")
    cluster = devcluster.up("kube-bench", nodes=1)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pki = NatsPki(work / "pki")
        pki.ensure(LOOPBACK_HOSTS)
        verify = ssl.create_default_context(cafile=str(pki.ca_cert))
        admin = "mrg_" + secrets.token_urlsafe(32)
        port, health = free_port(), free_port()
        url = f"https://127.0.0.1:{port}"
        moorage = [sys.executable, "-m", "moorage.cli.main"]
        log = (work / "server.log").open("ab")
        argv = [*moorage, "server", "--port", str(port), "--data-dir", str(work / "server")]
        argv += ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
        env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": admin}
        procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=env))
        wait_ok(f"{url}/healthz", verify)
        api = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=60, verify=verify
        )
        agent_token = api.post("/clusters", json={"name": "bench"}).raise_for_status().json()["agent_token"]
        agent_argv = [*moorage, "agent", "--server", url, "--kubeconfig", str(cluster.kubeconfig)]
        agent_argv += ["--health-port", str(health), "--ca", str(pki.ca_cert)]
        agent_log = (work / "agent.log").open("ab")
        agent_env = {**os.environ, "MOORAGE_AGENT_TOKEN": agent_token}
        procs.append(subprocess.Popen(agent_argv, stdout=agent_log, stderr=agent_log, env=agent_env))
        wait_ok(f"http://127.0.0.1:{health}/readyz", True)
        deadline = time.monotonic() + 60
        while api.get("/clusters/bench").json()["state"] != "online":
            if time.monotonic() > deadline:
                raise SystemExit("the agent never came online")
            time.sleep(0.3)
        kubeconfig = work / "proxied.kubeconfig"
        env = {**os.environ, "MOORAGE_TOKEN": admin, "MOORAGE_SERVER": url, "MOORAGE_CA": str(pki.ca_cert)}
        subprocess.run(
            [*moorage, "kubeconfig", "bench", "--kubeconfig", str(kubeconfig)],
            check=True,
            env=env,
            capture_output=True,
        )
        kube_token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        direct_cfg = kube_config.load(cluster.kubeconfig)
        direct = Target("direct", direct_cfg.server, direct_cfg.ssl_context, None, cluster.kubeconfig)
        proxied = Target("proxied", f"{url}/api/v1/clusters/bench/kube", verify, kube_token, kubeconfig)
        targets = (direct, proxied)

        # what the agent chart binds by default, for the admin's group
        subprocess.run(
            [
                str(binaries.find("kubectl")),
                f"--kubeconfig={cluster.kubeconfig}",
                "create",
                "clusterrolebinding",
                "moorage-admin",
                "--clusterrole=cluster-admin",
                "--group=moorage:admin",
            ],
            check=True,
            capture_output=True,
        )
        namespace = "bench"
        subprocess.run(
            [
                str(binaries.find("kubectl")),
                f"--kubeconfig={cluster.kubeconfig}",
                "create",
                "namespace",
                namespace,
            ],
            check=True,
            capture_output=True,
        )
        for i in range(10):
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"pod-{i}", "namespace": namespace},
                "spec": {"containers": [{"name": "main", "image": "example.com/app:1"}]},
            }
            httpx.post(
                f"{direct.base}/api/v1/namespaces/{namespace}/pods", json=pod, verify=direct.verify
            ).raise_for_status()
        pods = f"/api/v1/namespaces/{namespace}/pods"
        result: dict[str, Any] = {"load_before": os.getloadavg()[0]}

        say("get: kubectl")
        runs: dict[str, list[float]] = {"direct": [], "proxied": []}
        for t in targets:
            t.kubectl("get", "pods", "-n", namespace, "-o", "name")  # discovery cache warm
        for _ in range(args.kubectl):
            for t in targets:
                runs[t.name].append(t.kubectl("get", "pods", "-n", namespace, "-o", "name"))
        result["kubectl_get_pods_ms"] = {
            name: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for name, v in runs.items()
        }
        result["kubectl_get_pods_ratio"] = {
            q: round(
                result["kubectl_get_pods_ms"]["proxied"][q] / result["kubectl_get_pods_ms"]["direct"][q], 2
            )
            for q in ("p50", "p99")
        }
        say("get: HTTP")
        http = {t.name: asyncio.run(serial_gets(t, pods, args.requests)) for t in targets}
        result["http_get_pods_ms"] = {
            name: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for name, v in http.items()
        }
        result["http_get_pods_ratio"] = {
            q: round(result["http_get_pods_ms"]["proxied"][q] / result["http_get_pods_ms"]["direct"][q], 2)
            for q in ("p50", "p99")
        }

        say(f"list: creating {args.objects} ConfigMaps")
        big = "many"
        subprocess.run(
            [str(binaries.find("kubectl")), f"--kubeconfig={cluster.kubeconfig}", "create", "namespace", big],
            check=True,
            capture_output=True,
        )
        asyncio.run(create_configmaps(direct, big, args.objects))
        listed: dict[str, Any] = {}
        for t in targets:
            kubectl_ms = [
                t.kubectl("get", "configmaps", "-n", big, "-o", "name") for _ in range(args.list_runs)
            ]
            raw = [
                asyncio.run(unpaged(t, f"/api/v1/namespaces/{big}/configmaps")) for _ in range(args.list_runs)
            ]
            listed[t.name] = {
                "kubectl_ms_median": round(statistics.median(kubectl_ms), 1),
                "unpaged_get_ms_median": round(statistics.median(ms for ms, _ in raw), 1),
                "unpaged_bytes": raw[0][1],
            }
        listed["ratio_kubectl"] = round(
            listed["proxied"]["kubectl_ms_median"] / listed["direct"]["kubectl_ms_median"], 2
        )
        listed["ratio_unpaged"] = round(
            listed["proxied"]["unpaged_get_ms_median"] / listed["direct"]["unpaged_get_ms_median"], 2
        )
        result[f"list_{args.objects}_configmaps"] = listed

        say(f"parallel: {args.concurrency} clients for {args.seconds}s")
        par = {t.name: asyncio.run(parallel(t, pods, args.concurrency, args.seconds)) for t in targets}
        par["ratio_per_second"] = round(par["proxied"]["per_second"] / par["direct"]["per_second"], 2)
        result[f"parallel_{args.concurrency}"] = par
        server, agent = procs
        result["rss_mib_after"] = {"server": rss_mib(server.pid), "agent": rss_mib(agent.pid)}
        result["load_after"] = os.getloadavg()[0]
        print(json.dumps(result, indent=2))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
