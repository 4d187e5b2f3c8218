"""Moorage's config-management plugin for Argo CD: `moorage argocd-plugin generate`, run by
argocd-cmp-server (a sidecar of the repo-server, or a process beside it on the devcluster) in the
directory of the chart the repo-server fetched.

Its inputs come from the Application's `source.plugin.env` (`argocd_app._plugin_env`: the values with
their secret paths masked, those paths, and the SOPS document as committed), none of them secret.
It decrypts the document with the age key of its own process (`SOPS_AGE_KEY_FILE` or `SOPS_AGE_KEY`,
from a Secret mounted in the sidecar), puts the decrypted values at their paths, and prints
`helm template` of the chart: plaintext only in this process's memory and on helm's standard input.
Errors name the problem, never a value."""

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moorage.engine.argocd_app import PLUGIN_MAX_ENV_BYTES, PLUGIN_SECRET_PATHS, PLUGIN_SOPS, PLUGIN_VALUES
from moorage.helm.cli import Helm, HelmError
from moorage.spec.report import Location, SpecError
from moorage.spec.sops import decrypt_yaml
from moorage.spec.yamlsafe import parse_documents

ENV_PREFIX = "ARGOCD_ENV_"  # what Argo CD puts before the names of a plugin's env entries
TIMEOUT_SECONDS = 300


class PluginError(Exception):
    """Why the plugin cannot render (the message names no value)."""


PathKey = tuple[str | int, ...]


def _decoded(env: Mapping[str, str], name: str) -> str:
    raw = env.get(ENV_PREFIX + name)
    if raw is None:
        raise PluginError(
            f"{ENV_PREFIX}{name} is not set: this Application was not written by Moorage's ArgoCD engine"
        )
    if len(raw) > PLUGIN_MAX_ENV_BYTES:
        raise PluginError(f"{ENV_PREFIX}{name} is over {PLUGIN_MAX_ENV_BYTES // 1024} KiB")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise PluginError(f"{ENV_PREFIX}{name} is not base64 of UTF-8 text") from None


def inputs(env: Mapping[str, str]) -> tuple[dict[str, Any], list[PathKey], str]:
    """The masked values, the secret paths and the SOPS document from the plugin's environment."""
    try:
        values = json.loads(_decoded(env, PLUGIN_VALUES))
        paths = json.loads(_decoded(env, PLUGIN_SECRET_PATHS))
    except ValueError:
        raise PluginError(f"{ENV_PREFIX}{PLUGIN_VALUES} or {PLUGIN_SECRET_PATHS} is not JSON") from None
    if not isinstance(values, dict):
        raise PluginError(f"{ENV_PREFIX}{PLUGIN_VALUES} is not a mapping")
    if not isinstance(paths, list) or not all(
        isinstance(p, list) and p and all(isinstance(k, str | int) for k in p) for p in paths
    ):
        raise PluginError(f"{ENV_PREFIX}{PLUGIN_SECRET_PATHS} is not a list of paths")
    return values, [tuple(p) for p in paths], _decoded(env, PLUGIN_SOPS)


def _at(node: Any, path: PathKey) -> Any:
    for key in path:
        node = node[key]
    return node


def merged(values: dict[str, Any], paths: list[PathKey], decrypted: Any) -> tuple[dict[str, Any], list[str]]:
    """`values` with the value at each secret path taken from `decrypted`, and those values as text
    (for masking in errors). Pure; a path missing on either side is an error naming the path."""
    out = json.loads(json.dumps(values))  # a copy: the caller's tree stays masked
    secrets: list[str] = []
    for path in paths:
        shown = ".".join(map(str, path))
        try:
            value = _at(decrypted, path)
            parent = _at(out, path[:-1])
            parent[path[-1]]  # the masked value is there: the structure matches
        except (KeyError, IndexError, TypeError):
            raise PluginError(
                f"secret value {shown} is not in both the values and the decrypted SOPS document; "
                "sync the add-on again from its definition"
            ) from None
        parent[path[-1]] = value
        if isinstance(value, str | int | float):
            secrets.append(str(value))
    return out, secrets


def template_args(env: Mapping[str, str], chart_dir: Path) -> list[str]:
    """`helm template` for the Application Argo CD asked about, in its namespace, for its cluster's
    Kubernetes version and APIs (as Argo CD gives them to plugins)."""
    name, namespace = env.get("ARGOCD_APP_NAME", ""), env.get("ARGOCD_APP_NAMESPACE", "")
    if not name:
        raise PluginError("ARGOCD_APP_NAME is not set: run by argocd-cmp-server only")
    args = ["template", name, str(chart_dir), "--values", "-", "--include-crds"]
    if namespace:
        args += ["--namespace", namespace]
    if version := env.get("KUBE_VERSION", ""):
        args += ["--kube-version", version]
    for api in filter(None, env.get("KUBE_API_VERSIONS", "").split(",")):
        args += ["--api-versions", api]
    return args


async def generate(env: Mapping[str, str], chart_dir: Path, helm: Helm) -> str:
    """The manifests Argo CD applies for the add-on, its SOPS values decrypted in memory."""
    values, paths, document = inputs(env)
    try:
        plaintext = decrypt_yaml(document, Location(file="values (SOPS)"), env=dict(env))
        docs = parse_documents(plaintext, "values (SOPS)")
    except SpecError as e:
        raise PluginError(f"decrypting the add-on's SOPS values: {e.message}") from None
    full, secrets = merged(values, paths, docs[0].value if docs else {})
    try:
        return await helm.run(
            template_args(env, chart_dir),
            stdin=json.dumps(full).encode(),
            secrets=secrets,
            timeout=TIMEOUT_SECONDS,
            mask_output=False,
        )
    except HelmError as e:
        raise PluginError(str(e)) from None
