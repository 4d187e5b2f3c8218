"""Moorage, Flux and Argo CD doing the same work on one devcluster, each alone in turn (issue 20).

Every tool deploys the same N releases of the `quintet` chart (a Deployment, a Service, a
ConfigMap, a ServiceAccount and a Secret) from one Helm repository on loopback, with the same
concurrency (C, default 5) and the same reconcile period (P, default 60 s) where the tool has a knob:

- Moorage: `moorage server` (SQLite, embedded NATS; not measured, like Argo CD's API server that is
  not run) and `moorage agent` as processes; the definition is sent with `POST /clusters/{c}/apply`;
  the agent sweeps every P s (`--sweep-interval`) and watches Helm-managed objects (a sweep seconds
  after an edit) and deploys or heals C add-ons at once (`--concurrency`);
- Flux 2.9: source-controller v1.9.6 and helm-controller v1.6.4 as processes, both `--concurrent=C`,
  one HelmRepository (interval 10m) and N HelmReleases (interval P, drift detection enabled);
- Argo CD v3.6.1: application-controller (`--operation-processors=C --status-processors=C`,
  `ARGOCD_RECONCILIATION_TIMEOUT=P`, self-heal timeouts at their defaults), repo-server and Redis
  as processes, N Applications (automated sync, self-heal, server-side apply).

Phases, measured with tool-independent signals read from the cluster:
- deploy: from the definition applied to every Deployment with one ready replica;
- change: one value changed in every release, until every ConfigMap carries it;
- drift: 10 releases drifted with kubectl (5 Deployments scaled to 3, 5 ConfigMaps edited); healed
  is the object back as its release says, detected the tool's own signal (Argo CD: the Application
  OutOfSync or its self-heal operation started; Flux: the HelmRelease's `Drifted` condition;
  Moorage: the agent's first read of the drifted kind after the edit, from the audit log, i.e. the
  start of the sweep its watch woke);
- idle: a window with nothing changing (default 600 s): CPU seconds of the tool's processes and
  their reaped children (helm), and the API-server requests the tool made (from the API server's
  audit log, by user agent: Moorage `python-httpx` (agent) and `Helm/` (its helm children), Flux
  `helm-controller`/`source-controller`, Argo CD `argocd-`); requests are also counted for the
  whole run. The benchmark's own reads carry their own user agent and are not counted.
- memory: peak is the largest sum of RSS over the tool's process tree (Moorage: the agent and its
  helm children; Flux: both controllers; Argo CD: controller, repo-server (with its helm children)
  and Redis), sampled every 0.2 s through the whole run; steady is that sum at the end of the idle
  window. The same for PSS (each shared page divided among the processes that map it: five helm
  children share one binary's text, Argo CD's controller and repo-server are one binary).

    .venv/bin/python bench/peers.py [--n 100] [--runs 3] [--concurrency 5] [--period 60]
                                    [--idle 600] [--tools moorage,flux,argocd]

`make bench-peers` builds Flux (Argo CD comes with `make tools-argocd`) and runs it. Prints one JSON
object: the settings, per tool the median of the runs, then ratios against Moorage (above 1: Moorage
is better)."""

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: `bench` importable
from bench.control_plane import free_port, wait_ok

from moorage import devcluster
from moorage.devcluster import argocd, binaries, chartsources, network, process
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig

CHART = Path(__file__).parent / "charts" / "quintet"
NAMESPACES = 10
DRIFTED = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MOORAGE = [sys.executable, "-m", "moorage.cli.main"]
BENCH_AGENT = "moorage-bench-peers"  # the user agent of this script's own reads: counted for no tool
# user-agent prefixes of each tool's requests in the audit log
AGENTS = {
    "moorage": ("python-httpx", "Helm/"),
    "flux": ("helm-controller", "source-controller"),
    "argocd": ("argocd-",),
}
METRICS = (
    "deploy_s",
    "change_s",
    "drift_detect_s",
    "drift_heal_s",
    "idle_cpu_s",
    "idle_requests",
    "requests_total",
    "peak_rss_mib",
    "steady_rss_mib",
    "peak_pss_mib",
    "steady_pss_mib",
)


