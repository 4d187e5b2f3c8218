"""kubectl against a devcluster, for what its add-on components install (Argo CD's and Argo Rollouts'
CRDs and config): the one way to run it, with its error as a DevclusterError."""

import subprocess
import time

from moorage.devcluster import binaries
from moorage.devcluster.cluster import DevCluster
from moorage.devcluster.errors import DevclusterError


def run(cluster: DevCluster, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(binaries.find("kubectl")), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise DevclusterError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def established(cluster: DevCluster, crd: str, timeout: float = 60.0) -> None:
    """Until the CRD (`crd/NAME`) is Established; `kubectl wait` is asked again while the CRD has no
    conditions at all yet (it then fails at once with "<nil> is of the type <nil>" instead of waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            run(cluster, "wait", "--for=condition=Established", "--timeout=60s", crd)
            return
        except DevclusterError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
