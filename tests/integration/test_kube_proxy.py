"""kubectl and helm through Moorage (issue 15): the real binaries with a kubeconfig written by
`moorage kubeconfig`, through the server, NATS and the agent, against the devcluster; compared with
direct access."""

import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from moorage import devcluster
from moorage.devcluster import DevCluster, binaries
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import ADMIN, Agents, Server, free_port, register, wait_state
from tests.unit.charts.test_charts import pod_address

CLUSTER = "proxied"
GROUP_BINDINGS = {"moorage:view": "view", "moorage:edit": "edit", "moorage:admin": "cluster-admin"}


def _bind_groups(kubectl: Kubectl) -> None:
    """What the agent chart binds by default (charts/moorage-agent/templates/kubeproxy-rbac.yaml)."""
    rendered = subprocess.run(
        [
            str(binaries.find("helm")),
            "template",
            "a",
            str(Path(__file__).resolve().parents[2] / "charts" / "moorage-agent"),
            "--set",
            "config.token=mrga_integration-test-0123456789abcdefgh",
            "--set",
            "config.server_url=https://moorage.example.com",
            "--show-only",
            "templates/kubeproxy-rbac.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups = [
        d for d in yaml.safe_load_all(rendered) if d and d.get("subjects", [{}])[0].get("kind") == "Group"
    ]
    assert {d["subjects"][0]["name"]: d["roleRef"]["name"] for d in groups} == GROUP_BINDINGS
    kubectl.run("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in groups))


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory, cluster: DevCluster, kubectl: Kubectl
) -> Iterator[tuple[Server, Agents, str]]:
    # HTTPS: kubectl sends a bearer token over TLS only
    base = tmp_path_factory.mktemp("kube-server")
    pki = NatsPki(base / "pki")
    pki.ensure(LOOPBACK_HOSTS)
    port = free_port()
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    fast = {"MOORAGE_KUBE_PROXY_REVALIDATE_SECONDS": "1"}  # open streams re-check their token each second
    srv = Server(f"https://127.0.0.1:{port}", base / "data", port, env=fast, args=tls, ca=pki.ca_cert)
    srv.data_dir.mkdir()
    agents = Agents(tmp_path_factory.mktemp("kube-agents"))
    try:  # a failure while setting up stops what was started too
        srv.start()
        token = register(srv, CLUSTER)
        agents.start(srv, token, cluster.kubeconfig)
        wait_state(srv, CLUSTER, "online")
        _bind_groups(kubectl)
        yield srv, agents, token
    finally:
        for proc in agents.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(40)
        srv.stop()


def _api_token(server: Server, scope: str) -> str:
    r = server.api(
        "POST", "/tokens", json={"name": f"kube-{scope}-{uuid.uuid4().hex[:6]}", "scopes": [scope]}
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _kubeconfig(server: Server, token: str, path: Path) -> Path:
    """`moorage kubeconfig` as a user runs it (token from the environment)."""
    env = {**os.environ, "MOORAGE_TOKEN": token, "MOORAGE_SERVER": server.url, "MOORAGE_CA": str(server.ca)}
    result = subprocess.run(
        [sys.executable, "-m", "moorage.cli.main", "kubeconfig", CLUSTER, "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert token not in result.stdout + result.stderr
    return path


@pytest.fixture(scope="module")
def admin_kubectl(plane: tuple[Server, Agents, str], tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    server, _, _ = plane
    return Kubectl(_kubeconfig(server, ADMIN, tmp_path_factory.mktemp("kc") / "config"))


def test_kubeconfig_is_merged_like_kubectl_config(
    plane: tuple[Server, Agents, str], tmp_path: Path, cluster: DevCluster
) -> None:
    server, _, _ = plane
    path = tmp_path / "config"
    path.write_text(cluster.kubeconfig.read_text())
    before = yaml.safe_load(path.read_text())
    _kubeconfig(server, ADMIN, path)
    _kubeconfig(server, ADMIN, path)  # again: replaced, not duplicated
    after = yaml.safe_load(path.read_text())
    assert after["current-context"] == f"moorage-{CLUSTER}"
    names = [c["name"] for c in after["contexts"]]
    assert names == [c["name"] for c in before["contexts"]] + [f"moorage-{CLUSTER}"]
    mine = next(c for c in after["clusters"] if c["name"] == f"moorage-{CLUSTER}")
    assert mine["cluster"]["server"] == f"{server.url}/api/v1/clusters/{CLUSTER}/kube"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    # the direct context still works, untouched
    direct = Kubectl(path)
    assert direct.run("--context", before["current-context"], "get", "--raw", "/version").returncode == 0


def test_get_apply_delete_and_raw_through_the_proxy_equal_direct(
    admin_kubectl: Kubectl, kubectl: Kubectl, namespace: str
) -> None:
    assert json.loads(admin_kubectl.run("get", "--raw", "/version").stdout) == json.loads(
        kubectl.run("get", "--raw", "/version").stdout
    )

    def names(k: Kubectl) -> set[tuple[str, str]]:
        return {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in k.get("pods", "-A")["items"]}

    assert names(admin_kubectl) == names(kubectl)
    manifest = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "through-proxy", "namespace": namespace},
            "data": {"greeting": "hello"},
        }
    )
    applied = admin_kubectl.run(
        "apply", "--server-side", "--field-manager", "proxy-test", "-f", "-", input=manifest
    )
    assert "serverside-applied" in applied.stdout
    direct = kubectl.get("configmap", "through-proxy", "-n", namespace, "--show-managed-fields")
    assert direct["data"] == {"greeting": "hello"}
    assert any(m["manager"] == "proxy-test" for m in direct["metadata"]["managedFields"])
    assert (
        admin_kubectl.get("configmap", "through-proxy", "-n", namespace)["metadata"]["uid"]
        == direct["metadata"]["uid"]
    )
    admin_kubectl.run("delete", "configmap", "through-proxy", "-n", namespace)
    gone = kubectl.run("get", "configmap", "through-proxy", "-n", namespace, check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def _pod(namespace: str, name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "main", "image": "example.com/app:1"}]},
        }
    )


