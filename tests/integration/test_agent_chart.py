"""The agent chart in the devcluster, end to end: packaged and pushed to the test OCI registry, installed
with the command `moorage cluster register` prints, and the agent run with exactly what the chart gives
its pod.

The devcluster runs no containers, so the agent runs as a local process with the chart's rendered
environment (the Deployment's container env read from the API, secretKeyRef values resolved from their
Secrets, the Secret volumes materialised under a stand-in root) and an in-cluster configuration: a
TokenRequest token of the chart's ServiceAccount, the cluster's CA and KUBERNETES_SERVICE_HOST/PORT,
through MOORAGE_SERVICE_ACCOUNT_DIR. helm, which the agent runs, reads the same files itself in a pod
(client-go's in-cluster config at a fixed path); here it is handed the same token, CA and address with
HELM_KUBETOKEN, HELM_KUBECAFILE and HELM_KUBEAPISERVER. No kubeconfig reaches either, so every request
the agent makes is the ServiceAccount's, and the chart's RBAC is what is exercised."""

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from moorage.devcluster import DevCluster, chartsources
from moorage.devcluster.chartsources import ChartRepo, Registry
from tests.integration.conftest import Helm, Kubectl
from tests.integration.control_plane_support import (
    ADMIN,
    EXAMPLE,
    Server,
    free_port,
    wait_operation,
    wait_state,
)

