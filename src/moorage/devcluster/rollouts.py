"""Argo Rollouts on a devcluster, as upstream's `make start-e2e` runs it: the rollouts-controller
(built by `make tools-rollouts` from the Go module proxy) as a child process of the devcluster (so
`devcluster down` stops it) against the devcluster's kubeconfig, with the CRDs of the same module.

kwok makes the pods of the ReplicaSets the controller creates Ready, so a canary moves through its
steps as on a real cluster. The controller's leader election is off (one instance); its namespace
(POD_NAMESPACE, for the optional notification ConfigMap) is `argo-rollouts`."""

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.devcluster import binaries, http, kubectl, network, process
from moorage.devcluster.cluster import DevCluster
from moorage.devcluster.errors import DevclusterError

NAMESPACE = "argo-rollouts"
COMPONENT = "argo-rollouts"
CONTROLLER = "rollouts-controller"
PLUGIN = "kubectl-argo-rollouts"
CRD_FILES = (
    "rollout-crd.yaml",
    "analysis-run-crd.yaml",
    "analysis-template-crd.yaml",
    "cluster-analysis-template-crd.yaml",
    "experiment-crd.yaml",
)
CRD_NAMES = (
    "rollouts.argoproj.io",
    "analysisruns.argoproj.io",
    "analysistemplates.argoproj.io",
    "clusteranalysistemplates.argoproj.io",
    "experiments.argoproj.io",
)


@dataclass(frozen=True)
class ArgoRollouts:
    """Where the running controller listens (its own ports, not upstream's 8090/8080)."""

    metrics_port: int
    healthz_port: int


def crds_dir() -> Path:
    """The CRDs that tools/k8s/build.sh keeps next to the rollouts-controller binary."""
    found = binaries.find(CONTROLLER).resolve().parent / "crds"
    if not all((found / f).is_file() for f in CRD_FILES):
        raise DevclusterError(
            f"Argo Rollouts' CRDs are missing from {found}; run `make tools-rollouts` to restore them"
        )
    return found


def _namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def install_crds(cluster: DevCluster) -> None:
    """The namespace and the five CRDs, server-side (each is beyond client-side apply's 256 KiB), once
    Established; idempotent."""
    found = crds_dir()
    kubectl.run(cluster, "apply", "--server-side", "-f", "-", stdin=json.dumps(_namespace()))
    for name in CRD_FILES:
        kubectl.run(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(found / name))
    for crd in CRD_NAMES:
        kubectl.established(cluster, f"crd/{crd}")


def start(cluster: DevCluster, timeout: float = 120.0) -> ArgoRollouts:
    """Install the CRDs and run the controller against `cluster`; return once its health port answers."""
    controller = binaries.find(CONTROLLER)
    install_crds(cluster)
    ports = ArgoRollouts(*network.free_ports(2))
    started = process.start(
        COMPONENT,
        [
            str(controller),
            f"--kubeconfig={cluster.kubeconfig}",
            "--leader-elect=false",
            f"--metricsPort={ports.metrics_port}",
            f"--healthzPort={ports.healthz_port}",
            "--logformat=json",
        ],
        cluster.log(COMPONENT),
        {"KUBECONFIG": str(cluster.kubeconfig), "POD_NAMESPACE": NAMESPACE},
    )
    cluster.processes.append(started)
    cluster.save()
    deadline = time.monotonic() + timeout
    while not http.probe("127.0.0.1", ports.healthz_port, "/healthz"):
        if not process.alive(started):
            raise DevclusterError(f"{COMPONENT} exited while starting: {process.log_tail(started.log)}")
        if time.monotonic() > deadline:
            raise DevclusterError(
                f"{COMPONENT} not serving after {timeout:.0f}s: {process.log_tail(started.log)}"
            )
        time.sleep(0.2)
    (cluster.dir / "argo-rollouts.json").write_text(json.dumps(ports.__dict__))
    return ports


def stop(cluster: DevCluster) -> None:
    """Stop the controller (the devcluster keeps running); the CRDs and Rollouts stay in the cluster."""
    process.stop([p for p in cluster.processes if p.component == COMPONENT])
    cluster.processes = [p for p in cluster.processes if p.component != COMPONENT]
    cluster.save()


def plugin(cluster: DevCluster, *args: str, timeout: float = 60.0) -> str:
    """Run `kubectl argo rollouts ARGS` (the plugin built from the same module) against `cluster`."""
    done = subprocess.run(
        [str(binaries.find(PLUGIN)), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise DevclusterError(
            f"kubectl argo rollouts {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}"
        )
    return done.stdout