@dataclass
class Run:
    deploy_s: float = 0.0
    change_s: float = 0.0
    drift_detect_s: float = 0.0
    drift_heal_s: float = 0.0
    idle_cpu_s: float = 0.0
    idle_requests: float = 0.0
    requests_total: float = 0.0
    peak_rss_mib: float = 0.0
    steady_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    steady_pss_mib: float = 0.0
    idle_by_agent: dict[str, int] = field(default_factory=dict)
    idle_by_verb: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def names(tool: str, n: int) -> list[tuple[str, str]]:
    """(namespace, release) of each of the N releases of `tool` (release names unique cluster-wide, as
    Moorage's add-on names must be)."""
    return [(f"{tool}-{i % NAMESPACES}", f"{tool}-q{i}") for i in range(n)]


def kubectl(cluster: devcluster.DevCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(binaries.find("kubectl")), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=stdin, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr[-600:]}")
    return done.stdout


def apply_all(cluster: devcluster.DevCluster, objects: list[dict[str, Any]]) -> None:
    for start in range(0, len(objects), 200):
        chunk = {"apiVersion": "v1", "kind": "List", "items": objects[start : start + 200]}
        kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(chunk))


def namespaces(tool: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{tool}-{i}"}}
        for i in range(NAMESPACES)
    ]


async def wait_until(
    kube: KubeClient,
    tool: str,
    n: int,
    check: Callable[[dict[str, Any]], bool],
    kind: str,
    timeout: float = 1800.0,
) -> float:
    """Seconds until every release's object of `kind` passes `check`."""
    started = time.perf_counter()
    want = {(ns, name) for ns, name in names(tool, n)}
    api = "apps/v1" if kind == "Deployment" else "v1"
    while True:
        ok = set()
        for i in range(NAMESPACES):
            for obj in await kube.list(api, kind, f"{tool}-{i}"):
                key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                if key in want and check(obj):
                    ok.add(key)
        if ok >= want:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{tool}: only {len(ok)} of {n} {kind}s ready after {timeout:.0f}s")
        await asyncio.sleep(0.5)


def deployed(obj: dict[str, Any]) -> bool:
    return int((obj.get("status") or {}).get("readyReplicas") or 0) >= 1


def carries(message: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj.get("data") or {}).get("message") == message


# ------------------------------------------------------------------ processes: CPU and memory


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (children of any of its threads: Go forks from any)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes and of their reaped children (helm, for Moorage and Argo CD)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / CLOCK_TICKS


def tree_memory_mib(roots: list[int]) -> tuple[float, float]:
    """(RSS, PSS) summed over the process trees of `roots`. PSS shares each page among the processes
    mapping it (helm's text in five helm children, Argo CD's one binary run as two components)."""
    rss = pss = 0
    for pid in {p for root in roots for p in descendants(root)}:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


class MemorySampler(threading.Thread):
    """The largest sums of RSS and of PSS over the process trees of `roots`, sampled every `every` s."""

    def __init__(self, roots: list[int], every: float = 0.2) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.roots, self.every = roots, every
        self.peak_rss = self.peak_pss = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss, pss = tree_memory_mib(self.roots)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._done.wait(self.every)

    def stop(self, run: Run) -> None:
        self._done.set()
        if self.is_alive():
            self.join()
        run.peak_rss_mib, run.peak_pss_mib = self.peak_rss, self.peak_pss


# ------------------------------------------------------------------ the API server's audit log


@dataclass(frozen=True)
class Request:
    at: float  # epoch seconds the API server received it
    agent: str
    verb: str
    resource: str
    namespace: str
    name: str


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def audit_requests(cluster: devcluster.DevCluster) -> list[Request]:
    found = []
    try:
        lines = cluster.audit_log.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut at the end of the file
        ref = event.get("objectRef") or {}
        found.append(
            Request(
                _epoch(event["requestReceivedTimestamp"]),
                str(event.get("userAgent") or ""),
                str(event.get("verb") or ""),
                str(ref.get("resource") or ""),
                str(ref.get("namespace") or ""),
                str(ref.get("name") or ""),
            )
        )
    return found


