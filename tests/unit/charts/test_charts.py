"""Moorage's own charts (charts/moorage-agent, charts/moorage) through the real helm binary, no cluster:
`helm lint` and `helm template` of every mode compared with golden YAML (tests/unit/charts/golden;
MOORAGE_UPDATE_GOLDEN=1 writes them anew), properties every mode must keep (security defaults, names,
the token only in its Secret, environment variables the agent reads), and Helm's own errors for values
the schema or the templates refuse."""

import base64
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from moorage.cli.main import app as main_app
from moorage.devcluster import binaries

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ROOT / "charts"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MOORAGE_UPDATE_GOLDEN") == "1"

TOKEN = "mrga_golden-test-token-0123456789abcdefghij"
SERVER = "https://moorage.example.com"
AGENT = "moorage-agent"
NAMESPACE = "moorage"
# variables the agent chart renders that `moorage agent` does not read (README.md and NOTES.txt say so)
ACCEPTED_NOT_USED: set[str] = set()
# read by the agent's process itself, not as a CLI option
READ_BY_THE_PROCESS = {
    "MOORAGE_AGENT_IN_PROGRESS_SECONDS",
    # Upgrade Agent (agent/selfupgrade.py): which release is the agent's own, and its chart version
    "MOORAGE_AGENT_RELEASE_NAME",
    "MOORAGE_AGENT_RELEASE_NAMESPACE",
    "MOORAGE_AGENT_CHART_VERSION",
}

# the shape of a PEM CA (the chart neither parses nor checks it; the agent does)
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
NARROW_RULES = [
    {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "pods", "events"], "verbs": ["get", "list"]},
]

# mode -> (chart, release, values)
MODES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "agent-defaults": ("moorage-agent", AGENT, {"config": {"token": TOKEN, "server_url": SERVER}}),
    "agent-existing-secret": (
        "moorage-agent",
        AGENT,
        {
            "config": {"existing_secret_name": "agent-token", "secret_key": "agent", "server_url": SERVER},
            "sops": {"existing_secret_name": "sops-age", "secret_key": "age.agekey"},
        },
    ),
    "agent-narrower-rbac": (
        "moorage-agent",
        AGENT,
        {"config": {"token": TOKEN, "server_url": SERVER}, "rbac": {"rules": NARROW_RULES}},
    ),
    "agent-existing-role-and-settings": (
        "moorage-agent",
        "edge-agent",
        {
            "config": {"token": TOKEN, "server_url": SERVER},
            "rbac": {"cluster_role": "moorage-agent-limited"},
            "read_worker_count": 8,
            "write_worker_count": 2,
            "deploy_concurrency": 8,
            "nats_worker_max_workers": 25,
            "public_ip": {"reporting_enabled": True, "lookup_url": "http://127.0.0.1:9/ip"},
            "resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi", "cpu": "100m"}},
            "env": {"vars": {"MOORAGE_AGENT_SWEEP_INTERVAL": "120", "MOORAGE_AGENT_READ_WORKERS": "9"}},
            "extra_env": [
                {"name": "MOORAGE_AGENT_READ_WORKERS", "value": "10"},
                {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "proxy", "key": "url"}}},
            ],
            "envFromSecretRefs": ["agent-extra"],
            "writable_volumes": {"enabled": False},
            "image": {
                "repository": "registry.example/moorage",
                "digest": "sha256:" + "0" * 64,
                "pull_secrets": ["registry-cred"],
            },
            "scheduling": {
                "node_selector": {"kubernetes.io/os": "linux"},
                "tolerations": [
                    {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
                ],
                "priority_class_name": "system-cluster-critical",
            },
            "metrics": {
                "enabled": False,
                "service_monitor": {"enabled": True, "labels": {"release": "prom"}},
            },
            "service_account": {"annotations": {"example.com/role": "agent"}},
        },
    ),
    "agent-private-ca": (
        "moorage-agent",
        AGENT,
        {
            "config": {
                "token": TOKEN,
                "server_url": SERVER,
                "ca": CA_PEM,
                "nats_ca": CA_PEM.replace("MIIB", "MIIC"),
                "insecure": True,
            }
        },
    ),
    "server-trial": ("moorage", "moorage", {}),
    "server-external": (
        "moorage",
        "moorage",
        {
            "database": {"existing_secret_name": "moorage-db"},
            "nats": {"existing_secret_name": "moorage-nats", "ca_key": "ca.crt"},
            "bootstrap_token": {"existing_secret_name": "moorage-bootstrap"},
            "sealing_key": {"existing_secret_name": "moorage-sealing"},
            "server": {
                "public_url": "https://moorage.example.com",
                "agent_nats_url": "tls://nats.example.com:4222",
                "tls": {"existing_secret_name": "moorage-tls"},
            },
            "persistence": {"enabled": False},
            "extra_env": [{"name": "MOORAGE_GIT_POLL_SECONDS", "value": "60"}],
        },
    ),
    "server-trial-existing-claim": (
        "moorage",
        "cp",
        {"persistence": {"existing_claim": "moorage-state"}, "service": {"type": "LoadBalancer"}},
    ),
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binaries.find("helm")), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": "/nonexistent", "HELM_CONFIG_HOME": "/nonexistent"},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def values_file(tmp_path: Path, values: dict[str, Any], name: str = "values.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values, sort_keys=True))
    return path


