"""The ArgoCD engine and the migration away from it, on a devcluster running Argo CD's
application-controller, repo-server, cmp-server (Moorage's SOPS plugin) and Redis (4 of the ~8 processes a
real install runs):

- deploy N add-ons through Argo CD (engine argo_cd) until every Application is Synced and Healthy;
- the memory of those Argo CD processes, at the peak and after a minute idle, against the peak RSS
  of the Moorage engine process that drives them (helm children not included);
- migrate all N to the native engine (one sync), and per add-on the time from Argo CD being taken off
  it to its Application being deleted (an upper bound of the time it has no engine acting on it).

    .venv/bin/python bench/argocd.py [--addons 20] [--concurrency 8] [--idle 60]

Each add-on is the `quintet` chart (5 objects), in 5 namespaces. Prints one JSON object."""

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from moorage import devcluster
from moorage.devcluster import argocd, chartsources, process
from moorage.engine.context import EngineContext, Options
from moorage.engine.executor import sync
from moorage.engine.outcome import EntryStatus
from moorage.helm.cli import Helm
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from moorage.spec.content import ResolvedCluster
from moorage.spec.graph import Plan
from moorage.spec.loader import LoadOptions, load

CHART = Path(__file__).parent / "charts" / "quintet"


def definition(root: Path, repo: str, addons: int, engine: str) -> None:
    lines = [
        "apiVersion: v1",
        "kind: ImportCluster",
        "metadata: {name: bench}",
        "spec:",
        f"  deployment_engine: {engine}",
        "  helm_registries:",
        f"    - {{name: bench, url: '{repo}'}}",
        "  stacks:",
        "    - name: apps",
        "      addons:",
    ]
    for i in range(addons):
        lines += [
            f"        - name: app-{i}",
            "          chart_name: quintet",
            '          chart_version: "1.0.0"',
            "          registry_name: bench",
            f"          namespace: bench-{i % 5}",
        ]
    (root / "import-cluster.yaml").write_text("\n".join(lines) + "\n")


def proc_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def argocd_memory(cluster: devcluster.DevCluster) -> dict[str, dict[str, float]]:
    return {
        p.component: {
            "rss_mib": round(proc_mib(p.pid, "VmRSS"), 1),
            "peak_rss_mib": round(proc_mib(p.pid, "VmHWM"), 1),
        }
        for p in cluster.processes
        if p.component in argocd.COMPONENTS and process.alive(p)
    }


def loaded(root: Path) -> tuple[ResolvedCluster, Plan]:
    result = load(root / "import-cluster.yaml", LoadOptions(decrypt=False))
    if not (result.ok and result.resolved and result.plan):
        raise SystemExit(result.report.to_text())
    return result.resolved, result.plan


async def measure(
    cluster: devcluster.DevCluster, root: Path, repo: str, helm_home: Path, args: argparse.Namespace
) -> dict[str, object]:
    numbers: dict[str, object] = {}
    kubeconfig = cluster.kubeconfig
    async with KubeClient(from_kubeconfig(kubeconfig)) as kube:
        ctx = EngineContext(
            kube,
            Helm(kubeconfig=kubeconfig, home=helm_home),
            Options(concurrency=args.concurrency, timeout_seconds=600),
        )
        definition(root, repo, args.addons, "argo_cd")
        resolved, plan = loaded(root)
        started = time.perf_counter()
        first = await sync(ctx, resolved, plan)
        numbers["argocd_deploy_s"] = round(time.perf_counter() - started, 2)
        failed = [o.message for o in first.outcomes.values() if not o.ok]
        assert not failed, failed[:3]
        numbers["argocd_memory_after_deploy"] = argocd_memory(cluster)
        await asyncio.sleep(args.idle)
        numbers[f"argocd_memory_after_{args.idle}s_idle"] = argocd_memory(cluster)

        definition(root, repo, args.addons, "ankra_native")
        resolved, plan = loaded(root)
        started = time.perf_counter()
        moved = await sync(ctx, resolved, plan)
        numbers["migration_s"] = round(time.perf_counter() - started, 2)
        outcomes = [o for o in moved.outcomes.values() if o.ref.startswith("addon/")]
        failed = [o.message for o in outcomes if o.status is not EntryStatus.APPLIED]
        assert not failed, failed[:3]
        assert all(o.reason == "migrated_from_argocd" for o in outcomes)
        per_addon = sorted(o.seconds for o in outcomes)
        numbers["migration_per_addon_median_s"] = round(statistics.median(per_addon), 2)
        numbers["migration_per_addon_max_s"] = round(per_addon[-1], 2)
    numbers["moorage_engine_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addons", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--idle", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-argocd-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    cluster = devcluster.up("argocd-bench", nodes=3)
    try:
        argocd.start(cluster)
        archives = chartsources.package_charts([CHART], work / "repo", work / "helm")
        with chartsources.serve_chart_repo(work / "repo") as repo:
            chartsources.index_repo(work / "repo", repo.url, work / "helm")
            root = work / "definition"
            root.mkdir()
            numbers = asyncio.run(measure(cluster, root, repo.url, work / "helm", args))
        numbers |= {
            "addons": args.addons,
            "concurrency": args.concurrency,
            "chart": archives[0].name,
            "argocd_components": list(argocd.COMPONENTS),
        }
        print(json.dumps(numbers, indent=2))
    finally:
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