def of_tool(tool: str, requests: list[Request], since: float, until: float) -> list[Request]:
    return [r for r in requests if since <= r.at <= until and r.agent.startswith(AGENTS[tool])]


def short_agent(agent: str) -> str:
    return agent.split(" ", 1)[0].split("/", 1)[0]


# ------------------------------------------------------------------ drift


# (kind, release index): the first half of the drifted releases get their Deployment scaled, the
# second half their ConfigMap edited
def drift_targets(tool: str, n: int) -> list[tuple[str, str, str]]:
    chosen = names(tool, n)[: min(DRIFTED, n)]
    half = len(chosen) // 2
    return [("Deployment" if i < half else "ConfigMap", ns, name) for i, (ns, name) in enumerate(chosen)]


def is_healed(kind: str, obj: dict[str, Any] | None, message: str) -> bool:
    if obj is None:
        return False
    if kind == "Deployment":
        return int((obj.get("spec") or {}).get("replicas") or 0) == 1
    return (obj.get("data") or {}).get("message") == message


# a tool's own signal that it saw the drift of release `name`, given when the drift was made
Detector = Callable[[KubeClient, str, str, float], Awaitable[bool]]


async def make_drift(cluster: devcluster.DevCluster, tool: str, n: int) -> dict[str, float]:
    """Drift the targets with kubectl, all at once; when each edit returned (epoch seconds)."""
    kubectl_bin = str(binaries.find("kubectl"))

    async def one(kind: str, ns: str, name: str) -> tuple[str, float]:
        if kind == "Deployment":
            args = ["scale", f"deployment/{name}", "--replicas=3"]
        else:
            args = ["patch", f"configmap/{name}", "--type=merge", "-p", '{"data":{"message":"drifted"}}']
        proc = await asyncio.create_subprocess_exec(
            kubectl_bin, f"--kubeconfig={cluster.kubeconfig}", "-n", ns, *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {args[0]} {name}: {err.decode()[-400:]}")
        return name, time.time()

    return dict(await asyncio.gather(*(one(*t) for t in drift_targets(tool, n))))


async def drift_phase(
    cluster: devcluster.DevCluster,
    kube: KubeClient,
    tool: str,
    args: argparse.Namespace,
    detector: Detector | None,
    run: Run,
) -> dict[str, float]:
    """Drift 10 releases; fills run.drift_heal_s (and drift_detect_s when `detector` tells) with the
    slowest release's seconds. Returns when each edit was made, for detection read afterwards."""
    targets = drift_targets(tool, args.n)
    made = await make_drift(cluster, tool, args.n)
    healed: dict[str, float] = {}
    detected: dict[str, float] = {}
    deadline = time.monotonic() + 3 * args.period + 300
    while len(healed) < len(targets) and time.monotonic() < deadline:
        for kind, ns, name in targets:
            if name in healed:
                continue
            now = time.time()
            if detector is not None and name not in detected and await detector(kube, ns, name, made[name]):
                detected[name] = now
            api = "apps/v1" if kind == "Deployment" else "v1"
            if is_healed(kind, await kube.get(api, kind, name, ns), "two"):
                healed[name] = now
                detected.setdefault(name, now)  # healed before the poll saw it detected
        await asyncio.sleep(0.5)
    if len(healed) < len(targets):
        missing = sorted({n for _, _, n in targets} - set(healed))
        raise RuntimeError(f"{tool}: drift of {missing} not healed within {3 * args.period + 300}s")
    run.drift_heal_s = max(healed[n] - made[n] for n in healed)
    if detector is not None:
        run.drift_detect_s = max(detected[n] - made[n] for n in detected)
    return made


async def argo_detected(kube: KubeClient, _ns: str, name: str, made: float) -> bool:
    app = await kube.get("argoproj.io/v1alpha1", "Application", name, argocd.NAMESPACE) or {}
    status = app.get("status") or {}
    if (status.get("sync") or {}).get("status") == "OutOfSync":
        return True
    started = (status.get("operationState") or {}).get("startedAt")
    return isinstance(started, str) and _epoch(started) >= int(made)  # second precision


async def flux_detected(kube: KubeClient, _ns: str, name: str, made: float) -> bool:
    release = await kube.get("helm.toolkit.fluxcd.io/v2", "HelmRelease", name, "flux-system") or {}
    for condition in (release.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Drifted" and condition.get("status") == "True":
            return _epoch(str(condition.get("lastTransitionTime") or "")) >= int(made)
    return False


# ------------------------------------------------------------------ the common phases


async def idle_phase(args: argparse.Namespace, roots: list[int], run: Run) -> tuple[float, float]:
    """The idle window; returns its start and end (epoch seconds)."""
    await asyncio.sleep(10)  # the drift's last heal settles
    cpu, since = cpu_seconds(roots), time.time()
    await asyncio.sleep(args.idle)
    run.idle_cpu_s = cpu_seconds(roots) - cpu
    until = time.time()
    run.steady_rss_mib, run.steady_pss_mib = tree_memory_mib(roots)
    return since, until


def count_requests(
    cluster: devcluster.DevCluster, tool: str, run: Run, began: float, idle: tuple[float, float]
) -> None:
    time.sleep(1)  # the audit log's last lines
    requests = audit_requests(cluster)
    if not requests:
        run.notes.append("no audit log: requests not counted")
        return
    run.requests_total = len(of_tool(tool, requests, began, idle[1]))
    idle_requests = of_tool(tool, requests, *idle)
    run.idle_requests = len(idle_requests)
    run.idle_by_agent = dict(Counter(short_agent(r.agent) for r in idle_requests).most_common())
    run.idle_by_verb = dict(Counter(f"{r.verb} {r.resource}" for r in idle_requests).most_common(8))


# ------------------------------------------------------------------ the tools


def moorage_definition(repo: str, n: int, message: str) -> str:
    lines = ["apiVersion: v1", "kind: ImportCluster", "metadata: {name: peers}", "spec:",
             "  helm_registries:", f"    - {{name: bench, url: '{repo}'}}", "  stacks:",
             "    - name: apps", "      addons:"]  # fmt: skip
    for ns, name in names("moorage", n):
        lines += [f"        - name: {name}", "          chart_name: quintet",
                  '          chart_version: "1.0.0"', "          registry_name: bench",
                  f"          namespace: {ns}",
                  f"          configuration: {{values: {{message: {message}}}}}"]  # fmt: skip
    return "\n".join(lines) + "\n"


async def moorage_detected_from_audit(
    cluster: devcluster.DevCluster, n: int, made: dict[str, float], run: Run
) -> None:
    """The start of the sweep that found each drift: the agent's first read of the drifted kind
    (of the object, its namespace or the whole cluster) after the edit."""
    await asyncio.sleep(1)
    requests = [r for r in audit_requests(cluster) if r.agent.startswith("python-httpx")]
    seconds = []
    for kind, ns, name in drift_targets("moorage", n):
        resource = "deployments" if kind == "Deployment" else "configmaps"
        reads = [
            r.at
            for r in requests
            if r.at >= made[name]
            and r.resource == resource
            and r.verb in ("get", "list")
            and r.namespace in ("", ns)
            and r.name in ("", name)
        ]
        if reads:
            seconds.append(min(reads) - made[name])
    if len(seconds) == len(made):
        run.drift_detect_s = max(seconds)
    else:
        run.notes.append("drift detection not seen in the audit log: detect_s is the heal time")
        run.drift_detect_s = run.drift_heal_s


async def run_moorage(
    cluster: devcluster.DevCluster, repo: str, work: Path, args: argparse.Namespace, kube: KubeClient
) -> Run:
    run = Run()
    apply_all(cluster, namespaces("moorage"))
    home = work / f"moorage-{secrets.token_hex(4)}"
    home.mkdir()
    token = "mrg_" + secrets.token_urlsafe(32)
    port, health = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    server = process.start(
        "moorage-server",
        [*MOORAGE, "server", "--port", str(port), "--data-dir", str(home / "server")],
        cluster.log("moorage-server"),
        {"MOORAGE_BOOTSTRAP_TOKEN": token},
    )
    procs = [server]
    sampler: MemorySampler | None = None
    try:
        wait_ok(f"{url}/healthz", timeout=120)
        api = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        agent_token = api.post("/clusters", json={"name": "peers"}).raise_for_status().json()["agent_token"]
        began = time.time()
        helm_env = {
            f"HELM_{part.upper()}_HOME": str(home / "helm" / part) for part in ("cache", "config", "data")
        }
        agent = process.start(
            "moorage-agent",
            [*MOORAGE, "agent", "--server", url, "--kubeconfig", str(cluster.kubeconfig),
             "--health-port", str(health),
             "--sweep-interval", str(args.period), "--concurrency", str(args.concurrency)],
            cluster.log("moorage-agent"),
            {"MOORAGE_AGENT_TOKEN": agent_token, **helm_env},
        )  # fmt: skip
        procs.append(agent)
        sampler = MemorySampler([agent.pid])
        sampler.start()
        wait_ok(f"http://127.0.0.1:{health}/readyz", timeout=120)

        def apply(message: str) -> None:
            files = {"import-cluster.yaml": moorage_definition(repo, args.n, message)}
            api.post(
                "/clusters/peers/apply", json={"files": files, "root": "import-cluster.yaml"}
            ).raise_for_status()

        started = time.perf_counter()
        apply("one")
        await wait_until(kube, "moorage", args.n, deployed, "Deployment")
        run.deploy_s = time.perf_counter() - started
        started = time.perf_counter()
        apply("two")
        await wait_until(kube, "moorage", args.n, carries("two"), "ConfigMap")
        run.change_s = time.perf_counter() - started
        made = await drift_phase(cluster, kube, "moorage", args, None, run)
        await moorage_detected_from_audit(cluster, args.n, made, run)
        idle = await idle_phase(args, [agent.pid], run)
        sampler.stop(run)
        count_requests(cluster, "moorage", run, began, idle)
    finally:
        if sampler is not None:
            sampler.stop(run)
        process.stop(list(reversed(procs)))
    return run


def _flux_objects(repo: str, n: int, message: str, period: int) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "HelmRepository",
            "metadata": {"name": "bench", "namespace": "flux-system"},
            "spec": {"url": repo, "interval": "10m"},
        }
    ]
    for ns, name in names("flux", n):
        objects.append(
            {
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {"name": name, "namespace": "flux-system"},
                "spec": {
                    "interval": f"{period}s",
                    "releaseName": name,
                    "targetNamespace": ns,
                    "storageNamespace": ns,
                    "chart": {
                        "spec": {
                            "chart": "quintet",
                            "version": "1.0.0",
                            "sourceRef": {
                                "kind": "HelmRepository",
                                "name": "bench",
                                "namespace": "flux-system",
                            },
                        }
                    },
                    "values": {"message": message},
                    "driftDetection": {"mode": "enabled"},
                },
            }
        )
    return objects