def template(
    tmp_path: Path, chart: str, release: str, values: dict[str, Any], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(
        "template",
        release,
        str(CHARTS / chart),
        "--namespace",
        NAMESPACE,
        "--values",
        str(values_file(tmp_path, values)),
        check=check,
    )


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    return kinds


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = by_kind(docs)[kind]
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [e["name"] for e in container.get("env", [])]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in container["env"]}


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize("mode", sorted(MODES))
def test_lint_and_template_match_the_golden_files(mode: str, tmp_path: Path) -> None:
    chart, release, values = MODES[mode]
    lint = helm("lint", str(CHARTS / chart), "--strict", "--values", str(values_file(tmp_path, values)))
    assert "0 chart(s) failed" in lint.stdout, lint.stdout
    rendered = template(tmp_path, chart, release, values).stdout
    golden = GOLDEN / f"{mode}.yaml"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert golden.exists(), f"{golden} is missing: run with MOORAGE_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(), f"{mode} renders differently: MOORAGE_UPDATE_GOLDEN=1 to accept"


def test_every_golden_file_is_a_mode() -> None:
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == set(MODES)


# --------------------------------------------------------------------------- what every mode keeps


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["spec"]["template"]["spec"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_security_defaults(mode: str, tmp_path: Path) -> None:
    chart, release, values = MODES[mode]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    for spec in pod_specs(docs):
        pod = spec["securityContext"]
        assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (
            True,
            1000,
            1000,
            1000,
        )
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert (sc["runAsNonRoot"], sc["runAsUser"], sc["runAsGroup"]) == (True, 1000, 1000)
        (main,) = spec["containers"]
        mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        writable = values.get("writable_volumes", {}).get("enabled", True)
        for path in ("/tmp", "/home/moorage/.cache", "/home/moorage/.config"):
            assert (path in mounts) is writable
            if writable:
                assert volumes[mounts[path]] == {"name": mounts[path], "emptyDir": {}}
        assert env_of(main)["HOME"]["value"] == "/home/moorage"


@pytest.mark.parametrize("mode", sorted(m for m in MODES if m.startswith("agent-")))
def test_agent_names_token_and_health(mode: str, tmp_path: Path) -> None:
    chart, release, values = MODES[mode]
    text = template(tmp_path, chart, release, values).stdout
    docs = documents(text)
    kinds = by_kind(docs)
    deployment, service, account = the(docs, "Deployment"), the(docs, "Service"), the(docs, "ServiceAccount")
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == release
    assert account["metadata"]["name"] == release
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == release
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == release
    (container,) = spec["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert deployment["spec"]["replicas"] == 1
    # a ConfigMap only for public CA certificates (config.ca / nats_ca), never the token
    assert [c["metadata"]["name"] for c in kinds.get("ConfigMap", [])] in ([], [f"{release}-ca"])
    assert TOKEN not in json.dumps(kinds.get("ConfigMap", []))

    env = env_of(container)
    assert env["MOORAGE_SERVER"] == {"name": "MOORAGE_SERVER", "value": SERVER}
    config = values["config"]
    if config.get("existing_secret_name"):
        assert "Secret" not in kinds
        ref = {"name": config["existing_secret_name"], "key": config["secret_key"]}
    else:
        secret = the(docs, "Secret")
        assert secret["metadata"]["name"] == release
        assert secret["data"] == {"token": base64.b64encode(TOKEN.encode()).decode()}
        ref = {"name": release, "key": "token"}
        assert TOKEN not in text  # only its base64, in the Secret
    assert env["MOORAGE_AGENT_TOKEN"] == {"name": "MOORAGE_AGENT_TOKEN", "valueFrom": {"secretKeyRef": ref}}

    kube_proxy = f"{release}-{NAMESPACE}-impersonate"  # the kubectl proxy's own (test_agent_kube_proxy_rbac)
    (binding,) = [
        b
        for b in kinds["ClusterRoleBinding"]
        if b["metadata"]["name"] != kube_proxy and b["subjects"][0]["kind"] == "ServiceAccount"
    ]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": release, "namespace": NAMESPACE}]
    rules = values.get("rbac", {}).get("rules")
    roles = [r for r in kinds.get("ClusterRole", []) if r["metadata"]["name"] != kube_proxy]
    if rules:
        (role,) = roles
        assert role["rules"] == rules
        assert binding["roleRef"]["name"] == role["metadata"]["name"] == f"{release}-{NAMESPACE}"
    else:
        assert not roles
        assert binding["roleRef"]["name"] == values.get("rbac", {}).get("cluster_role", "cluster-admin")


def test_agent_kube_proxy_rbac(tmp_path: Path) -> None:
    """kubectl through Moorage: the agent may impersonate users and the moorage:* groups only (never
    system:masters), and each group is bound to its ClusterRole; group_roles "" binds nothing, and
    kube_proxy.enabled=false renders none of it."""
    from moorage.spec.kubeproxy import GROUP_OF_ROLE

    chart, release, values = MODES["agent-defaults"]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    name = f"{release}-{NAMESPACE}-impersonate"
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {
            "apiGroups": [""],
            "resources": ["groups"],
            "verbs": ["impersonate"],
            "resourceNames": sorted(GROUP_OF_ROLE.values()),
        },
    ]
    bound = {
        d["subjects"][0]["name"]: d["roleRef"]["name"]
        for d in docs
        if d["kind"] == "ClusterRoleBinding" and d["subjects"][0]["kind"] == "Group"
    }
    assert bound == {"moorage:view": "view", "moorage:edit": "edit", "moorage:admin": "cluster-admin"}
    assert set(bound) == set(GROUP_OF_ROLE.values())  # the groups the server impersonates
    narrowed = {**values, "kube_proxy": {"group_roles": {"moorage:admin": ""}}}
    docs = documents(template(tmp_path, chart, release, narrowed).stdout)
    groups = [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["subjects"][0]["kind"] == "Group"]
    assert sorted(d["subjects"][0]["name"] for d in groups) == ["moorage:edit", "moorage:view"]
    off = {**values, "kube_proxy": {"enabled": False}}
    docs = documents(template(tmp_path, chart, release, off).stdout)
    assert not [d for d in docs if "impersonate" in d["metadata"]["name"]]
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["subjects"][0]["kind"] == "Group"]


