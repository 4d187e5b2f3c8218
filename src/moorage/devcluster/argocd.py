"""Argo CD on a devcluster, as its own Procfile runs it: argocd-application-controller and
argocd-repo-server (one multi-call binary, built by `make tools-argocd`) and a Redis, as child
processes of the devcluster (so `devcluster down` stops them), with the Application and AppProject
CRDs, `argocd-cm`, `argocd-secret` and the `default` AppProject in the `argocd` namespace.

Only the components the ArgoCD engine and the peer benchmarks need: no API server, UI, Dex or
ApplicationSet controller. Beside the repo-server runs argocd-cmp-server with Moorage's plugin
(`moorage argocd-plugin generate`), which decrypts SOPS values with the age key given to `start`
(default: $SOPS_AGE_KEY_FILE), as a sidecar with the key mounted from a Secret would in a cluster.
Argo CD applies to the cluster named `in-cluster` (https://kubernetes.default.svc), which
ARGOCD_FAKE_IN_CLUSTER points at the devcluster's kubeconfig."""

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.devcluster import binaries, http, kubectl, network, process
from moorage.devcluster.cluster import DevCluster
from moorage.devcluster.errors import DevclusterError

NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
COMPONENTS = ("redis", "argocd-cmp-server", "argocd-repo-server", "argocd-application-controller")
PLUGIN_NAME = "moorage-sops"  # engine/argocd_app.py names it in the Applications of encrypted add-ons
_CONFIG_FILES = ("argocd-cm.yaml", "argocd-secret.yaml", "argocd-rbac-cm.yaml", "argocd-cmd-params-cm.yaml")
_CRD_FILES = ("application-crd.yaml", "appproject-crd.yaml")

DEFAULT_PROJECT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AppProject",
    "metadata": {"name": "default", "namespace": NAMESPACE},
    "spec": {
        "sourceRepos": ["*"],
        "destinations": [{"server": "*", "namespace": "*"}],
        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
    },
}


@dataclass(frozen=True)
class ArgoCD:
    """Where the running Argo CD listens (all on loopback)."""

    redis_port: int
    repo_server_port: int
    controller_metrics_port: int
    repo_server_metrics_port: int


def manifests_dir() -> Path:
    """The CRDs and base config that tools/k8s/build.sh keeps next to the argocd binary."""
    found = binaries.find("argocd-application-controller").resolve().parent / "manifests"
    if not all((found / f).is_file() for f in (*_CRD_FILES, *_CONFIG_FILES)):
        raise DevclusterError(
            f"Argo CD's CRDs and config are missing from {found}; run `make tools-argocd` to restore them"
        )
    return found


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise DevclusterError(
            "redis-server not found; Argo CD needs it: run `make tools-argocd` "
            "(it installs Debian's redis-server)"
        )
    return found


def install_objects(cluster: DevCluster) -> None:
    """The namespace, CRDs (server-side: the Application CRD is beyond client-side apply's 256 KiB),
    config and default project; idempotent."""
    found = manifests_dir()
    kubectl.run(cluster, "apply", "--server-side", "-f", "-", stdin=json.dumps(_namespace()))
    for name in _CRD_FILES:
        kubectl.run(cluster, "apply", "--server-side", "-f", str(found / name))
    for crd in ("crd/applications.argoproj.io", "crd/appprojects.argoproj.io"):
        kubectl.established(cluster, crd)
    for name in _CONFIG_FILES:
        kubectl.run(cluster, "apply", "--server-side", "-n", NAMESPACE, "-f", str(found / name))
    kubectl.run(cluster, "apply", "--server-side", "-f", "-", stdin=json.dumps(DEFAULT_PROJECT))


def _namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def _wait(started: process.Started, ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive(started):
            raise DevclusterError(
                f"{started.component} exited while starting: {process.log_tail(started.log)}"
            )
        if ready():
            return
        time.sleep(0.2)
    raise DevclusterError(
        f"{started.component} not {what} after {timeout:.0f}s: {process.log_tail(started.log)}"
    )


def plugin_config(moorage: Path) -> str:
    """The ConfigManagementPlugin argocd-cmp-server runs: used only by Applications that name it."""
    plugin = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ConfigManagementPlugin",
        "metadata": {"name": PLUGIN_NAME},
        "spec": {"generate": {"command": [str(moorage), "argocd-plugin", "generate"]}},
    }
    return json.dumps(plugin, indent=2) + "\n"  # JSON is YAML


def _plugin_env(data: Path, age_key_file: Path | None) -> dict[str, str]:
    tools = [str(binaries.find("helm").parent), str(Path(sys.executable).parent)]
    env = {
        "PATH": os.pathsep.join([*tools, os.environ.get("PATH", "/usr/bin:/bin")]),
        "ARGOCD_PLUGINSOCKFILEPATH": str(data / "plugins"),
        "ARGOCD_CMP_WORKDIR": str(data / "cmp"),
        "HELM_CACHE_HOME": str(data / "helm" / "cache"),
        "HELM_CONFIG_HOME": str(data / "helm" / "config"),
        "HELM_DATA_HOME": str(data / "helm" / "data"),
    }
    from_env = os.environ.get("SOPS_AGE_KEY_FILE")
    key = age_key_file or (Path(from_env) if from_env else None)
    if key is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key.resolve())
    return env