async def run_flux(
    cluster: devcluster.DevCluster, repo: str, work: Path, args: argparse.Namespace, kube: KubeClient
) -> Run:
    run = Run()
    crds = [binaries.find(c).resolve().parent / "crds" for c in ("helm-controller", "source-controller")]
    for directory in crds:
        for crd in sorted(directory.glob("*.yaml")):
            kubectl(cluster, "apply", "--server-side", "-f", str(crd))
    kubectl(
        cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/helmreleases.helm.toolkit.fluxcd.io",
    )
    apply_all(
        cluster,
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}, *namespaces("flux")],
    )
    storage = work / f"flux-storage-{secrets.token_hex(4)}"
    storage.mkdir()
    ports = network.free_ports(5)
    env = {"KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
    began = time.time()
    source = process.start(
        "flux-source-controller",
        [str(binaries.find("source-controller")), f"--storage-path={storage}",
         f"--storage-addr=127.0.0.1:{ports[0]}", f"--storage-adv-addr=127.0.0.1:{ports[0]}",
         f"--metrics-addr=127.0.0.1:{ports[1]}",
         f"--health-addr=127.0.0.1:{ports[2]}", f"--concurrent={args.concurrency}", "--log-level=error"],
        cluster.log("flux-source-controller"), env,
    )  # fmt: skip
    helm = process.start(
        "flux-helm-controller",
        [str(binaries.find("helm-controller")), f"--metrics-addr=127.0.0.1:{ports[3]}",
         f"--health-addr=127.0.0.1:{ports[4]}", f"--concurrent={args.concurrency}", "--log-level=error"],
        cluster.log("flux-helm-controller"), env,
    )  # fmt: skip
    pids = [source.pid, helm.pid]
    sampler = MemorySampler(pids)
    sampler.start()
    try:
        started = time.perf_counter()
        apply_all(cluster, _flux_objects(repo, args.n, "one", args.period))
        await wait_until(kube, "flux", args.n, deployed, "Deployment")
        run.deploy_s = time.perf_counter() - started
        started = time.perf_counter()
        apply_all(cluster, _flux_objects(repo, args.n, "two", args.period))
        await wait_until(kube, "flux", args.n, carries("two"), "ConfigMap")
        run.change_s = time.perf_counter() - started
        await drift_phase(cluster, kube, "flux", args, flux_detected, run)
        idle = await idle_phase(args, pids, run)
        sampler.stop(run)
        count_requests(cluster, "flux", run, began, idle)
    finally:
        sampler.stop(run)
        process.stop([helm, source])
        kubectl(cluster, "delete", "helmreleases", "--all", "-n", "flux-system", "--wait=false")
    return run


def _argo_objects(repo: str, n: int, message: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": name, "namespace": argocd.NAMESPACE},
            "spec": {
                "project": "default",
                "source": {
                    "repoURL": repo,
                    "chart": "quintet",
                    "targetRevision": "1.0.0",
                    "helm": {"releaseName": name, "valuesObject": {"message": message}},
                },
                "destination": {"server": argocd.IN_CLUSTER, "namespace": ns},
                "syncPolicy": {"automated": {"selfHeal": True}, "syncOptions": ["ServerSideApply=true"]},
            },
        }
        for ns, name in names("argocd", n)
    ]


