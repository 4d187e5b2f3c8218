"""Native engine numbers on a devcluster: deploy N add-ons from nothing, a no-op re-sync, a sweep with
no drift and with 10 drifted, and the peak RSS of the engine process (helm children not included).

    .venv/bin/python bench/engine.py [--addons 100] [--runs 5] [--concurrency 8]

Each add-on is the `quintet` chart (5 objects), in 10 namespaces. Prints one JSON object."""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from moorage import devcluster
from moorage.devcluster import binaries, chartsources
from moorage.engine.context import EngineContext, Options
from moorage.engine.executor import sync
from moorage.engine.outcome import EntryStatus
from moorage.engine.sweep import sweep
from moorage.helm.cli import Helm
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from moorage.spec.loader import LoadOptions, load

CHART = Path(__file__).parent / "charts" / "quintet"


def definition(root: Path, repo: str, addons: int) -> None:
    lines = [
        "apiVersion: v1",
        "kind: ImportCluster",
        "metadata: {name: bench}",
        "spec:",
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
            f"          namespace: bench-{i % 10}",
            "          settings: {sync_policy: {self_heal: false}}",
        ]
    (root / "import-cluster.yaml").write_text("\n".join(lines) + "\n")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(
    kubeconfig: Path, root: Path, helm_home: Path, runs: int, concurrency: int
) -> dict[str, object]:
    result = load(root / "import-cluster.yaml", LoadOptions(decrypt=False))
    if not (result.ok and result.resolved and result.plan):
        raise SystemExit(result.report.to_text())
    cluster, plan = result.resolved, result.plan
    numbers: dict[str, object] = {}
    async with KubeClient(from_kubeconfig(kubeconfig)) as kube:
        ctx = EngineContext(
            kube, Helm(kubeconfig=kubeconfig, home=helm_home), Options(concurrency=concurrency)
        )
        started = time.perf_counter()
        first = await sync(ctx, cluster, plan)
        numbers["deploy_from_nothing_s"] = round(time.perf_counter() - started, 2)
        failed = [o.message for o in first.outcomes.values() if not o.ok]
        assert not failed, failed[:3]

        resync = []
        for _ in range(runs):
            started = time.perf_counter()
            again = await sync(ctx, cluster, plan)
            resync.append(round(time.perf_counter() - started, 3))
            assert {o.status for o in again.outcomes.values()} == {EntryStatus.UNCHANGED}
        numbers["noop_resync_s"] = resync
        numbers["noop_resync_median_s"] = statistics.median(resync)

        clean = []
        for _ in range(runs):
            beat, _ = await sweep(ctx, cluster)
            assert beat.drifted == 0, beat
            clean.append(round(beat.sweep_duration_seconds, 3))
        numbers["sweep_no_drift_s"] = clean
        numbers["sweep_no_drift_median_s"] = statistics.median(clean)

        kubectl = [str(binaries.find("kubectl")), f"--kubeconfig={kubeconfig}"]
        for i in range(10):
            subprocess.run(
                [*kubectl, "scale", "-n", f"bench-{i % 10}", f"deploy/app-{i}", "--replicas=3"],
                check=True,
                capture_output=True,
            )
        drifted = []
        for _ in range(runs):
            beat, _ = await sweep(ctx, cluster)
            assert beat.drifted == 10, beat
            drifted.append(round(beat.sweep_duration_seconds, 3))
        numbers["sweep_10_drifted_s"] = drifted
        numbers["sweep_10_drifted_median_s"] = statistics.median(drifted)
        numbers["live_objects"] = 5 * len(cluster.addons)
    numbers["engine_peak_rss_mib"] = round(rss_mib(), 1)
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addons", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moorage-bench-engine-"))
    os.environ["MOORAGE_DEVCLUSTER_HOME"] = str(work / "clusters")
    cluster = devcluster.up("engine-bench", nodes=3)
    try:
        archives = chartsources.package_charts([CHART], work / "repo", work / "helm")
        with chartsources.serve_chart_repo(work / "repo") as repo:
            chartsources.index_repo(work / "repo", repo.url, work / "helm")
            root = work / "definition"
            root.mkdir()
            definition(root, repo.url, args.addons)
            numbers = asyncio.run(
                measure(cluster.kubeconfig, root, work / "helm", args.runs, args.concurrency)
            )
        numbers |= {"addons": args.addons, "concurrency": args.concurrency, "chart": archives[0].name}
        print(json.dumps(numbers, indent=2))
    finally:
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
