"""The ArgoCD engine's pure half: the Argo CD `Application` an add-on becomes, and what an
Application's status says about the add-on. No I/O; `engine/argocd.py` applies and reads them.

One Application per add-on, named after it, in Argo CD's namespace, destination the cluster Argo CD
runs in. The add-on's settings map onto Argo CD's own fields one to one (sync policy, sync options,
retry, ignore_differences, revision history); Helm values travel as `helm.valuesObject`.

An add-on with SOPS-encrypted values never puts plaintext in the Application: its source names
Moorage's config-management plugin (`moorage-sops`, run by argocd-cmp-server beside the
repo-server) and carries the values with the secret paths masked, those paths, and the SOPS
document as committed (ciphertext), base64 in the plugin's environment. The plugin
(`engine/argocd_plugin.py`) decrypts them with the age key of its own process, in memory, and runs
`helm template`. The rendered manifests, Secrets included, are still cached in Argo CD's Redis and
held by its controller: the native engine is the one to use for secrets."""

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL
from moorage.engine.health.types import HealthStatus
from moorage.spec.content import ResolvedAddon
from moorage.spec.models import IgnoreDifference

API_VERSION = "argoproj.io/v1alpha1"
NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
# deleting an Application with this finalizer makes Argo CD delete its resources first (cascade)
RESOURCES_FINALIZER = "resources-finalizer.argocd.argoproj.io"
MANAGED_BY = "moorage"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
PLUGIN_NAME = "moorage-sops"  # the config-management plugin that decrypts SOPS values in the cluster
PLUGIN_VALUES, PLUGIN_SECRET_PATHS, PLUGIN_SOPS = "MOORAGE_VALUES", "MOORAGE_SECRET_PATHS", "MOORAGE_SOPS"
# one environment variable holds at most 128 KiB on Linux (MAX_ARG_STRLEN), base64 included
PLUGIN_MAX_ENV_BYTES = 96 * 1024
# Argo CD's label for Secrets that register a repository (needed for OCI Helm registries)
REPOSITORY_SECRET_LABEL = "argocd.argoproj.io/secret-type"  # noqa: S105 (a label name)


def refusal(addon: ResolvedAddon) -> str | None:
    """Why the add-on cannot run on the ArgoCD engine, or None."""
    if addon.encrypted:
        if addon.sops_document is None:
            return "its SOPS-encrypted values are not kept as their committed document; use ankra_native"
        too_big = [e["name"] for e in _plugin_env(addon) if len(e["value"]) > PLUGIN_MAX_ENV_BYTES]
        if too_big:
            return (
                f"its values are too big for Argo CD's plugin environment ({', '.join(too_big)} over "
                f"{PLUGIN_MAX_ENV_BYTES // 1024} KiB in base64); use deployment_engine ankra_native for it"
            )
    if not addon.registry_url:
        return f"it names no registry URL to fetch chart {addon.chart_name} from"
    return None


def _source(addon: ResolvedAddon, values: dict[str, Any]) -> dict[str, Any]:
    url = addon.registry_url or ""
    # Argo CD names OCI Helm repositories without the scheme, registered with enableOCI (repository_secret)
    repo_url = url.removeprefix("oci://") if url.startswith("oci://") else url
    source: dict[str, Any] = {
        "repoURL": repo_url,
        "chart": addon.chart_name,
        "targetRevision": addon.chart_version,
    }
    if addon.encrypted:  # never the plaintext: the plugin decrypts in the cluster
        source["plugin"] = {"name": PLUGIN_NAME, "env": _plugin_env(addon)}
        return source
    helm: dict[str, Any] = {"releaseName": addon.name}
    if values:
        helm["valuesObject"] = values
    source["helm"] = helm
    return source


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _plugin_env(addon: ResolvedAddon) -> list[dict[str, str]]:
    """The plugin's inputs, none of them secret: the values with their secret paths masked, the
    paths, and the committed SOPS document."""
    paths = sorted(([*p] for p in addon.values.secret_paths), key=lambda p: [str(k) for k in p])
    return [
        {"name": PLUGIN_VALUES, "value": _b64(json.dumps(addon.values.masked() or {}, sort_keys=True))},
        {"name": PLUGIN_SECRET_PATHS, "value": _b64(json.dumps(paths))},
        {"name": PLUGIN_SOPS, "value": _b64(addon.sops_document or "")},
    ]