def agent_cli_envvars() -> set[str]:
    command = typer.main.get_command(main_app)
    agent = command.commands["agent"]  # type: ignore[attr-defined]
    names: set[str] = set()
    for p in agent.params:
        names.update([p.envvar] if isinstance(p.envvar, str) else p.envvar or [])
    return names


@pytest.mark.parametrize("mode", sorted(m for m in MODES if m.startswith("agent-")))
def test_every_agent_variable_the_chart_sets_is_read_by_the_agent(mode: str, tmp_path: Path) -> None:
    chart, release, values = MODES[mode]
    (container,) = the(documents(template(tmp_path, chart, release, values).stdout), "Deployment")["spec"][
        "template"
    ]["spec"]["containers"]
    readable = agent_cli_envvars() | READ_BY_THE_PROCESS
    assert {"MOORAGE_SERVER", "MOORAGE_AGENT_TOKEN", "MOORAGE_AGENT_READ_WORKERS"} <= readable
    for name in env_of(container):
        if name.startswith("MOORAGE_"):
            assert name in readable or name in ACCEPTED_NOT_USED, name


def test_agent_settings_reach_the_environment(tmp_path: Path) -> None:
    chart, release, values = MODES["agent-existing-role-and-settings"]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    spec = the(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {k: v.get("value", v.get("valueFrom")) for k, v in env_of(container).items()}
    assert (
        env["MOORAGE_AGENT_READ_WORKERS"] == "10"
    )  # extra_env wins over env.vars, which wins over the value
    assert env["MOORAGE_AGENT_WRITE_WORKERS"] == "2"
    assert env["MOORAGE_AGENT_CONCURRENCY"] == "8"
    assert env["MOORAGE_AGENT_NATS_MAX_WORKERS"] == "25"
    assert env["MOORAGE_AGENT_PUBLIC_IP_REPORTING"] == "true"
    assert env["MOORAGE_AGENT_PUBLIC_IP_LOOKUP_URL"] == "http://127.0.0.1:9/ip"
    assert env["MOORAGE_AGENT_SWEEP_INTERVAL"] == "120"
    assert env["HTTPS_PROXY"] == {"secretKeyRef": {"name": "proxy", "key": "url"}}
    assert container["envFrom"] == [{"secretRef": {"name": "agent-extra"}}]
    assert container["image"] == "registry.example/moorage@sha256:" + "0" * 64
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert spec["imagePullSecrets"] == [{"name": "registry-cred"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert "volumes" not in spec
    monitor = the(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        "prometheus.io/scrape" not in the(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    )


def test_agent_defaults_are_the_documented_ones() -> None:
    values = yaml.safe_load((CHARTS / "moorage-agent" / "values.yaml").read_text())
    assert values["nats_worker_max_workers"] == 15
    assert (values["read_worker_count"], values["write_worker_count"], values["replica_count"]) == (5, 5, 1)
    assert values["resources"] == {"limits": {"memory": "512Mi"}, "requests": {"memory": "256Mi"}}
    assert values["public_ip"] == {"reporting_enabled": False, "lookup_url": "https://api.ipify.org"}
    assert values["writable_volumes"] == {"enabled": True}
    assert values["config"] == {
        "token": "",
        "existing_secret_name": "",
        "secret_key": "token",
        "ca": "",
        "nats_ca": "",
        "insecure": False,
    }
    assert (values["extra_env"], values["env"], values["envFromSecretRefs"]) == ([], {"vars": {}}, [])
    assert values["rbac"]["cluster_role"] == "cluster-admin"


def test_private_cas_and_insecure_reach_the_agent(tmp_path: Path) -> None:
    chart, release, values = MODES["agent-private-ca"]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    spec = the(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["MOORAGE_CA"]["value"] == "/etc/moorage/ca/server-ca.crt"
    assert env["MOORAGE_NATS_CA"]["value"] == "/etc/moorage/ca/nats-ca.crt"
    assert env["MOORAGE_AGENT_INSECURE"]["value"] == "true"
    data = the(docs, "ConfigMap")["data"]
    assert data["server-ca.crt"] == CA_PEM
    assert data["nats-ca.crt"] == CA_PEM.replace("MIIB", "MIIC")
    assert {"name": "ca", "configMap": {"name": f"{release}-ca"}} in spec["volumes"]
    assert "checksum/ca" in the(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    # by default none of it: the image's CAs, the CA the server hands out, no plain text
    chart, release, values = MODES["agent-defaults"]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    (container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not {"MOORAGE_CA", "MOORAGE_NATS_CA", "MOORAGE_AGENT_INSECURE"} & set(env_of(container))
    assert "ConfigMap" not in by_kind(docs)
    # what is not a PEM certificate is refused by the schema
    bad = template(
        tmp_path, chart, release, {**values, "config": {**values["config"], "ca": "/etc/ca.crt"}}, check=False
    )
    assert bad.returncode != 0
    assert "config.ca" in bad.stderr or "ca" in bad.stderr


def test_sops_age_key_from_an_existing_secret(tmp_path: Path) -> None:
    chart, release, values = MODES["agent-existing-secret"]
    spec = the(documents(template(tmp_path, chart, release, values).stdout), "Deployment")["spec"][
        "template"
    ]["spec"]
    (container,) = spec["containers"]
    assert env_of(container)["SOPS_AGE_KEY_FILE"]["value"] == "/etc/moorage/sops/age.agekey"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "sops-age-key")
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/moorage/sops", True)
    volume = next(v for v in spec["volumes"] if v["name"] == "sops-age-key")
    assert volume["secret"]["secretName"] == "sops-age"
    assert volume["secret"]["items"] == [{"key": "age.agekey", "path": "age.agekey"}]


def test_server_modes(tmp_path: Path) -> None:
    trial = documents(template(tmp_path, *MODES["server-trial"][:2], MODES["server-trial"][2]).stdout)
    (container,) = the(trial, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert "MOORAGE_DATABASE_URL" not in env
    assert "MOORAGE_NATS_URL" not in env
    # TLS: the embedded NATS's certificate names the host the server is told agents use
    assert env["MOORAGE_AGENT_NATS_URL"]["value"] == "tls://moorage.moorage.svc:4222"
    assert container["args"] == [
        "server",
        "--host",
        "0.0.0.0",  # noqa: S104 - what the chart renders
        "--port",
        "8000",
        "--data-dir",
        "/var/lib/moorage",
    ]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in the(trial, "Service")["spec"]["ports"]}
    assert ports == {"http": (8000, "http"), "nats": (4222, "nats")}
    assert the(trial, "PersistentVolumeClaim")["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "Secret" not in by_kind(trial)

    chart, release, values = MODES["server-external"]
    external = documents(template(tmp_path, chart, release, values).stdout)
    spec = the(external, "Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = env_of(container)
    assert env["MOORAGE_DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "moorage-db", "key": "url"}}
    assert env["MOORAGE_NATS_URL"]["valueFrom"] == {"secretKeyRef": {"name": "moorage-nats", "key": "url"}}
    assert env["MOORAGE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["MOORAGE_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "moorage-sealing"
    assert env["MOORAGE_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "moorage-bootstrap"
    assert env["MOORAGE_AGENT_NATS_URL"]["value"] == "tls://nats.example.com:4222"
    assert "MOORAGE_NATS_SERVER" not in env
    assert "initContainers" not in spec
    assert [p["name"] for p in the(external, "Service")["spec"]["ports"]] == ["http"]
    assert {"PersistentVolumeClaim", "ConfigMap", "Secret"}.isdisjoint(by_kind(external))
    assert next(v for v in spec["volumes"] if v["name"] == "data") == {"name": "data", "emptyDir": {}}
    # HTTPS in the pod from a kubernetes.io/tls Secret, probed over HTTPS; the external NATS's CA
    assert env["MOORAGE_TLS_CERT"]["value"] == "/etc/moorage/tls/tls.crt"
    assert env["MOORAGE_TLS_KEY"]["value"] == "/etc/moorage/tls/tls.key"
    assert env["MOORAGE_NATS_CA"]["value"] == "/etc/moorage/nats-ca/ca.crt"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "moorage-tls"
    assert volumes["nats-ca"]["secret"] == {
        "secretName": "moorage-nats",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert (mounts["tls"], mounts["nats-ca"]) == ("/etc/moorage/tls", "/etc/moorage/nats-ca")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    (trial_container,) = the(trial, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "scheme" not in trial_container["readinessProbe"]["httpGet"]
    assert not {"MOORAGE_TLS_CERT", "MOORAGE_NATS_CA"} & set(env_of(trial_container))


# --------------------------------------------------------------------------- refused, with Helm's message


AGENT_OK = {"config": {"token": TOKEN, "server_url": SERVER}}


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (
            "moorage-agent",
            {**AGENT_OK, "read_worker_count": "five"},
            "at '/read_worker_count': got string, want integer",
        ),
        (
            "moorage-agent",
            {**AGENT_OK, "public_ip": {"reporting_enabled": "yes"}},
            "at '/public_ip/reporting_enabled': got string, want boolean",
        ),
        ("moorage-agent", {**AGENT_OK, "bogus": 1}, "at '': additional properties 'bogus' not allowed"),
        (
            "moorage-agent",
            {"config": {**AGENT_OK["config"], "tokn": "x"}},
            "at '/config': additional properties 'tokn' not allowed",
        ),
        (
            "moorage-agent",
            {**AGENT_OK, "writable_volumes": {"enabled": True, "size": "1Gi"}},
            "at '/writable_volumes': additional properties 'size' not allowed",
        ),
        ("moorage-agent", {"config": {"token": TOKEN}}, "at '/config': missing property 'server_url'"),
        (
            "moorage-agent",
            {"config": {"token": TOKEN, "server_url": "moorage.example.com"}},
            "at '/config/server_url': 'moorage.example.com' does not match pattern",
        ),
        ("moorage-agent", {**AGENT_OK, "replica_count": 11}, "at '/replica_count': maximum: got 11, want 10"),
        (
            "moorage-agent",
            {**AGENT_OK, "write_worker_count": 0},
            "at '/write_worker_count': minimum: got 0, want 1",
        ),
        ("moorage", {"replica_count": 11}, "at '/replica_count': maximum: got 11, want 10"),
        (
            "moorage",
            {"database": {"existing_secret_name": "db", "url": "x"}},
            "at '/database': additional properties 'url' not allowed",
        ),
        (
            "moorage",
            {"persistence": {"enabled": "no"}},
            "at '/persistence/enabled': got string, want boolean",
        ),
    ],
)
def test_the_schema_refuses(chart: str, values: dict[str, Any], message: str, tmp_path: Path) -> None:
    result = template(tmp_path, chart, "x", values, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema(s)" in result.stderr
    assert f"- {message}" in result.stderr, result.stderr
    lint = helm("lint", str(CHARTS / chart), "--values", str(values_file(tmp_path, values)), check=False)
    assert lint.returncode != 0
    assert message in lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (
            "moorage-agent",
            {"config": {"server_url": SERVER}},
            "the agent needs its token: --set config.token=TOKEN",
        ),
        (
            "moorage-agent",
            {"config": {**AGENT_OK["config"], "existing_secret_name": "s"}},
            "set config.token or config.existing_secret_name, not both",
        ),
        (
            "moorage-agent",
            {**AGENT_OK, "env": {"vars": {"MOORAGE_AGENT_TOKEN": TOKEN}}},
            "env.vars: the token goes in config.token or config.existing_secret_name",
        ),
        (
            "moorage-agent",
            {**AGENT_OK, "extra_env": [{"name": "MOORAGE_AGENT_TOKEN", "value": TOKEN}]},
            "extra_env: the token goes in config.token",
        ),
        (
            "moorage",
            {"database": {"existing_secret_name": "db"}, "persistence": {"enabled": False}},
            "set sealing_key.existing_secret_name",
        ),
    ],
)
def test_the_templates_refuse(chart: str, values: dict[str, Any], message: str, tmp_path: Path) -> None:
    result = template(tmp_path, chart, "x", values, check=False)
    assert result.returncode != 0
    assert "execution error at" in result.stderr
    assert message in result.stderr, result.stderr
    assert TOKEN not in result.stderr


def closed(node: dict[str, Any], path: str) -> None:
    for key, sub in node.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, f"{path}{key}"
            closed(sub, f"{path}{key}.")


def test_the_schemas_are_json_with_closed_objects() -> None:
    for chart in ("moorage-agent", "moorage"):
        schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
        assert schema["additionalProperties"] is False

        closed(schema, chart + ":")


@pytest.mark.parametrize("mode", sorted(m for m in MODES if m.startswith("agent-")))
def test_the_agent_may_hold_its_leader_lease_whatever_its_role(mode: str, tmp_path: Path) -> None:
    chart, release, values = MODES[mode]
    docs = documents(template(tmp_path, chart, release, values).stdout)
    role, binding = the(docs, "Role"), the(docs, "RoleBinding")
    assert role["metadata"] == {
        **role["metadata"],
        "name": f"{release}-leader-election",
        "namespace": NAMESPACE,
    }
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": release, "namespace": NAMESPACE}]


def test_notes_name_what_is_left_to_delete_and_what_is_not_used(tmp_path: Path) -> None:
    values = {**AGENT_OK, "public_ip": {"reporting_enabled": True}, "replica_count": 2}
    notes = helm(
        "install",
        AGENT,
        str(CHARTS / "moorage-agent"),
        "--dry-run=client",
        "--namespace",
        NAMESPACE,
        "--values",
        str(values_file(tmp_path, values)),
    ).stdout.split("NOTES:", 1)[1]
    assert f"helm uninstall {AGENT} -n {NAMESPACE}" in notes
    assert f"kubectl delete namespace {NAMESPACE}" in notes
    assert "reports its public IP (looked up at https://api.ipify.org)" in notes
    assert f"2 replicas elect a leader through a Lease in {NAMESPACE}" in notes
    assert f"-l app.kubernetes.io/name={AGENT}" in notes
    assert TOKEN not in notes


# --------------------------------------------------------------------------- the embedded NATS in a pod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pod_address() -> list[str]:
    """This machine's address on its default route, if it has one (as a pod has its pod IP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # nothing is sent
        except OSError:
            return []
        address: str = s.getsockname()[0]
    return [] if address.startswith("127.") else [address]


def test_embedded_nats_scripts_make_the_real_embedded_nats_reachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial mode's init container and nats-server wrapper, run as the pod runs them, against the
    server's EmbeddedNats: it listens on every address at the seeded port, over TLS with a certificate
    for the pod's address (as for the Service name agents are told), and a reload (a new agent) still
    works."""
    import asyncio

    import bcrypt
    import nats

    from moorage.server.nats_embedded import SERVER_USER, AgentUser, EmbeddedNats
    from moorage.server.pki import LOOPBACK_HOSTS

    docs = documents(template(tmp_path, "moorage", "moorage", {}).stdout)
    scripts = the(docs, "ConfigMap")["data"]
    spec = the(docs, "Deployment")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    (server,) = spec["containers"]
    wrapper_path = env_of(server)["MOORAGE_NATS_SERVER"]["value"]
    assert wrapper_path == "/etc/moorage/embedded-nats/run-nats-server"
    assert init["command"] == ["/bin/sh", "/etc/moorage/embedded-nats/seed-nats-port"]
    assert env_of(init)["DATA_DIR"]["value"] == "/var/lib/moorage" == server["args"][-1]
    assert {
        "name": "nats",
        "containerPort": int(env_of(init)["NATS_PORT"]["value"]),
        "protocol": "TCP",
    } in server["ports"]

    bin_dir = tmp_path / "scripts"
    bin_dir.mkdir()
    for name, body in scripts.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o555)
    data = tmp_path / "data"
    port = free_port()
    seeded = subprocess.run(
        ["/bin/sh", str(bin_dir / "seed-nats-port")],
        env={**os.environ, "DATA_DIR": str(data), "NATS_PORT": str(port)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    nats_server = Path(os.environ.get("MOORAGE_NATS_SERVER") or binaries.find("nats-server"))
    monkeypatch.setenv("PATH", f"{nats_server.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("MOORAGE_NATS_SERVER", str(bin_dir / "run-nats-server"))

    embedded = EmbeddedNats(data / "nats", tls_hosts=[*LOOPBACK_HOSTS, *pod_address()])
    assert embedded.port == port
    password = "mrga_" + "p" * 40
    try:
        embedded.start([])
        listening = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
        )
        assert listening.stdout.strip(), f"nothing listens on {port}"
        assert "127.0.0.1:" not in listening.stdout, listening.stdout
        embedded.reload([AgentUser("c1", bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode())])

        tls = {"tls": embedded.tls_context(), "tls_handshake_first": True}

        async def connect() -> None:
            for host in ("127.0.0.1", *pod_address()):
                nc = await nats.connect(
                    f"tls://{host}:{port}",
                    user="agent-c1",
                    password=password,
                    connect_timeout=2,
                    allow_reconnect=False,
                    **tls,
                )
                assert nc.is_connected
                await nc.close()
            nc = await nats.connect(
                f"tls://127.0.0.1:{port}", user=SERVER_USER, password=embedded.server_password, **tls
            )
            assert nc.is_connected
            await nc.close()

        asyncio.run(connect())
    finally:
        embedded.stop()