class Lines:
    """A long-running kubectl whose stdout lines are collected by a thread."""

    def __init__(self, k: Kubectl, *args: str) -> None:
        self.proc = subprocess.Popen(
            [k.binary, f"--kubeconfig={k.kubeconfig}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
                raise AssertionError(f"{text!r} never came; got {self.lines[-10:]} {err}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_watch_receives_a_pod_created_afterwards(
    admin_kubectl: Kubectl, kubectl: Kubectl, namespace: str
) -> None:
    watch = Lines(admin_kubectl, "get", "pods", "-n", namespace, "-w", "-o", "name")
    try:
        time.sleep(2)  # the watch is open (the initial list is empty)
        kubectl.run("apply", "-f", "-", input=_pod(namespace, "late-comer"))
        watch.wait_for("pod/late-comer")
    finally:
        watch.stop()


def test_logs_follow_streams_lines_appended_later(
    admin_kubectl: Kubectl, kubectl: Kubectl, namespace: str, cluster: DevCluster
) -> None:
    kubectl.run("apply", "-f", "-", input=_pod(namespace, "talker"))
    kubectl.run("wait", "--for=condition=Ready", "pod/talker", "-n", namespace, "--timeout=60s")
    follow = Lines(admin_kubectl, "logs", "-f", "talker", "-n", namespace)
    try:
        follow.wait_for("log line 1")
        marker = f"appended-{uuid.uuid4().hex[:8]}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        with devcluster.cluster.pod_log(cluster).open("a") as f:
            f.write(f"{stamp} stdout F {marker}\n")
        follow.wait_for(marker)
    finally:
        follow.stop()


def _audit(server: Server, **params: Any) -> list[dict[str, Any]]:
    r = server.api("GET", "/audit", params=params)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


def test_a_read_only_users_delete_is_refused_by_rbac_and_audited(
    plane: tuple[Server, Agents, str], kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    server, _, _ = plane
    kubectl.run("create", "configmap", "keep-me", "-n", namespace)
    reader = Kubectl(_kubeconfig(server, _api_token(server, "read"), tmp_path / "reader"))
    # reads work (view), writes are refused by the cluster's RBAC, not by Moorage
    assert reader.get("configmap", "keep-me", "-n", namespace)["metadata"]["name"] == "keep-me"
    refused = reader.run("delete", "configmap", "keep-me", "-n", namespace, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    assert 'User "moorage:token:kube-read-' in refused.stderr
    assert kubectl.get("configmap", "keep-me", "-n", namespace)["metadata"]["name"] == "keep-me"
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in _audit(server, cluster=CLUSTER, verb="delete") if r["namespace"] == namespace]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows, "the refused delete is not in the audit trail"
    (row,) = rows
    assert row["status"] == 403
    assert (row["resource"], row["name"], row["mode"]) == ("configmaps", "keep-me", "unary")
    assert row["kube_user"].startswith("moorage:token:kube-read-")


def test_a_revoked_kubectl_token_is_refused_at_once(
    plane: tuple[Server, Agents, str], tmp_path: Path
) -> None:
    server, _, _ = plane
    path = _kubeconfig(server, ADMIN, tmp_path / "revoked")
    k = Kubectl(path)
    assert k.run("get", "--raw", "/version").returncode == 0
    mine = [t for t in server.api("GET", "/kube-tokens").json() if t["revoked_at"] is None]
    token = yaml.safe_load(path.read_text())["users"][-1]["user"]["token"]
    # the newest token is the one just written (the list is oldest first)
    assert server.api("DELETE", f"/kube-tokens/{mine[-1]['id']}").status_code == 200
    refused = k.run("get", "--raw", "/version", check=False)
    assert refused.returncode != 0
    assert "You must be logged in" in refused.stderr
    assert "revoked" in refused.stderr
    assert token not in refused.stderr


def test_a_watch_of_a_revoked_token_ends(
    plane: tuple[Server, Agents, str], tmp_path: Path, namespace: str
) -> None:
    server, _, _ = plane
    path = _kubeconfig(server, ADMIN, tmp_path / "watching")
    watch = Lines(Kubectl(path), "get", "configmaps", "-n", namespace, "-w", "-o", "name")
    try:
        time.sleep(3)
        assert watch.proc.poll() is None
        newest = [t for t in server.api("GET", "/kube-tokens").json() if t["revoked_at"] is None][-1]
        assert server.api("DELETE", f"/kube-tokens/{newest['id']}").status_code == 200
        deadline = time.monotonic() + 15
        while watch.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watch.proc.poll() is not None, "the watch of a revoked token stayed open"
    finally:
        watch.stop()
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in _audit(server, cluster=CLUSTER, verb="watch") if r["namespace"] == namespace]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rows, "the watch is not in the audit trail"
    assert "revoked" in (rows[0]["error"] or "")


def test_a_signed_in_users_kubectl_token_acts_as_the_user(
    plane: tuple[Server, Agents, str], tmp_path: Path, namespace: str
) -> None:
    server, _, _ = plane
    password = "a long enough password 1234"
    name = f"kube-{uuid.uuid4().hex[:6]}"
    created = server.api("POST", "/users", json={"username": name, "password": password, "role": "write"})
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=f"{server.url}/api/v1", verify=server.verify) as browser:
        signed = browser.post("/session", json={"username": name, "password": password})
        assert signed.status_code == 200, signed.text
        r = browser.post(
            "/kube-tokens", json={"cluster": CLUSTER}, headers={"X-CSRF-Token": signed.json()["csrf_token"]}
        )
        assert r.status_code == 201, r.text
        made = r.json()
    assert (made["kube_user"], made["kube_groups"]) == (f"moorage:user:{name}", ["moorage:edit"])
    config: dict[str, Any] = {}
    from moorage.cli.kube_commands import merge

    assert server.ca is not None
    ca = base64.b64encode(server.ca.read_bytes()).decode()
    merge(config, "u", f"{server.url}/api/v1/clusters/{CLUSTER}/kube", made["token"], ca, True)
    path = tmp_path / "user"
    path.write_text(yaml.safe_dump(config))
    user = Kubectl(path)
    user.run("create", "configmap", "by-user", "-n", namespace)  # edit may write
    assert "by-user" in user.run("get", "configmaps", "-n", namespace, "-o", "name").stdout
    # disabled: its kubectl token stops (once the proxy's 1 s identity cache has let go of it)
    assert server.api("PATCH", f"/users/{name}", json={"disabled": True}).status_code == 200
    time.sleep(1.2)
    assert user.run("get", "configmaps", "-n", namespace, check=False).returncode != 0


def test_helm_list_through_the_kubeconfig(admin_kubectl: Kubectl, helm: Helm, helm_home: Path) -> None:
    def releases(output: str) -> list[dict[str, Any]]:
        # helm sorts by name only: releases of one name in two namespaces come in either order
        return sorted(json.loads(output), key=lambda r: (r["name"], r["namespace"]))

    direct = helm.run("list", "-A", "-o", "json").stdout
    proxied = Helm(admin_kubectl.kubeconfig, helm_home)
    assert releases(proxied.run("list", "-A", "-o", "json").stdout) == releases(direct)


@pytest.fixture
def running_pod(kubectl: Kubectl, namespace: str) -> str:
    kubectl.run("apply", "-f", "-", input=_pod(namespace, "shell"))
    kubectl.run("wait", "--for=condition=Ready", "pod/shell", "-n", namespace, "--timeout=60s")
    return "shell"


def test_exec_through_the_proxy(
    admin_kubectl: Kubectl, kubectl: Kubectl, namespace: str, running_pod: str
) -> None:
    """kubectl exec over WebSocket (v5.channel.k8s.io); kwok runs the command on this machine."""
    direct = kubectl.run("exec", running_pod, "-n", namespace, "--", "echo", "hi")
    proxied = admin_kubectl.run("exec", running_pod, "-n", namespace, "--", "echo", "hi")
    assert proxied.stdout == direct.stdout == "hi\n"
    # stdin goes through too, and the exit code comes back
    # (kwok does not pass the end of stdin on, so the command reads one line and ends by itself)
    read = ["exec", "-i", running_pod, "-n", namespace, "--", "sh", "-c", "read line; echo got $line"]
    assert kubectl.run(*read, input="from stdin\n").stdout == "got from stdin\n"
    assert admin_kubectl.run(*read, input="from stdin\n").stdout == "got from stdin\n"
    exit3 = ["exec", running_pod, "-n", namespace, "--", "sh", "-c", "exit 3"]
    direct_failed = kubectl.run(*exit3, check=False)
    failed = admin_kubectl.run(*exit3, check=False)
    assert (failed.returncode, failed.stderr) == (direct_failed.returncode, direct_failed.stderr)
    assert failed.returncode != 0


def test_port_forward_through_the_proxy(admin_kubectl: Kubectl, namespace: str, running_pod: str) -> None:
    """kubectl port-forward (SPDY tunnelled over WebSocket); kwok forwards every port to `cat`."""
    port = free_port()
    forward = Lines(admin_kubectl, "port-forward", "-n", namespace, f"pod/{running_pod}", f"{port}:8080")
    try:
        forward.wait_for("Forwarding from")
        for size in (1000, 300_000):  # two connections over one tunnel; 7 KB, then 2 MB each way
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                payload = f"ping {size}\n".encode() * size
                # sent while the echo is read: nothing has to fit in a buffer
                threading.Thread(target=conn.sendall, args=(payload,), daemon=True).start()
                got = b""
                while len(got) < len(payload):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                assert got == payload
    finally:
        forward.stop()


@pytest.fixture
def web_service(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A Service whose endpoint is an HTTP server on this machine (its non-loopback address: the API
    server's service proxy refuses loopback endpoints). Answers `hello <path>`."""
    addresses = pod_address()
    if not addresses:
        pytest.skip("this machine has no non-loopback address for a Service endpoint")

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/slow"):
                time.sleep(3)
            body = f"hello {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer((addresses[0], 0), Hello)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    port = web.server_address[1]
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
        },
        {  # the API server's service proxy reads Endpoints, and only addresses of a pod with that IP
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web", "namespace": namespace},
            "subsets": [
                {
                    "addresses": [
                        {
                            "ip": addresses[0],
                            "targetRef": {"kind": "Pod", "name": "web", "namespace": namespace},
                        }
                    ],
                    "ports": [{"name": "http", "port": port}],
                }
            ],
        },
    ]
    # a kwok pod given this machine's address as its IP
    kubectl.run("apply", "-f", "-", input=_pod(namespace, "web"))
    kubectl.run("wait", "--for=condition=Ready", "pod/web", "-n", namespace, "--timeout=60s")
    status = {"status": {"podIP": addresses[0], "podIPs": [{"ip": addresses[0]}]}}
    kubectl.run(
        "patch",
        "pod",
        "web",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    kubectl.run("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(o) for o in objects))
    try:
        yield "web:80"
    finally:
        web.shutdown()


def test_service_forwarding_through_the_agent_with_its_timeout_bound(
    plane: tuple[Server, Agents, str], namespace: str, web_service: str
) -> None:
    server, _, _ = plane
    path = f"/clusters/{CLUSTER}/services/{namespace}/{web_service}/proxy"
    r = server.api("GET", f"{path}/metrics?x=1")
    assert r.status_code == 200, r.text
    assert r.text == "hello /metrics?x=1"
    # a read-only caller: the cluster's RBAC decides (view has no services/proxy)
    reader = _api_token(server, "read")
    refused = server.api("GET", f"{path}/metrics", token=reader)
    assert refused.status_code == 403, refused.text

    # the timeout is the caller's, bounded by the setting
    def with_timeout(sub: str, seconds: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}", "X-Moorage-Timeout": seconds}
        return httpx.get(f"{server.url}/api/v1{path}{sub}", headers=headers, verify=server.verify, timeout=60)

    too_long = with_timeout("/x", "121")
    assert too_long.status_code == 400
    assert "at most 120" in too_long.json()["message"]
    slow = with_timeout("/slow", "1")
    assert slow.status_code == 504, slow.text
    deadline = time.monotonic() + 10
    while True:  # audit rows are written in batches
        rows = _audit(server, cluster=CLUSTER, verb="proxy")
        statuses = {r["status"] for r in rows if r["namespace"] == namespace}
        if statuses >= {200, 403, 504} or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert statuses >= {200, 403, 504}


def test_the_agent_restarted_during_a_watch_ends_it_and_the_retry_succeeds(
    plane: tuple[Server, Agents, str],
    admin_kubectl: Kubectl,
    kubectl: Kubectl,
    namespace: str,
    cluster: DevCluster,
) -> None:
    server, agents, token = plane
    watch = Lines(admin_kubectl, "get", "configmaps", "-n", namespace, "-w", "-o", "name")
    try:
        time.sleep(2)
        kubectl.run("create", "configmap", "before", "-n", namespace)
        watch.wait_for("configmap/before")
        (agent,) = [p for p in agents.procs if p.poll() is None]
        agent.terminate()  # SIGTERM: the agent ends its open streams before it goes
        agent.wait(40)
        deadline = time.monotonic() + 20
        while watch.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert watch.proc.poll() is not None, "kubectl's watch did not end when the agent went away"
    finally:
        watch.stop()
    agents.start(server, token, cluster.kubeconfig)
    wait_state(server, CLUSTER, "online")
    deadline = time.monotonic() + 30
    while True:  # the first requests may still find the old agent's heartbeat
        retry = admin_kubectl.run("get", "configmap", "before", "-n", namespace, "-o", "name", check=False)
        if retry.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert retry.stdout.strip() == "configmap/before", retry.stderr


def test_64_concurrent_gets_and_10_watches_are_all_answered_and_jobs_still_run(
    plane: tuple[Server, Agents, str], admin_kubectl: Kubectl, kubectl: Kubectl, namespace: str
) -> None:
    server, agents, _ = plane
    watches = [Lines(admin_kubectl, "get", "pods", "-n", namespace, "-w", "-o", "name") for _ in range(10)]
    try:
        time.sleep(3)
        results: list[subprocess.CompletedProcess[str]] = []
        lock = threading.Lock()

        def get() -> None:
            r = admin_kubectl.run("get", "configmaps", "-n", namespace, "-o", "name", check=False)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=get) for _ in range(64)]
        for t in threads:
            t.start()
        # meanwhile, a job of the agent (a read through the job stream) is answered
        job = server.api(
            "GET", f"/clusters/{CLUSTER}/resources", params={"kind": "ConfigMap", "namespace": namespace}
        )
        assert job.status_code == 200, job.text
        for t in threads:
            t.join(180)
        assert len(results) == 64
        failed = [r.stderr for r in results if r.returncode != 0]
        assert not failed, failed[:3]
        kubectl.run("apply", "-f", "-", input=_pod(namespace, "seen-by-all"))
        for w in watches:
            w.wait_for("pod/seen-by-all")
        agent = next(p for p in agents.procs if p.poll() is None)
        rss_mib = int(Path(f"/proc/{agent.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
        assert rss_mib < 400, f"the agent uses {rss_mib:.0f} MiB"
    finally:
        for w in watches:
            w.stop()
