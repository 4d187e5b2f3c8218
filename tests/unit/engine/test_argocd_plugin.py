"""Moorage's Argo CD plugin: from the Application's plugin environment (what argocd_app writes) to the
chart's manifests with the SOPS values decrypted — with the real sops and helm, and the example's
TEST ONLY age key."""

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from moorage.engine import argocd_app
from moorage.engine.argocd_plugin import ENV_PREFIX, PluginError, generate, inputs, merged, template_args
from moorage.helm.cli import Helm
from moorage.spec.content import MASK, Sensitive
from moorage.spec.sops import find_sops
from tests.unit.engine.test_argocd_app import addon

ROOT = Path(__file__).resolve().parents[3]
KEY = ROOT / "examples" / "gitops-repo" / "keys" / "test-only.agekey"
RECIPIENT = "age1xc9s44auavrgsep532mql7v0hgz2mgsxmk5q627aa2raffyfk9es8yrkjl"  # of KEY
CHART = ROOT / "tests" / "charts" / "webapp"
SECRET = "greeting-only-the-cluster-sees"


def encrypted(plaintext: str) -> str:
    sops = find_sops()
    assert sops is not None
    done = subprocess.run(
        [sops, "encrypt", "--age", RECIPIENT, "--encrypted-regex", "^greeting$", "--input-type", "yaml",
         "--output-type", "yaml", "/dev/stdin"],
        input=plaintext.encode(), capture_output=True, check=True,
        env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"},
    )  # fmt: skip
    return done.stdout.decode()


def plugin_env(document: str, values: dict[str, Any]) -> dict[str, str]:
    """What argocd-cmp-server gives the plugin for the Application of an encrypted add-on."""
    enc = addon(values=Sensitive(values, frozenset({("greeting",)})), encrypted=True, sops_document=document)
    source = argocd_app.application(enc, "dev", values)["spec"]["source"]
    env = {ENV_PREFIX + e["name"]: e["value"] for e in source["plugin"]["env"]}
    return env | {"ARGOCD_APP_NAME": "webapp", "ARGOCD_APP_NAMESPACE": "web", "KUBE_VERSION": "1.37.2"}


async def test_the_plugin_renders_the_chart_with_the_values_decrypted_in_memory() -> None:
    document = encrypted(f"greeting: {SECRET}\nreplicaCount: 1\n")
    env = plugin_env(document, {"greeting": SECRET, "replicaCount": 3})  # 3: the definition's own value
    written = [base64.b64decode(v).decode() for k, v in env.items() if k.startswith(ENV_PREFIX)]
    assert len(written) == 3
    assert not any(SECRET in text for text in written)  # the Application holds no plaintext
    out = await generate(env | {"SOPS_AGE_KEY_FILE": str(KEY)}, CHART, Helm())
    assert f"greeting: {json.dumps(SECRET)}" in out
    assert "replicas: 3" in out  # the non-secret values are the definition's, not the document's
    assert "name: webapp-config" in out  # the release is named after the Application


async def test_without_the_age_key_it_fails_naming_the_problem_not_the_value() -> None:
    document = encrypted(f"greeting: {SECRET}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_AGE")}
    env |= plugin_env(document, {"greeting": SECRET}) | {"SOPS_AGE_KEY_FILE": "/nonexistent/keys.txt"}
    with pytest.raises(PluginError) as caught:
        await generate(env, CHART, Helm())
    assert "decrypting" in str(caught.value)
    assert SECRET not in str(caught.value)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


GOOD = {
    ENV_PREFIX + argocd_app.PLUGIN_VALUES: b64('{"a": 1}'),
    ENV_PREFIX + argocd_app.PLUGIN_SECRET_PATHS: b64('[["b", 0]]'),
    ENV_PREFIX + argocd_app.PLUGIN_SOPS: b64("doc"),
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({ENV_PREFIX + argocd_app.PLUGIN_VALUES: None}, "not written by Moorage"),
        ({ENV_PREFIX + argocd_app.PLUGIN_VALUES: "%%%"}, "not base64"),
        ({ENV_PREFIX + argocd_app.PLUGIN_VALUES: b64("[1]")}, "not a mapping"),
        ({ENV_PREFIX + argocd_app.PLUGIN_VALUES: b64("{")}, "not JSON"),
        ({ENV_PREFIX + argocd_app.PLUGIN_SECRET_PATHS: b64('["a"]')}, "not a list of paths"),
        ({ENV_PREFIX + argocd_app.PLUGIN_SECRET_PATHS: b64("[[]]")}, "not a list of paths"),
        ({ENV_PREFIX + argocd_app.PLUGIN_SOPS: "A" * (argocd_app.PLUGIN_MAX_ENV_BYTES + 4)}, "KiB"),
    ],
)
def test_bad_inputs_are_refused_with_the_name_of_the_variable(
    change: dict[str, str | None], message: str
) -> None:
    env = {k: v for k, v in (GOOD | change).items() if v is not None}
    with pytest.raises(PluginError, match=message):
        inputs(env)


def test_good_inputs() -> None:
    assert inputs(GOOD) == ({"a": 1}, [("b", 0)], "doc")


def test_secret_values_are_put_at_their_paths_and_nothing_else_changes() -> None:
    values: dict[str, Any] = {"db": {"user": "app", "password": MASK}, "tokens": [MASK, "public"]}
    decrypted = {"db": {"user": "other", "password": "s3cret"}, "tokens": ["t0k3n", "x"]}
    out, secrets = merged(values, [("db", "password"), ("tokens", 0)], decrypted)
    assert out == {"db": {"user": "app", "password": "s3cret"}, "tokens": ["t0k3n", "public"]}
    assert sorted(secrets) == ["s3cret", "t0k3n"]
    assert values["db"]["password"] == MASK  # the caller's tree is not changed
    with pytest.raises(PluginError, match=r"db\.missing"):
        merged(values, [("db", "missing")], decrypted)


def test_template_args_follow_what_argo_cd_gives_plugins() -> None:
    env = {"ARGOCD_APP_NAME": "web", "ARGOCD_APP_NAMESPACE": "apps", "KUBE_VERSION": "1.37",
           "KUBE_API_VERSIONS": "v1,apps/v1,argoproj.io/v1alpha1"}  # fmt: skip
    args = template_args(env, Path("/chart"))
    assert args[:5] == ["template", "web", "/chart", "--values", "-"]
    assert args[args.index("--namespace") : args.index("--namespace") + 2] == ["--namespace", "apps"]
    assert args.count("--api-versions") == 3
    with pytest.raises(PluginError, match="ARGOCD_APP_NAME"):
        template_args({}, Path("/chart"))
