"""`make demo`: start a devcluster, publish the example chart to a local OCI registry, install it with
helm and show its status. The cluster keeps running afterwards; `moorage devcluster down --name demo`
stops it."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moorage import devcluster
from moorage.devcluster import binaries, chartsources

ROOT = Path(__file__).resolve().parent.parent
NAME = "demo"
CHART = ROOT / "tests" / "charts" / "webapp"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(*argv: str, env: dict[str, str] | None = None) -> None:
    print("$ " + " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)), flush=True)
    subprocess.run(argv, check=True, env=env)


def main() -> int:
    step(f"devcluster {NAME!r}: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
    started = time.monotonic()
    try:
        cluster = devcluster.find(NAME)
        if not devcluster.status(cluster).healthy:
            devcluster.down(NAME)
            raise devcluster.DevclusterError("stale")
        print(f"reusing the running devcluster {NAME!r}")
    except devcluster.DevclusterError:
        cluster = devcluster.up(NAME, nodes=3)
        print(f"ready in {time.monotonic() - started:.1f}s")
    kubeconfig = str(cluster.kubeconfig)
    helm, kubectl = str(binaries.find("helm")), str(binaries.find("kubectl"))

    with tempfile.TemporaryDirectory(prefix="moorage-demo-") as tmp:
        work = Path(tmp)
        env = chartsources.helm_env(work / "helm")
        step("local OCI registry (CNCF distribution) on loopback, loaded with the example chart")
        with chartsources.run_registry(work / "registry") as registry:
            archives = chartsources.package_charts([CHART], work / "charts", work / "helm")
            chartsources.push_charts(archives, registry, work / "helm")
            print(f"pushed {archives[0].name} to {registry.url}/webapp")

            step("helm upgrade --install from the OCI registry")
            run(
                helm, "upgrade", "--install", "webapp", f"{registry.url}/webapp", "--version", "1.0.0",
                "--plain-http", "--namespace", "demo", "--create-namespace", "--wait", "--timeout", "120s",
                f"--kubeconfig={kubeconfig}",
                env=env,
            )  # fmt: skip

        step("status")
        run(helm, "status", "webapp", "--namespace", "demo", f"--kubeconfig={kubeconfig}", env=env)
        run(helm, "list", "--namespace", "demo", f"--kubeconfig={kubeconfig}", env=env)
        run(kubectl, f"--kubeconfig={kubeconfig}", "get", "deploy,svc,cm,pods", "-n", "demo", "-o", "wide")

    step("done")
    print(f"kubeconfig: {kubeconfig}")
    print(f"try: kubectl --kubeconfig {kubeconfig} get nodes")
    print(f"stop it: .venv/bin/moorage devcluster down --name {NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