CHART = Path(__file__).resolve().parents[2] / "charts" / "moorage-agent"
RELEASE = "moorage-agent"
NAMESPACE = "moorage"
AGE_SECRET = "moorage-sops-age"
# charts/moorage-agent/README.md ("A narrower role"): what the agent needs besides the definition's kinds,
# then this test's definition's kinds (Namespace, ConfigMap, and the stateful chart's StatefulSet and Service)
WRITE = ["get", "list", "create", "update", "patch", "delete"]
NARROW_RULES = [
    {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": [*WRITE, "watch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": WRITE},
    {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "create", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": WRITE},
    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": WRITE},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    srv = Server(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("server"), port)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def agent_chart(oci_registry: Registry, helm_home: Path, tmp_path: Path) -> str:
    """The agent chart packaged and pushed to the test OCI registry; its oci:// reference."""
    archives = chartsources.package_charts([CHART], tmp_path / "packaged", helm_home)
    chartsources.push_charts(archives, oci_registry, helm_home)
    return f"{oci_registry.url}/moorage-agent"


@pytest.fixture
def cleanup(helm: Helm, kubectl: Kubectl) -> Iterator[list[str]]:
    """Namespaces to delete after the test; the release is uninstalled if the test did not get there."""
    namespaces: list[str] = []
    yield namespaces
    helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--ignore-not-found", check=False)
    for namespace in [NAMESPACE, *namespaces]:
        kubectl.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def register(server: Server, name: str, chart: str) -> tuple[str, list[str]]:
    """`moorage cluster register NAME` as a user runs it: the token and the printed install command."""
    argv = [sys.executable, "-m", "moorage.cli.main", "cluster", "register", name]
    result = subprocess.run(
        [*argv, "--server", server.url, "--chart", chart],
        capture_output=True,
        text=True,
        env={**os.environ, "MOORAGE_TOKEN": ADMIN, "COLUMNS": "400"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [token] = {w for w in result.stdout.split() if w.startswith("mrga_")}
    install = next(line.strip() for line in result.stdout.splitlines() if "helm upgrade --install" in line)
    return token, shlex.split(install)


def definition(namespace: str, chart_repo: ChartRepo, settings: dict[str, str]) -> dict[str, Any]:
    """A small definition: a namespace and a ConfigMap (raw manifests) and a Helm add-on whose values
    file is SOPS-encrypted (the example's), so the age key from the chart's Secret is needed."""
    root = {
        "apiVersion": "v1",
        "kind": "ImportCluster",
        "metadata": {"name": "chart-agent"},
        "spec": {
            "helm_registries": [{"name": "local", "url": chart_repo.url}],
            "stacks": [
                {
                    "name": "apps",
                    "manifests": [
                        {"name": "ns", "from_file": "k8s/ns.yaml"},
                        {
                            "name": "settings",
                            "from_file": "k8s/settings.yaml",
                            "namespace": namespace,
                            "parents": [{"manifest": "ns"}],
                        },
                    ],
                    "addons": [
                        {
                            "name": "stateful",
                            "chart_name": "stateful",
                            "chart_version": "1.0.0",
                            "registry_name": "local",
                            "namespace": namespace,
                            "parents": [{"manifest": "ns"}],
                            "configuration": {
                                "from_file": "values/stateful.enc.yaml",
                                "encrypted_paths": ["password"],
                            },
                        }
                    ],
                }
            ],
        },
    }
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": settings,
    }
    files = {
        "import-cluster.yaml": yaml.safe_dump(root),
        "k8s/ns.yaml": yaml.safe_dump(namespace_doc),
        "k8s/settings.yaml": yaml.safe_dump(configmap),
        "values/stateful.enc.yaml": (EXAMPLE / "values" / "stateful.enc.yaml").read_text(),
    }
    return {"files": files, "root": "import-cluster.yaml"}


def pod_environment(kubectl: Kubectl, root: Path) -> tuple[list[str], dict[str, str]]:
    """The agent container's args and environment as the chart rendered them, read from the API.
    Secret references are resolved as the kubelet would; volume mounts are made under `root`, and
    values naming a mounted path point there instead."""
    deployment = kubectl.get("deployment", RELEASE, "-n", NAMESPACE)
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}

    def secret_data(name: str) -> dict[str, str]:
        data: dict[str, str] = kubectl.get("secret", name, "-n", NAMESPACE)["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    mount_paths = []
    for mount in container.get("volumeMounts", []):
        path = mount["mountPath"]
        mount_paths.append(path)
        local = root / path.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "secret" in volume:
            data = secret_data(volume["secret"]["secretName"])
            for item in volume["secret"]["items"]:
                (local / item["path"]).write_text(data[item["key"]])
        else:
            assert volume == {"name": mount["name"], "emptyDir": {}}, volume

    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = entry["value"]
            if any(value == p or value.startswith(p.rstrip("/") + "/") for p in mount_paths):
                value = str(root / value.lstrip("/"))
            env[entry["name"]] = value
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secret_data(ref["name"])[ref["key"]]
    # HOME itself is no mount: its writable parts (.cache, .config) are
    env["HOME"] = str(root / env["HOME"].lstrip("/"))
    assert container.get("envFrom") is None
    return container["args"], env


def service_account_dir(kubectl: Kubectl, cluster: DevCluster, directory: Path) -> Path:
    """What the kubelet projects into a pod: a token of the chart's ServiceAccount, the CA, the namespace."""
    directory.mkdir(parents=True)
    token = kubectl.run("create", "token", RELEASE, "-n", NAMESPACE, "--duration=1h").stdout.strip()
    (directory / "token").write_text(token)
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
    (directory / "ca.crt").write_bytes(ca)
    (directory / "namespace").write_text(NAMESPACE)
    return directory


def start_agent(kubectl: Kubectl, cluster: DevCluster, tmp_path: Path) -> subprocess.Popen[bytes]:
    args, chart_env = pod_environment(kubectl, tmp_path / "pod-root")
    account = service_account_dir(kubectl, cluster, tmp_path / "serviceaccount")
    api = urlparse(cluster.server)
    env = {
        "PATH": os.environ["PATH"],
        **chart_env,
        # the one setting changed: port 8080 may be taken on this machine; nothing probes it here
        "MOORAGE_AGENT_HEALTH_PORT": str(free_port()),
        "KUBERNETES_SERVICE_HOST": str(api.hostname),
        "KUBERNETES_SERVICE_PORT": str(api.port),
        "MOORAGE_SERVICE_ACCOUNT_DIR": str(account),
        "HELM_KUBEAPISERVER": cluster.server,
        "HELM_KUBETOKEN": (account / "token").read_text(),
        "HELM_KUBECAFILE": str(account / "ca.crt"),
    }
    assert "KUBECONFIG" not in env
    log = (tmp_path / "agent.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "moorage.cli.main", *args], stdout=log, stderr=log, env=env, cwd=tmp_path
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def labelled(kubectl: Kubectl, kinds: str, namespace: str | None = None) -> list[str]:
    where = ["-n", namespace] if namespace else []
    found = kubectl.get(kinds, *where, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    return [f"{o['kind']}/{o['metadata']['name']}" for o in found]


# the kubectl proxy's objects (kube_proxy.*): the impersonation role and the moorage:* group bindings
KUBE_PROXY_RBAC = re.compile(
    rf"/{RELEASE}-{NAMESPACE}-(impersonate|moorage-admin|moorage-edit|moorage-view)$"
)


def agent_rbac(kubectl: Kubectl) -> list[str]:
    """The cluster-wide RBAC objects of the agent's own role (the kubectl proxy's left out)."""
    return [n for n in labelled(kubectl, "clusterrolebindings,clusterroles") if not KUBE_PROXY_RBAC.search(n)]


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.5)


def test_agent_chart_from_oci_runs_the_agent_with_its_service_account(
    server: Server,
    cluster: DevCluster,
    kubectl: Kubectl,
    helm: Helm,
    chart_repo: ChartRepo,
    agent_chart: str,
    cleanup: list[str],
    tmp_path: Path,
) -> None:
    name = f"chart-{uuid.uuid4().hex[:6]}"
    apps = f"ca-{uuid.uuid4().hex[:8]}"
    cleanup.append(apps)
    token, install = register(server, name, agent_chart)
    assert install[:5] == ["helm", "upgrade", "--install", RELEASE, agent_chart]
    assert f"config.token={token}" in install
    assert f"config.server_url={server.url}" in install

    # the printed command, as printed (helm is told the devcluster's kubeconfig)
    helm.run(*install[1:])
    assert helm.releases(NAMESPACE)[RELEASE]["status"] == "deployed"
    objects = {
        "Deployment": kubectl.get("deployment", RELEASE, "-n", NAMESPACE),
        "Service": kubectl.get("service", RELEASE, "-n", NAMESPACE),
        "Secret": kubectl.get("secret", RELEASE, "-n", NAMESPACE),
        "ServiceAccount": kubectl.get("serviceaccount", RELEASE, "-n", NAMESPACE),
        "ClusterRoleBinding": kubectl.get("clusterrolebinding", f"{RELEASE}-{NAMESPACE}-cluster-admin"),
    }
    assert base64.b64decode(objects["Secret"]["data"]["token"]).decode() == token
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    assert objects["Service"]["spec"]["ports"][0]["port"] == 8080
    pods = kubectl.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/name={RELEASE}")["items"]
    assert len(pods) == 1  # kwok plays the kubelet: the pod exists, no container runs
    assert json.dumps(objects["Deployment"]).count(token) == 0

    # the age key, from a Secret of the user's, named by a value in an upgrade
    age_key = EXAMPLE / "keys" / "test-only.agekey"
    kubectl.run("create", "secret", "generic", AGE_SECRET, "-n", NAMESPACE, f"--from-file=keys.txt={age_key}")
    helm.run(
        "upgrade", RELEASE, *install[4:6], "--namespace", NAMESPACE, "--reuse-values",
        "--set", f"sops.existing_secret_name={AGE_SECRET}",
    )  # fmt: skip

    agent = start_agent(kubectl, cluster, tmp_path)
    try:
        wait_state(server, name, "online", timeout=90)
        # in a pod the agent elects a leader (replicas): online means it leads, holding its Lease
        # through the chart's Role, whichever ClusterRole it has (the `view` case below still leads)
        cluster_id = server.api("GET", f"/clusters/{name}").json()["id"]
        lease = kubectl.get("lease", f"moorage-agent-{cluster_id}", "-n", NAMESPACE)
        assert lease["spec"]["holderIdentity"], lease

        # deploy with cluster-admin, as the chart binds it by default
        applied = server.api("POST", f"/clusters/{name}/apply", json=definition(apps, chart_repo, {"a": "1"}))
        assert applied.status_code == 202, applied.text
        op = wait_operation(server, applied.json()["id"], timeout=240)
        assert op["state"] == "success", (
            json.dumps(op, indent=2)[-3000:] + (tmp_path / "agent.log").read_text()[-3000:]
        )
        assert helm.releases(apps)["stateful"]["status"] == "deployed"
        values = json.loads(helm.run("get", "values", "stateful", "-n", apps, "-o", "json").stdout)
        assert values["password"]
        assert not str(values["password"]).startswith("ENC[")  # decrypted by the agent
        assert kubectl.get("configmap", "settings", "-n", apps)["data"] == {"a": "1"}

        # a role of the chart's own (rbac.rules): what the chart's README lists plus the kinds this
        # definition deploys is enough
        rules = tmp_path / "rules.yaml"
        rules.write_text(yaml.safe_dump({"rbac": {"rules": NARROW_RULES}}))
        helm.run(
            "upgrade", RELEASE, *install[4:6], "--namespace", NAMESPACE,
            "--reuse-values", "--values", str(rules),
        )  # fmt: skip
        assert agent_rbac(kubectl) == [
            f"ClusterRoleBinding/{RELEASE}-{NAMESPACE}",
            f"ClusterRole/{RELEASE}-{NAMESPACE}",
        ]
        narrow = server.api("POST", f"/clusters/{name}/apply", json=definition(apps, chart_repo, {"a": "2"}))
        op = wait_operation(server, narrow.json()["id"], timeout=240)
        assert op["state"] == "success", json.dumps(op, indent=2)[-3000:]
        assert kubectl.get("configmap", "settings", "-n", apps)["data"] == {"a": "2"}

        # a narrower role by value: the built-in `view`. The same agent can no longer deploy, and the
        # API server names the chart's ServiceAccount: its token, not anyone else's, is what was used
        helm.run(
            "upgrade", RELEASE, *install[4:6], "--namespace", NAMESPACE, "--reuse-values",
            "--set", "rbac.cluster_role=view", "--set-json", "rbac.rules=[]",
        )  # fmt: skip
        assert agent_rbac(kubectl) == [f"ClusterRoleBinding/{RELEASE}-{NAMESPACE}-view"]
        refused = server.api("POST", f"/clusters/{name}/apply", json=definition(apps, chart_repo, {"a": "3"}))
        assert refused.status_code == 202, refused.text
        op = wait_operation(server, refused.json()["id"], timeout=240)
        text = json.dumps(op)
        assert op["state"] != "success", text[-3000:]
        assert f"system:serviceaccount:{NAMESPACE}:{RELEASE}" in text, text[-3000:]
        assert "forbidden" in text.lower()
        assert kubectl.get("configmap", "settings", "-n", apps)["data"] == {"a": "2"}
    finally:
        stop(agent)

    notes = helm.run("get", "notes", RELEASE, "--namespace", NAMESPACE).stdout
    assert f"kubectl delete namespace {NAMESPACE}" in notes
    # uninstall: nothing of the chart's is left; the namespace and the user's own Secret stay, as the
    # chart's NOTES say, and what the agent deployed keeps running
    helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    wait_for(
        lambda: (
            not labelled(kubectl, "deployments,services,secrets,serviceaccounts,pods,replicasets", NAMESPACE)
        ),
        "the chart's objects are gone",
    )
    assert labelled(kubectl, "clusterrolebindings,clusterroles") == []
    assert RELEASE not in helm.releases(NAMESPACE)
    secrets = {s["metadata"]["name"] for s in kubectl.get("secrets", "-n", NAMESPACE)["items"]}
    assert secrets == {AGE_SECRET}
    assert {c["metadata"]["name"] for c in kubectl.get("configmaps", "-n", NAMESPACE)["items"]} <= {
        "kube-root-ca.crt"
    }
    assert {a["metadata"]["name"] for a in kubectl.get("serviceaccounts", "-n", NAMESPACE)["items"]} == {
        "default"
    }
    assert helm.releases(apps)["stateful"]["status"] == "deployed"