ARGO_MEASURED = ("redis", "argocd-repo-server", "argocd-application-controller")


async def run_argocd(
    cluster: devcluster.DevCluster, repo: str, _work: Path, args: argparse.Namespace, kube: KubeClient
) -> Run:
    run = Run()
    began = time.time()
    os.environ["ARGOCD_RECONCILIATION_TIMEOUT"] = f"{args.period}s"  # its --app-resync
    argocd.start(cluster, processors=args.concurrency)
    pids = [p.pid for p in cluster.processes if p.component in ARGO_MEASURED]
    sampler = MemorySampler(pids)
    sampler.start()
    try:
        apply_all(cluster, namespaces("argocd"))
        started = time.perf_counter()
        apply_all(cluster, _argo_objects(repo, args.n, "one"))
        await wait_until(kube, "argocd", args.n, deployed, "Deployment")
        run.deploy_s = time.perf_counter() - started
        started = time.perf_counter()
        apply_all(cluster, _argo_objects(repo, args.n, "two"))
        await wait_until(kube, "argocd", args.n, carries("two"), "ConfigMap")
        run.change_s = time.perf_counter() - started
        await drift_phase(cluster, kube, "argocd", args, argo_detected, run)
        idle = await idle_phase(args, pids, run)
        sampler.stop(run)
        count_requests(cluster, "argocd", run, began, idle)
    finally:
        sampler.stop(run)
        argocd.stop(cluster)
    return run


