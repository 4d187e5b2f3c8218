"""Moorage, Flux and Argo CD doing the same work on one devcluster, each alone in turn (issue 20).

Every tool deploys the same N releases of the `quintet` chart (a Deployment, a Service, a
ConfigMap, a ServiceAccount and a Secret) from one Helm repository on loopback, with the same
concurrency where the tool has a knob:

- Moorage: the native engine in this process, `Options(concurrency=C)` (helm as child processes),
  and for the idle phase the agent's loop: a sweep every 60 s (its default);
- Flux 2.9: source-controller v1.9.6 and helm-controller v1.6.4 as processes, both `--concurrent=C`,
  one HelmRepository and N HelmReleases (interval 10m, drift detection enabled);
- Argo CD v3.6.1: application-controller (`--operation-processors=C --status-processors=C`),
  repo-server and Redis as processes, N Applications (automated sync, self-heal).

Measured with the same tool-independent signals, read from the cluster: "deployed" is every
Deployment with one ready replica, "changed" every ConfigMap carrying the new value. Then an idle
window with nothing changing: CPU seconds used by the tool's processes. Memory: peak and steady RSS
of the tool's processes (Moorage: this process plus its helm children's peak).

    .venv/bin/python bench/peers.py [--n 100] [--runs 3] [--concurrency 4] [--idle 600]
                                    [--tools moorage,flux,argocd]

`make bench-peers` builds Flux (Argo CD comes with `make tools-argocd`) and runs it. Prints one JSON
object: per tool the median of the runs, then ratios against Moorage (above 1: Moorage is better)."""

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moorage import devcluster
from moorage.devcluster import argocd, binaries, chartsources, network, process
from moorage.engine.context import EngineContext, Options
from moorage.engine.executor import sync
from moorage.engine.sweep import sweep
from moorage.helm.cli import Helm
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from moorage.spec.loader import LoadOptions, load

CHART = Path(__file__).parent / "charts" / "quintet"
NAMESPACES = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    deploy_s: float = 0.0
    change_s: float = 0.0
    idle_cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    steady_rss_mib: float = 0.0
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
    kube: KubeClient, tool: str, n: int, check: Callable[[dict[str, Any]], bool], kind: str
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
        await asyncio.sleep(0.5)


def deployed(obj: dict[str, Any]) -> bool:
    return int((obj.get("status") or {}).get("readyReplicas") or 0) >= 1