def start(
    cluster: DevCluster,
    timeout: float = 120.0,
    processors: int | None = None,
    age_key_file: Path | None = None,
) -> ArgoCD:
    """Run Argo CD's controller, repo-server, cmp-server with Moorage's plugin, and Redis against
    `cluster`, return once all answer. `processors`: the controller's operation and status processors
    (default: Argo CD's 10 and 20). `age_key_file`: the plugin's age key (default $SOPS_AGE_KEY_FILE;
    none: encrypted add-ons fail to render, saying so)."""
    controller_bin = binaries.find("argocd-application-controller")
    repo_bin = binaries.find("argocd-repo-server")
    cmp_bin = binaries.find("argocd-cmp-server")
    moorage_bin = binaries.find("moorage")
    redis_bin = _redis_server()
    install_objects(cluster)
    ports = ArgoCD(*network.free_ports(4))
    data = cluster.dir / "argocd"
    for sub in ("tls", "ssh", "plugins", "gpg", "cmp", "cmp-config"):
        (data / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    (data / "cmp-config" / "plugin.yaml").write_text(plugin_config(moorage_bin))
    redis_addr = f"127.0.0.1:{ports.redis_port}"

    def launch(component: str, argv: list[str], env: dict[str, str] | None = None) -> process.Started:
        started = process.start(component, argv, cluster.log(component), env)
        cluster.processes.append(started)
        cluster.save()
        return started

    redis = launch(
        "redis",
        [
            redis_bin,
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
            "--port",
            str(ports.redis_port),
        ],
    )
    _wait(redis, lambda: _redis_ping(ports.redis_port), timeout, "answering")
    socket_path = data / "plugins" / f"{PLUGIN_NAME}.sock"
    socket_path.unlink(missing_ok=True)
    cmp = launch(
        "argocd-cmp-server",
        [str(cmp_bin), f"--config-dir-path={data / 'cmp-config'}", "--logformat=json"],
        _plugin_env(data, age_key_file),
    )
    _wait(cmp, socket_path.exists, timeout, "listening")
    repo = launch(
        "argocd-repo-server",
        [
            str(repo_bin),
            f"--port={ports.repo_server_port}",
            "--disable-tls",
            # its default is a Secret's mount path, which v3.6.1 then refuses next to --disable-tls
            "--client-ca-path=",
            f"--redis={redis_addr}",
            f"--metrics-port={ports.repo_server_metrics_port}",
            "--logformat=json",
        ],
        {
            # it runs helm (and git) from PATH: the helm tools/k8s built, first
            "PATH": f"{binaries.find('helm').parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_TLS_DATA_PATH": str(data / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(data / "ssh"),
            "ARGOCD_PLUGINSOCKFILEPATH": str(data / "plugins"),
            "ARGOCD_GNUPGHOME": str(data / "gpg"),
            # default /tmp/reposerver-ask-pass.sock: two devclusters on one machine would share it
            "ARGOCD_ASK_PASS_SOCK": str(data / "askpass.sock"),
        },
    )
    _wait(
        repo,
        lambda: http.probe("127.0.0.1", ports.repo_server_metrics_port, "/metrics"),
        timeout,
        "serving",
    )
    controller = launch(
        "argocd-application-controller",
        [
            str(controller_bin),
            f"--kubeconfig={cluster.kubeconfig}",
            f"--namespace={NAMESPACE}",
            f"--redis={redis_addr}",
            f"--repo-server=127.0.0.1:{ports.repo_server_port}",
            "--repo-server-plaintext",
            f"--metrics-port={ports.controller_metrics_port}",
            "--logformat=json",
            *(
                [f"--operation-processors={processors}", f"--status-processors={processors}"]
                if processors
                else []
            ),
        ],
        # with FAKE_IN_CLUSTER, the destination https://kubernetes.default.svc reads $KUBECONFIG
        {"ARGOCD_FAKE_IN_CLUSTER": "true", "KUBECONFIG": str(cluster.kubeconfig)},
    )
    _wait(
        controller,
        lambda: http.probe("127.0.0.1", ports.controller_metrics_port, "/metrics"),
        timeout,
        "serving",
    )
    (cluster.dir / "argocd.json").write_text(json.dumps(ports.__dict__))
    return ports


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop(cluster: DevCluster) -> None:
    """Stop Argo CD's processes (the devcluster keeps running); its objects stay in the cluster."""
    ours = [p for p in cluster.processes if p.component in COMPONENTS]
    process.stop(list(reversed(ours)))
    cluster.processes = [p for p in cluster.processes if p.component not in COMPONENTS]
    cluster.save()
