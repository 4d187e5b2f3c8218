"""Which Python Kubernetes client for `moorage.kube`: parallel GETs, one LIST, server-side apply, RSS.

    .venv/bin/python bench/kube_client_choice.py [--objects 500] [--runs 5]

Starts a devcluster, creates N ConfigMaps, then runs each client in its own process (so RSS is
its own) and prints one JSON object with medians per client. The decision is in docs/decisions.md."""

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

NAMESPACE = "bench"


async def run_lightkube(kubeconfig: str, n: int) -> dict[str, float]:
    from lightkube import AsyncClient, KubeConfig
    from lightkube.generic_resource import create_namespaced_resource

    cm = create_namespaced_resource("", "v1", "ConfigMap", "configmaps")
    client = AsyncClient(KubeConfig.from_file(kubeconfig))
    t = time.perf_counter()
    await asyncio.gather(*(client.get(cm, f"cm-{i}", namespace=NAMESPACE) for i in range(n)))
    get_s = time.perf_counter() - t
    t = time.perf_counter()
    listed = [o async for o in client.list(cm, namespace=NAMESPACE)]
    list_s = time.perf_counter() - t
    assert len(listed) >= n
    t = time.perf_counter()
    for i in range(50):
        obj = cm.from_dict(_cm(f"ssa-{i}"))
        await client.apply(obj, field_manager="moorage-bench", force=True)
    ssa_s = time.perf_counter() - t
    await client.close()
    return {"get_s": get_s, "list_s": list_s, "ssa50_s": ssa_s}


async def run_kubernetes_asyncio(kubeconfig: str, n: int) -> dict[str, float]:
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.dynamic import DynamicClient

    await config.load_kube_config(config_file=kubeconfig)
    async with client.ApiClient() as api:
        dyn = await DynamicClient(api)
        cm = await dyn.resources.get(api_version="v1", kind="ConfigMap")
        t = time.perf_counter()
        await asyncio.gather(*(cm.get(name=f"cm-{i}", namespace=NAMESPACE) for i in range(n)))
        get_s = time.perf_counter() - t
        t = time.perf_counter()
        listed = await cm.get(namespace=NAMESPACE)
        list_s = time.perf_counter() - t
        assert len(listed.items) >= n
        t = time.perf_counter()
        for i in range(50):
            await cm.server_side_apply(
                body=_cm(f"ssa-{i}"),
                name=f"ssa-{i}",
                namespace=NAMESPACE,
                field_manager="moorage-bench",
                force_conflicts=True,
            )
        ssa_s = time.perf_counter() - t
    return {"get_s": get_s, "list_s": list_s, "ssa50_s": ssa_s}


async def run_moorage(kubeconfig: str, n: int) -> dict[str, float]:
    from pathlib import Path

    from moorage.kube.client import KubeClient
    from moorage.kube.config import from_kubeconfig

    async with KubeClient(from_kubeconfig(Path(kubeconfig))) as client:
        t = time.perf_counter()
        await asyncio.gather(*(client.get("v1", "ConfigMap", f"cm-{i}", NAMESPACE) for i in range(n)))
        get_s = time.perf_counter() - t
        t = time.perf_counter()
        listed = await client.list("v1", "ConfigMap", NAMESPACE)
        list_s = time.perf_counter() - t
        assert len(listed) >= n
        t = time.perf_counter()
        for i in range(50):
            await client.apply(_cm(f"ssa-{i}"), field_manager="moorage-bench", force=True)
        ssa_s = time.perf_counter() - t
    return {"get_s": get_s, "list_s": list_s, "ssa50_s": ssa_s}


def _cm(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"a": "b"},
    }


def child(which: str, kubeconfig: str, n: int) -> None:
    runner = {
        "lightkube": run_lightkube,
        "kubernetes_asyncio": run_kubernetes_asyncio,
        "moorage.kube (httpx2)": run_moorage,
    }[which]
    result = asyncio.run(runner(kubeconfig, n))
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.objects)
        return

    from moorage import devcluster
    from moorage.devcluster import binaries

    os.environ["MOORAGE_DEVCLUSTER_HOME"] = tempfile.mkdtemp(prefix="moorage-bench-")
    cluster = devcluster.up("kube-bench", nodes=1)
    try:
        kubectl = [str(binaries.find("kubectl")), f"--kubeconfig={cluster.kubeconfig}"]
        subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True)
        objects = [_cm(f"cm-{i}") for i in range(args.objects)]
        subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", "-"],
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
            text=True,
            check=True,
            capture_output=True,
        )
        results: dict[str, dict[str, float]] = {}
        for which in ("lightkube", "kubernetes_asyncio", "moorage.kube (httpx2)"):
            runs = []
            for _ in range(args.runs):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--objects",
                        str(args.objects),
                        "--child",
                        which,
                        str(cluster.kubeconfig),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout))
            results[which] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        print(json.dumps({"objects": args.objects, "runs": args.runs, "medians": results}, indent=2))
    finally:
        devcluster.down(cluster.name)


if __name__ == "__main__":
    main()
