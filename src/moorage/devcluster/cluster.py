"""Start, find and stop devclusters. One state directory per cluster holds its PKI, etcd data,
kubeconfigs, one log per component and state.json (ports, pids)."""

import base64
import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moorage.devcluster import binaries, http, network, pki, process
from moorage.devcluster.errors import ComponentFailed, DevclusterError

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_NODE_CAPACITY = {"cpu": "32", "memory": "256Gi", "pods": "110"}


def state_root() -> Path:
    if root := os.environ.get("MOORAGE_DEVCLUSTER_HOME"):
        return Path(root)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "moorage" / "devclusters"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DevclusterError(
            f"invalid devcluster name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (e.g. 'dev' or 'test-1')"
        )
    return name


@dataclass
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass
class DevCluster:
    name: str
    dir: Path
    ports: Ports
    nodes: int
    processes: list[process.Started] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def pki(self) -> pki.Pki:
        return pki.Pki(self.dir / "pki")

    def log(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines), written only by a cluster started with `audit=True`."""
        return self.dir / "logs" / "audit.log"

    def save(self) -> None:
        data = {
            "name": self.name,
            "ports": asdict(self.ports),
            "nodes": self.nodes,
            "processes": [{**asdict(p), "log": str(p.log)} for p in self.processes],
        }
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, directory: Path) -> "DevCluster":
        data = json.loads((directory / "state.json").read_text())
        return cls(
            name=data["name"],
            dir=directory,
            ports=Ports(**data["ports"]),
            nodes=data["nodes"],
            processes=[
                process.Started(p["component"], p["pid"], p["start_ticks"], Path(p["log"]))
                for p in data["processes"]
            ],
        )

    def running(self) -> list[process.Started]:
        return [p for p in self.processes if process.alive(p)]


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    server: str
    kubeconfig: Path
    components: dict[str, bool]
    api_ready: bool
    nodes_ready: int
    nodes_wanted: int

    @property
    def healthy(self) -> bool:
        return all(self.components.values()) and self.api_ready and self.nodes_ready >= self.nodes_wanted


def _kubeconfig(cluster: DevCluster, who: str) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    ctx = f"moorage-{cluster.name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": ctx,
                "cluster": {"server": cluster.server, "certificate-authority-data": b64(cluster.pki.ca_crt)},
            }
        ],
        "users": [
            {
                "name": f"{ctx}-{who}",
                "user": {
                    "client-certificate-data": b64(cluster.pki.crt(who)),
                    "client-key-data": b64(cluster.pki.key(who)),
                },
            }
        ],
        "contexts": [{"name": ctx, "context": {"cluster": ctx, "user": f"{ctx}-{who}"}}],
        "current-context": ctx,
    }


def pod_log(cluster: "DevCluster") -> Path:
    """What every container of the devcluster "logs" (kwok serves this file; append to it to log)."""
    return cluster.dir / "logs" / "pods.log"


def _write_pod_logs(cluster: "DevCluster") -> None:
    log = pod_log(cluster)
    log.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    # CRI log format, which kwok parses: "<RFC 3339 time> <stream> <F(ull)|P(artial)> <text>"
    log.write_text(
        "".join(f"{stamp} stdout F devcluster {cluster.name}: log line {i}\n" for i in range(1, 4))
    )
    logs = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "all-containers"},
        "spec": {"selector": {}, "logs": [{"logsFile": str(log), "follow": True}]},
    }
    (cluster.dir / "kwok-logs.json").write_text(json.dumps(logs))
    # `kubectl exec` runs the command on this machine (in the cluster's directory), and
    # `kubectl port-forward` to any port of any pod talks to `cat`: what is sent comes back
    execs = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterExec",
        "metadata": {"name": "all-containers"},
        "spec": {"selector": {}, "execs": [{"local": {"workDir": str(cluster.dir)}}]},
    }
    forwards = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterPortForward",
        "metadata": {"name": "echo"},
        "spec": {"selector": {}, "forwards": [{"command": ["cat"]}]},
    }
    (cluster.dir / "kwok-exec.json").write_text(json.dumps(execs))
    (cluster.dir / "kwok-portforward.json").write_text(json.dumps(forwards))


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content)


def _wait(cluster: DevCluster, component: str, ready: Callable[[], bool], timeout: float, what: str) -> None:
    started = next(p for p in cluster.processes if p.component == component)
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive(started):
            raise ComponentFailed(component, "the process exited", process.log_tail(started.log))
        if ready():
            return
        if time.monotonic() > deadline:
            raise ComponentFailed(
                component, f"not {what} after {timeout:.0f}s", process.log_tail(started.log)
            )
        time.sleep(0.1)


def _start(cluster: DevCluster, component: str, argv: list[str]) -> None:
    cluster.processes.append(process.start(component, argv, cluster.log(component)))
    cluster.save()


def _admin_tls(cluster: DevCluster) -> Any:
    return http.client_tls(cluster.pki.ca_crt, cluster.pki.crt("admin"), cluster.pki.key("admin"))


def _api(cluster: DevCluster, method: str, path: str, body: Any = None) -> http.HttpResult:
    return http.request(
        "127.0.0.1", cluster.ports.apiserver, method, path, tls=_admin_tls(cluster), body=body
    )


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": _NODE_CAPACITY, "capacity": _NODE_CAPACITY},
    }


# kwok's volume stages provision and bind PVCs of this class, so StatefulSets with volume claims work.
_STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "kwok-volume",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


def _create(cluster: DevCluster, path: str, obj: dict[str, Any]) -> None:
    result = _api(cluster, "POST", path, obj)
    if result.status not in (200, 201):
        name = obj["metadata"]["name"]
        raise DevclusterError(
            f"creating {obj['kind']} {name} failed: HTTP {result.status} {result.body[:300]!r}"
        )


def _ready_nodes(cluster: DevCluster) -> int:
    try:
        result = _api(cluster, "GET", "/api/v1/nodes")
    except OSError:
        return 0
    if result.status != 200:
        return 0
    count = 0
    for item in result.json().get("items", []):
        conditions = item.get("status", {}).get("conditions", [])
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            count += 1
    return count


def _exists(cluster: DevCluster, path: str) -> bool:
    try:
        return _api(cluster, "GET", path).status == 200
    except OSError:
        return False


# One event per request at Metadata level (who, user agent, verb, object; no bodies): the
# RequestReceived and ResponseStarted stages are left out, so each request is counted once.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata"}],
}


def audit_flags(cluster: DevCluster) -> list[str]:
    """kube-apiserver flags for an audit log of every request (benchmarks count requests per tool)."""
    return [
        f"--audit-policy-file={cluster.dir / 'audit-policy.json'}",
        f"--audit-log-path={cluster.audit_log}",
        "--audit-log-format=json",
        "--audit-log-maxsize=0",  # never rotated: the benchmark reads one file
    ]


def _argv(cluster: DevCluster, advertise: str) -> dict[str, list[str]]:
    p, d, ports = cluster.pki, cluster.dir, cluster.ports
    etcd_peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return {
        "etcd": [
            str(binaries.find("etcd")),
            "--name=default",
            f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--advertise-client-urls=http://127.0.0.1:{ports.etcd}",
            f"--listen-peer-urls={etcd_peer}",
            f"--initial-advertise-peer-urls={etcd_peer}",
            f"--initial-cluster=default={etcd_peer}",
            # a throwaway cluster: durability is not worth the fsync latency on a shared disk
            "--unsafe-no-fsync",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(binaries.find("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--advertise-address={advertise}",
            f"--cert-dir={p.dir}",
            f"--tls-cert-file={p.crt('apiserver')}",
            f"--tls-private-key-file={p.key('apiserver')}",
            f"--client-ca-file={p.ca_crt}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--event-ttl=1h",
        ],
        "kube-controller-manager": [
            str(binaries.find("kube-controller-manager")),
            f"--kubeconfig={d / 'kube-controller-manager.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={d / 'kube-controller-manager'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--root-ca-file={p.ca_crt}",
            f"--service-account-private-key-file={p.sa_key}",
            f"--cluster-signing-cert-file={p.ca_crt}",
            f"--cluster-signing-key-file={p.ca_key}",
            "--node-monitor-period=5s",
            "--node-monitor-grace-period=40s",
            "--profiling=false",
        ],
        "kube-scheduler": [
            str(binaries.find("kube-scheduler")),
            f"--kubeconfig={d / 'kube-scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={d / 'kube-scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ],
        "kwok": [
            str(binaries.find("kwok")),
            *(f"--config={stage}" for stage in binaries.kwok_stages()),
            f"--kubeconfig={d / 'kwok.kubeconfig'}",
            f"--config={d / 'kwok-logs.json'}",
            f"--config={d / 'kwok-exec.json'}",
            f"--config={d / 'kwok-portforward.json'}",
            "--manage-all-nodes=true",
            "--cidr=10.244.0.1/16",
            # nodes point the API server at kwok's kubelet-like server, so `kubectl logs` works
            "--node-ip=127.0.0.1",
            f"--node-port={ports.kwok}",
            f"--server-address=127.0.0.1:{ports.kwok}",
            f"--tls-cert-file={p.crt('kwok')}",
            f"--tls-private-key-file={p.key('kwok')}",
            "--node-lease-duration-seconds=40",
        ],
    }


def up(
    name: str, nodes: int = 3, timeout: float = 90.0, ports: Ports | None = None, *, audit: bool = False
) -> DevCluster:
    """Start a devcluster and return once its API is ready and `nodes` nodes are Ready.

    `ports` are chosen free on loopback unless given. `audit`: the API server writes an audit event
    per request to `cluster.audit_log` (off by default: it costs the API server time)."""
    _check_name(name)
    if nodes < 1 or nodes > 100:
        raise DevclusterError(f"--nodes must be between 1 and 100, got {nodes}")
    directory = state_root() / name
    if (directory / "state.json").exists():
        existing = DevCluster.load(directory)
        if existing.running():
            raise DevclusterError(
                f"devcluster {name!r} is already running (kubeconfig {existing.kubeconfig}); "
                f"stop it first with `moorage devcluster down --name {name}`"
            )
    if directory.exists():
        shutil.rmtree(directory)  # a stale cluster whose processes are gone
    directory.mkdir(parents=True)
    directory.chmod(0o700)

    ports = ports or Ports(*network.free_ports(6))
    cluster = DevCluster(name=name, dir=directory, ports=ports, nodes=nodes)
    cluster.save()
    deadline = time.monotonic() + timeout
    try:
        argv = _argv(cluster, network.advertise_address())
        if audit:
            (directory / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))
            argv["kube-apiserver"] += audit_flags(cluster)
        pki.create(directory / "pki")
        _write_private(cluster.kubeconfig, json.dumps(_kubeconfig(cluster, "admin"), indent=2))
        _write_pod_logs(cluster)
        _write_private(directory / "kwok.kubeconfig", json.dumps(_kubeconfig(cluster, "admin")))
        for who in ("kube-controller-manager", "kube-scheduler"):
            _write_private(directory / f"{who}.kubeconfig", json.dumps(_kubeconfig(cluster, who)))

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        _start(cluster, "etcd", argv["etcd"])
        _wait(cluster, "etcd", lambda: http.probe("127.0.0.1", ports.etcd, "/health"), remaining(), "healthy")
        _start(cluster, "kube-apiserver", argv["kube-apiserver"])
        tls = _admin_tls(cluster)
        _wait(
            cluster,
            "kube-apiserver",
            lambda: http.probe("127.0.0.1", ports.apiserver, "/readyz", tls),
            remaining(),
            "ready",
        )
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            _start(cluster, component, argv[component])
        _create(cluster, "/apis/storage.k8s.io/v1/storageclasses", _STORAGE_CLASS)
        for i in range(nodes):
            _create(cluster, "/api/v1/nodes", _node(f"kwok-node-{i}"))
        insecure = http.unverified_tls()
        for component, port in (
            ("kube-controller-manager", ports.controller_manager),
            ("kube-scheduler", ports.scheduler),
        ):
            _wait(
                cluster,
                component,
                functools.partial(http.probe, "127.0.0.1", port, "/healthz", insecure),
                remaining(),
                "healthy",
            )
        _wait(
            cluster, "kwok", lambda: _ready_nodes(cluster) >= nodes, remaining(), f"done: {nodes} nodes Ready"
        )
        # Pods are refused until the namespace's default ServiceAccount exists (admission).
        _wait(
            cluster,
            "kube-controller-manager",
            lambda: _exists(cluster, "/api/v1/namespaces/default/serviceaccounts/default"),
            remaining(),
            "done: default ServiceAccount created",
        )
    except BaseException:
        process.stop(list(reversed(cluster.processes)))
        cluster.processes = []
        cluster.save()
        raise
    return cluster


def find(name: str) -> DevCluster:
    directory = state_root() / _check_name(name)
    if not (directory / "state.json").exists():
        raise DevclusterError(f"no devcluster named {name!r} (see `moorage devcluster status`)")
    return DevCluster.load(directory)


def down(name: str) -> bool:
    """Stop every process of the cluster and remove its state. False when there was no such cluster."""
    directory = state_root() / _check_name(name)
    if not directory.exists():
        return False
    if (directory / "state.json").exists():
        cluster = DevCluster.load(directory)
        process.stop(list(reversed(cluster.processes)))
        if still := cluster.running():
            pids = ", ".join(f"{p.component} (pid {p.pid})" for p in still)
            raise DevclusterError(f"could not stop {pids}; state kept in {directory}")
    shutil.rmtree(directory)
    return True


def list_clusters() -> list[DevCluster]:
    root = state_root()
    if not root.is_dir():
        return []
    return [DevCluster.load(d) for d in sorted(root.iterdir()) if (d / "state.json").exists()]


def status(cluster: DevCluster) -> ClusterStatus:
    components = {name: False for name in binaries.COMPONENT_BINARIES}
    for p in cluster.processes:
        components[p.component] = process.alive(p)
    api_ready = False
    nodes_ready = 0
    if components.get("kube-apiserver") and cluster.pki.ca_crt.exists():
        api_ready = http.probe("127.0.0.1", cluster.ports.apiserver, "/readyz", _admin_tls(cluster))
        nodes_ready = _ready_nodes(cluster) if api_ready else 0
    return ClusterStatus(
        name=cluster.name,
        server=cluster.server,
        kubeconfig=cluster.kubeconfig,
        components=components,
        api_ready=api_ready,
        nodes_ready=nodes_ready,
        nodes_wanted=cluster.nodes,
    )