def _ignore(rule: IgnoreDifference) -> dict[str, Any]:
    # as Argo CD stores it (Go's omitempty): an empty group is left out, or every read would differ
    out: dict[str, Any] = {"kind": rule.kind or "*"}
    for key, value in (
        ("group", rule.group),
        ("name", rule.name),
        ("namespace", rule.namespace),
        ("jsonPointers", rule.json_pointers),
        ("jqPathExpressions", rule.jq_path_expressions),
        ("managedFieldsManagers", rule.managed_fields_managers),
    ):
        if value:
            out[key] = value
    return out


def spec_for(addon: ResolvedAddon, values: dict[str, Any]) -> dict[str, Any]:
    """The Application spec for `addon`; `values` are its values, decrypted (for an encrypted add-on
    they are not used: the plugin gets the ciphertext instead)."""
    settings = addon.settings
    policy = settings.sync_policy
    sync_policy: dict[str, Any] = {"syncOptions": settings.effective_sync_options}
    if policy.automated:
        sync_policy["automated"] = {"prune": policy.auto_prune, "selfHeal": policy.self_heal}
    retry = settings.retry_policy
    sync_policy["retry"] = {
        "limit": retry.limit,
        "backoff": {
            "duration": retry.backoff.duration,
            # Argo CD's factor is an integer (int64): 1.5 becomes 2
            "factor": max(1, round(float(retry.backoff.factor))),
            "maxDuration": retry.backoff.max_duration,
        },
    }
    spec: dict[str, Any] = {
        "project": "default",
        "source": _source(addon, values),
        "destination": {"server": IN_CLUSTER, "namespace": addon.namespace},
        "syncPolicy": sync_policy,
        "revisionHistoryLimit": settings.revision_history_limit,
    }
    if settings.ignore_differences:
        spec["ignoreDifferences"] = [_ignore(r) for r in settings.ignore_differences if r.has_specifier]
    return spec


def application(addon: ResolvedAddon, cluster: str, values: dict[str, Any]) -> dict[str, Any]:
    """The Application for `addon`, labelled as Moorage's for `cluster`."""
    policy = addon.settings.sync_policy
    spec = spec_for(addon, values)
    metadata: dict[str, Any] = {
        "name": addon.name,
        "namespace": NAMESPACE,
        "labels": {CLUSTER_LABEL: cluster, ADDON_LABEL: addon.name, MANAGED_BY_LABEL: MANAGED_BY},
    }
    # prune that never deletes on doubt: only an add-on that may be pruned cascades on removal
    if policy.automated and policy.auto_prune:
        metadata["finalizers"] = [RESOURCES_FINALIZER]
    return {"apiVersion": API_VERSION, "kind": "Application", "metadata": metadata, "spec": spec}


def repository_secret(addon: ResolvedAddon) -> dict[str, Any] | None:
    """The Secret that registers an OCI Helm registry with Argo CD (no credentials), or None."""
    url = addon.registry_url or ""
    if not url.startswith("oci://"):
        return None
    host_path = url.removeprefix("oci://").rstrip("/")
    name = "moorage-repo-" + "".join(c if c.isalnum() else "-" for c in host_path.lower())[:40].strip("-")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {REPOSITORY_SECRET_LABEL: "repository", MANAGED_BY_LABEL: MANAGED_BY},
        },
        "stringData": {"type": "helm", "name": name, "url": host_path, "enableOCI": "true"},
    }


def owned(app: dict[str, Any]) -> bool:
    """Whether Moorage made this Application (never touch the others)."""
    labels = (app.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY_LABEL) == MANAGED_BY and ADDON_LABEL in labels


@dataclass(frozen=True)
class AppState:
    """What an Application's status says, in Moorage's words."""

    sync: str  # Synced | OutOfSync | Unknown
    health: HealthStatus
    message: str
    revision: str  # the chart version Argo CD last synced
    operation: str  # Running | Succeeded | Failed | Error | Terminating | "" (none)

    @property
    def settled(self) -> bool:
        """Synced and no operation running: what Argo CD will do next is nothing."""
        return self.sync == "Synced" and self.operation != "Running"

    @property
    def done(self) -> bool:
        """Settled and healthy: the deploy succeeded."""
        return self.settled and self.health == HealthStatus.HEALTHY


_HEALTH = {h.value: h for h in HealthStatus}