RUNNERS: dict[str, Callable[..., Awaitable[Run]]] = {
    "moorage": run_moorage,
    "flux": run_flux,
    "argocd": run_argocd,
}


async def one_run(tool: str, args: argparse.Namespace, work: Path, repo: str) -> Run:
    cluster = devcluster.up(f"peers-{tool}", nodes=nodes_for(args.n), audit=True)
    try:
        async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as kube:
            kube._http.headers["User-Agent"] = BENCH_AGENT  # this script's reads: no tool's
            return await RUNNERS[tool](cluster, repo, work, args, kube)
    finally:
        devcluster.down(cluster.name)


def nodes_for(n: int) -> int:
    """Nodes enough for N one-replica Deployments (a devcluster node takes 110 pods), at least 3."""
    return max(3, -(-n // 100) + 1)


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "concurrency": args.concurrency,
        "nodes": nodes_for(args.n),
        "period_s": args.period,
        "moorage": "agent --sweep-interval=P --concurrency=C, watch on (a sweep 0.5 s after an edit)",
        "flux": "helm-controller and source-controller --concurrent=C; HelmRelease interval P, "
        "driftDetection enabled; HelmRepository interval 10m",
        "argocd": "application-controller --operation-processors=C --status-processors=C, app resync P "
        "(ARGOCD_RECONCILIATION_TIMEOUT), self-heal on (timeouts at their defaults); ServerSideApply",
        "drift": f"{DRIFTED} releases: half Deployments scaled 1 -> 3, half ConfigMaps edited (kubectl)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--period", type=int, default=60, help="reconcile period of every tool (s)")
    parser.add_argument("--idle", type=int, default=600, help="seconds of the idle window")
    parser.add_argument("--tools", default="moorage,flux,argocd")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(RUNNERS))
    if unknown:
        raise SystemExit(f"unknown tools {unknown}: choose among {sorted(RUNNERS)}")
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-peers-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    chartsources.package_charts([CHART], work / "repo", work / "helm")
    out: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "n": args.n,
        "runs": args.runs,
        "idle_s": args.idle,
        "settings": settings(args),
    }
    try:
        with chartsources.serve_chart_repo(work / "repo") as repo:
            chartsources.index_repo(work / "repo", repo.url, work / "helm")
            for tool in tools:
                runs = []
                for _ in range(args.runs):
                    runs.append(asyncio.run(one_run(tool, args, work, repo.url)))
                    print(f"{tool}: {json.dumps(runs[-1].__dict__)}", file=sys.stderr, flush=True)
                out[tool] = {m: round(statistics.median(getattr(r, m) for r in runs), 2) for m in METRICS}
                out[tool]["idle_requests_by_agent"] = runs[0].idle_by_agent
                out[tool]["idle_requests_by_verb"] = runs[0].idle_by_verb
                out[tool]["notes"] = runs[0].notes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "moorage" in out:
        ours = out["moorage"]
        out["ratios_vs_moorage"] = {
            tool: {m: round(out[tool][m] / ours[m], 2) if ours[m] else None for m in METRICS}
            for tool in tools
            if tool != "moorage"
        }
    print(json.dumps(out, indent=2))
    print(table(out))


UNITS = {"_s": "s", "_mib": "MiB"}


def table(out: dict[str, Any]) -> str:
    """The medians as a Markdown table: each tool's value, and each peer's as a ratio to Moorage's
    (above 1: Moorage uses less or is faster)."""
    tools = [t for t in RUNNERS if t in out]
    peers = [t for t in tools if t != "moorage"]
    ratios = out.get("ratios_vs_moorage", {})
    head = ["metric", *tools, *(f"{p} / moorage" for p in peers if p in ratios)]
    lines = [
        f"{out['n']} releases, median of {out['runs']} run(s), idle {out['idle_s']} s; "
        f"{out['date']}, {out['machine']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for metric in METRICS:
        unit = next((u for suffix, u in UNITS.items() if metric.endswith(suffix)), "")
        cells = [f"{out[t][metric]:g} {unit}".rstrip() for t in tools]
        cells += [_ratio(ratios[p][metric]) for p in peers if p in ratios]
        lines.append("| " + " | ".join([metric, *cells]) + " |")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


if __name__ == "__main__":
    main()
