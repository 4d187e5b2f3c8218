"""`moorage cluster register NAME` prints the Helm install of the agent chart for that cluster (and the
variant with an existing Secret), and what it prints renders the chart with that token and server URL."""

import base64
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.charts.test_charts import CHARTS, documents, env_of, helm, the
from tests.unit.cli.conftest import (  # the remote CLI's fixtures: the real server app, in process
    SERVER,
    Cli,
    bus,
    cli,
    clock,
    db_url,
    engine,
    factory,
    migrated_template,
    ok,
    server_app,
)

__all__ = ["bus", "cli", "clock", "db_url", "engine", "factory", "migrated_template", "server_app"]


def printed(stdout: str, prefix: str) -> list[list[str]]:
    return [shlex.split(line.strip()) for line in stdout.splitlines() if line.strip().startswith(prefix)]


def render(argv: list[str], chart: Path) -> list[dict[str, Any]]:
    """`helm upgrade --install RELEASE CHART ARGS…` as printed, rendered by `helm template` instead."""
    assert argv[:3] == ["helm", "upgrade", "--install"]
    release, _, *args = argv[3:]
    return documents(helm("template", release, str(chart), *args).stdout)


def test_register_prints_the_helm_install_and_the_existing_secret_variant(cli: Cli) -> None:
    res = ok(cli("cluster", "register", "c1"))
    [token] = {w for w in res.stdout.split() if w.startswith("mrga_")}
    assert "shown only now" in res.stdout
    [install, with_secret] = printed(res.stdout, "helm upgrade --install")
    assert install == [
        "helm", "upgrade", "--install", "moorage-agent", "charts/moorage-agent",
        "--namespace", "moorage", "--create-namespace",
        "--set", f"config.token={token}", "--set", f"config.server_url={SERVER}",
    ]  # fmt: skip
    assert with_secret == [
        "helm", "upgrade", "--install", "moorage-agent", "charts/moorage-agent",
        "--namespace", "moorage", "--create-namespace",
        "--set", "config.existing_secret_name=moorage-agent-token", "--set", "config.secret_key=token",
        "--set", f"config.server_url={SERVER}",
    ]  # fmt: skip
    [create_secret] = printed(res.stdout, "kubectl create secret")
    assert create_secret == [
        "kubectl", "create", "secret", "generic", "moorage-agent-token", "--namespace", "moorage",
        f"--from-literal=token={token}",
    ]  # fmt: skip

    docs = render(install, CHARTS / "moorage-agent")
    assert base64.b64decode(the(docs, "Secret")["data"]["token"]).decode() == token
    (container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["MOORAGE_SERVER"]["value"] == SERVER
    assert the(docs, "Deployment")["metadata"]["namespace"] == "moorage"

    docs = render(with_secret, CHARTS / "moorage-agent")
    assert "Secret" not in {d["kind"] for d in docs}
    (container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    ref = env_of(container)["MOORAGE_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "moorage-agent-token", "key": "token"}

    # the token is never shown again
    assert token not in ok(cli("cluster", "get", "c1")).output


@pytest.mark.parametrize(
    ("chart", "extra"),
    [
        ("oci://127.0.0.1:5000/charts/moorage-agent", ["--plain-http"]),
        ("oci://localhost:5000/charts/moorage-agent", ["--plain-http"]),
        ("oci://ghcr.io/acme/charts/moorage-agent", []),
        ("/srv/charts/moorage agent", []),
    ],
)
def test_the_chart_is_chosen_by_flag_or_environment(cli: Cli, chart: str, extra: list[str]) -> None:
    expected = [chart, *extra]
    by_flag = ok(cli("cluster", "register", "c1", "--chart", chart)).stdout
    by_env = ok(cli("cluster", "register", "c2", env={"MOORAGE_AGENT_CHART": chart})).stdout
    for stdout in (by_flag, by_env):
        for argv in printed(stdout, "helm upgrade --install"):
            assert argv[4 : 4 + len(expected)] == expected
            assert argv[4 + len(expected)] == "--namespace"


def test_a_value_helm_would_split_is_escaped_for_helm_and_the_shell(tmp_path: Path) -> None:
    from moorage.cli.remote_commands import _helm_value

    url = "https://moorage.example.com/?a=1,b=2&c='d'"
    argv = shlex.split(f"--set config.server_url={_helm_value(url)} --set config.token=t")
    docs = documents(helm("template", "x", str(CHARTS / "moorage-agent"), *argv).stdout)
    (container,) = the(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["MOORAGE_SERVER"]["value"] == url


def test_json_output_has_no_commands(cli: Cli) -> None:
    res = ok(cli("cluster", "register", "c1", "-o", "json"))
    assert "helm upgrade" not in res.stdout
    assert yaml.safe_load(res.stdout)["agent_token"].startswith("mrga_")


def test_with_a_private_ca_the_commands_carry_it(cli: Cli, tmp_path: Path) -> None:
    """The CLI trusts the server through --ca / $MOORAGE_CA: the agent it prints is told the same CA
    (`moorage agent --ca`, the chart's config.ca from the file), and the chart mounts it as MOORAGE_CA."""
    from moorage.server.pki import NatsPki

    pki = NatsPki(tmp_path / "pki")
    pki.ensure(["moorage.example.com"])
    for res in (
        ok(cli("--ca", str(pki.ca_cert), "cluster", "register", "c1")),
        ok(cli("cluster", "register", "c2", env={"MOORAGE_CA": str(pki.ca_cert)})),
    ):
        [agent] = printed(res.stdout, "moorage agent")
        assert agent[-2:] == ["--ca", str(pki.ca_cert)]
        [install, with_secret] = printed(res.stdout, "helm upgrade --install")
        for argv in (install, with_secret):
            assert argv[-2:] == ["--set-file", f"config.ca={pki.ca_cert.resolve()}"]
        docs = render(install, CHARTS / "moorage-agent")
        assert the(docs, "ConfigMap")["data"]["server-ca.crt"].strip() == pki.ca_pem().strip()
        spec = the(docs, "Deployment")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert env_of(container)["MOORAGE_CA"]["value"] == "/etc/moorage/ca/server-ca.crt"
        assert {"name": "ca", "mountPath": "/etc/moorage/ca", "readOnly": True} in container["volumeMounts"]
        assert {"name": "ca", "configMap": {"name": "moorage-agent-ca"}} in spec["volumes"]
    # without a CA, none of it
    res = ok(cli("cluster", "register", "c3"))
    assert "--ca" not in res.stdout
    assert "config.ca" not in res.stdout