def let_go_operations(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    """JSON-patch operations that take Argo CD off a live Application whatever manager set the fields:
    automated sync removed, and the resources finalizer removed (guarded by `test`, so a concurrent
    change of the list fails the patch instead of removing the wrong entry). Empty when already so."""
    ops: list[dict[str, Any]] = []
    if "automated" in ((app.get("spec") or {}).get("syncPolicy") or {}):
        ops.append({"op": "remove", "path": "/spec/syncPolicy/automated"})
    finalizers = (app.get("metadata") or {}).get("finalizers") or []
    for index in reversed([i for i, f in enumerate(finalizers) if f == RESOURCES_FINALIZER]):
        ops.append({"op": "test", "path": f"/metadata/finalizers/{index}", "value": RESOURCES_FINALIZER})
        ops.append({"op": "remove", "path": f"/metadata/finalizers/{index}"})
    return ops


def same_source(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two Application sources name the same chart, version and values (Argo CD drops
    empty fields when it echoes a source in its status)."""
    a, b = a or {}, b or {}
    helm_a, helm_b = a.get("helm") or {}, b.get("helm") or {}
    return (
        all(a.get(k) == b.get(k) for k in ("repoURL", "chart", "targetRevision"))
        and all((helm_a.get(k) or None) == (helm_b.get(k) or None) for k in ("releaseName", "valuesObject"))
        and (a.get("plugin") or None) == (b.get("plugin") or None)
    )


def state_of(
    app: dict[str, Any], want_revision: str | None = None, want_source: Mapping[str, Any] | None = None
) -> AppState:
    """The Application's sync and health, with the most useful message for a person: a failed
    operation's message, else the first error condition, else the health message. With
    `want_source`, a status Argo CD computed for another source (an older spec) is OutOfSync."""
    status = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status") or "Unknown"
    compared = ((status.get("sync") or {}).get("comparedTo") or {}).get("source")
    if want_source is not None and sync == "Synced" and not same_source(compared, want_source):
        sync = "OutOfSync"  # not compared with the new spec yet
    revision = (status.get("sync") or {}).get("revision") or ""
    health = _HEALTH.get((status.get("health") or {}).get("status") or "", HealthStatus.UNKNOWN)
    operation = status.get("operationState") or {}
    phase = operation.get("phase") or ""
    message = ""
    if phase in ("Failed", "Error"):
        message = f"Argo CD sync {phase.lower()}: {operation.get('message') or 'no message'}"
    if not message:
        for condition in status.get("conditions") or []:
            if str(condition.get("type", "")).endswith("Error"):
                message = f"{condition.get('type')}: {condition.get('message', '')}"
                break
    if not message:
        message = (status.get("health") or {}).get("message") or ""
    if want_revision and revision and revision != want_revision and sync == "Synced":
        sync = "OutOfSync"  # an older spec's status: the new version was not synced yet
    return AppState(sync, health, message, revision, phase)


@dataclass(frozen=True)
class SelfHeal:
    """An automated sync Argo CD started to revert drift (read in v3.6.1's appcontroller: a self-heal
    is an automated operation of an already-synced source, with `autoHealAttemptsCount` at least 1 and
    `sync.resources` naming the resources that were not Synced). `started_at` identifies it."""

    started_at: str
    finished_at: str  # "" while it runs
    phase: str  # Running | Succeeded | Failed | Error | Terminating
    resources: tuple[tuple[str, str, str], ...]  # (group, kind, name) Argo CD found drifted

    @property
    def running(self) -> bool:
        return not self.finished_at and self.phase in ("", "Running", "Terminating")


def self_heal(app: Mapping[str, Any]) -> SelfHeal | None:
    """The Application's last operation when it is a self-heal, else None."""
    state = (app.get("status") or {}).get("operationState") or {}
    operation = state.get("operation") or {}
    sync = operation.get("sync") or {}
    attempts = sync.get("autoHealAttemptsCount")
    automated = (operation.get("initiatedBy") or {}).get("automated") is True
    if not automated or not isinstance(attempts, int) or attempts < 1 or not state.get("startedAt"):
        return None
    resources = tuple(
        (str(r.get("group") or ""), str(r.get("kind") or ""), str(r.get("name") or ""))
        for r in (sync.get("resources") or [])[:100]
        if isinstance(r, Mapping)
    )
    return SelfHeal(
        started_at=str(state["startedAt"]),
        finished_at=str(state.get("finishedAt") or ""),
        phase=str(state.get("phase") or ""),
        resources=resources,
    )