def carries(message: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: (obj.get("data") or {}).get("message") == message


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mib(pids: list[int], field_name: str) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


# ------------------------------------------------------------------ the tools


async def run_moorage(
    cluster: devcluster.DevCluster, repo: str, work: Path, args: argparse.Namespace, kube: KubeClient
) -> Run:
    root = work / "moorage-definition"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def write(message: str) -> None:
        lines = ["apiVersion: v1", "kind: ImportCluster", "metadata: {name: peers}", "spec:",
                 "  helm_registries:", f"    - {{name: bench, url: '{repo}'}}", "  stacks:",
                 "    - name: apps", "      addons:"]  # fmt: skip
        for ns, name in names("moorage", args.n):
            lines += [f"        - name: {name}", "          chart_name: quintet",
                      '          chart_version: "1.0.0"', "          registry_name: bench",
                      f"          namespace: {ns}",
                      f"          configuration: {{values: {{message: {message}}}}}"]  # fmt: skip
        (root / "import-cluster.yaml").write_text("\n".join(lines) + "\n")

    def loaded() -> tuple[Any, Any]:
        result = load(root / "import-cluster.yaml", LoadOptions(decrypt=False))
        assert result.ok and result.resolved and result.plan, result.report.to_text()  # noqa: PT018
        return result.resolved, result.plan

    run = Run()
    ctx = EngineContext(
        kube, Helm(kubeconfig=cluster.kubeconfig, home=work / "helm"), Options(concurrency=args.concurrency)
    )
    write("one")
    resolved, plan = loaded()
    started = time.perf_counter()
    result = await sync(ctx, resolved, plan)
    assert result.ok, [o.message for o in result.outcomes.values() if not o.ok][:3]
    await wait_until(kube, "moorage", args.n, deployed, "Deployment")  # the same signal as the peers'
    run.deploy_s = time.perf_counter() - started
    write("two")
    resolved, plan = loaded()
    started = time.perf_counter()
    result = await sync(ctx, resolved, plan)
    assert result.ok, [o.message for o in result.outcomes.values() if not o.ok][:3]
    await wait_until(kube, "moorage", args.n, carries("two"), "ConfigMap")
    run.change_s = time.perf_counter() - started
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    deadline = time.monotonic() + args.idle
    while time.monotonic() < deadline:
        await sweep(ctx, resolved)
        await asyncio.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    run.idle_cpu_s = sum(
        a.ru_utime + a.ru_stime - (b.ru_utime + b.ru_stime) for a, b in zip(after, before, strict=True)
    )
    run.peak_rss_mib = (after[0].ru_maxrss + after[1].ru_maxrss) / 1024
    run.steady_rss_mib = rss_mib([os.getpid()], "VmRSS")
    run.notes.append("peak RSS: this process's peak plus the largest helm child's peak")
    return run


def _flux_objects(repo: str, n: int, message: str) -> list[dict[str, Any]]:
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
                    "interval": "10m",
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
    storage = work / "flux-storage"
    storage.mkdir(exist_ok=True)
    ports = network.free_ports(5)
    env = {"KUBECONFIG": str(cluster.kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
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
    try:
        started = time.perf_counter()
        apply_all(cluster, _flux_objects(repo, args.n, "one"))
        await wait_until(kube, "flux", args.n, deployed, "Deployment")
        run.deploy_s = time.perf_counter() - started
        started = time.perf_counter()
        apply_all(cluster, _flux_objects(repo, args.n, "two"))
        await wait_until(kube, "flux", args.n, carries("two"), "ConfigMap")
        run.change_s = time.perf_counter() - started
        cpu = cpu_seconds(pids)
        await asyncio.sleep(args.idle)
        run.idle_cpu_s = cpu_seconds(pids) - cpu
        run.peak_rss_mib = rss_mib(pids, "VmHWM")
        run.steady_rss_mib = rss_mib(pids, "VmRSS")
    finally:
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


async def run_argocd(
    cluster: devcluster.DevCluster, repo: str, _work: Path, args: argparse.Namespace, kube: KubeClient
) -> Run:
    run = Run()
    argocd.start(cluster, processors=args.concurrency)
    pids = [p.pid for p in cluster.processes if p.component in argocd.COMPONENTS]
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
        cpu = cpu_seconds(pids)
        await asyncio.sleep(args.idle)
        run.idle_cpu_s = cpu_seconds(pids) - cpu
        run.peak_rss_mib = rss_mib(pids, "VmHWM")
        run.steady_rss_mib = rss_mib(pids, "VmRSS")
    finally:
        argocd.stop(cluster)
    return run


RUNNERS: dict[str, Callable[..., Awaitable[Run]]] = {
    "moorage": run_moorage,
    "flux": run_flux,
    "argocd": run_argocd,
}


async def one_run(tool: str, args: argparse.Namespace, work: Path, repo: str) -> Run:
    cluster = devcluster.up(f"peers-{tool}", nodes=3)
    try:
        async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as kube:
            if tool == "moorage":
                apply_all(cluster, namespaces("moorage"))
            return await RUNNERS[tool](cluster, repo, work, args, kube)
    finally:
        devcluster.down(cluster.name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--idle", type=int, default=600, help="seconds of the idle window")
    parser.add_argument("--tools", default="moorage,flux,argocd")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-peers-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    chartsources.package_charts([CHART], work / "repo", work / "helm")
    out: dict[str, Any] = {
        "n": args.n,
        "runs": args.runs,
        "concurrency": args.concurrency,
        "idle_s": args.idle,
    }
    with chartsources.serve_chart_repo(work / "repo") as repo:
        chartsources.index_repo(work / "repo", repo.url, work / "helm")
        for tool in tools:
            runs = [asyncio.run(one_run(tool, args, work, repo.url)) for _ in range(args.runs)]
            out[tool] = {
                metric: round(statistics.median(getattr(r, metric) for r in runs), 2)
                for metric in ("deploy_s", "change_s", "idle_cpu_s", "peak_rss_mib", "steady_rss_mib")
            }
            out[tool]["notes"] = runs[0].notes
    if "moorage" in out:
        ours = out["moorage"]
        out["ratios_vs_moorage"] = {
            tool: {m: round(out[tool][m] / ours[m], 2) if ours[m] else None for m in ours if m != "notes"}
            for tool in tools
            if tool != "moorage"
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
