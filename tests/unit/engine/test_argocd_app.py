"""The Application an add-on becomes on the ArgoCD engine, and what an Application's status means."""

import base64
import json
from typing import Any

import pytest

from moorage.engine import argocd_app
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL
from moorage.engine.health.types import HealthStatus
from moorage.spec.content import MASK, ResolvedAddon, Sensitive
from moorage.spec.models import AddonSettings, JobConfiguration

VALUES = {"replicaCount": 3}


def addon(
    settings: dict[str, Any] | None = None, *, url: str = "https://charts.example.com", **kw: Any
) -> ResolvedAddon:
    fields: dict[str, Any] = {
        "name": "webapp",
        "stack": "apps",
        "chart_name": "webapp",
        "chart_version": "1.0.0",
        "registry_name": "example",
        "registry_url": url,
        "namespace": "web",
        "values": Sensitive(VALUES),
        "settings": AddonSettings.model_validate(settings or {}),
        "job_configuration": JobConfiguration.model_validate({}),
        "encrypted": False,
    }
    fields.update(kw)
    return ResolvedAddon(**fields)


def test_defaults_map_onto_an_automated_pruning_self_healing_application() -> None:
    app = argocd_app.application(addon(), "dev", VALUES)
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    meta = app["metadata"]
    assert (meta["name"], meta["namespace"]) == ("webapp", "argocd")
    assert meta["labels"][CLUSTER_LABEL] == "dev"
    assert meta["labels"][ADDON_LABEL] == "webapp"
    assert meta["finalizers"] == [argocd_app.RESOURCES_FINALIZER]
    spec = app["spec"]
    assert spec["source"] == {
        "repoURL": "https://charts.example.com",
        "chart": "webapp",
        "targetRevision": "1.0.0",
        "helm": {"releaseName": "webapp", "valuesObject": {"replicaCount": 3}},
    }
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "web"}
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert spec["syncPolicy"]["syncOptions"] == ["CreateNamespace=true", "ServerSideApply=true"]
    assert spec["syncPolicy"]["retry"] == {
        "limit": 5,
        "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert "ignoreDifferences" not in spec
    assert argocd_app.owned(app)


def test_no_auto_prune_means_no_cascading_finalizer() -> None:
    """Deleting the Application of an add-on that may not be pruned must leave its resources."""
    app = argocd_app.application(addon({"sync_policy": {"auto_prune": False}}), "dev", VALUES)
    assert "finalizers" not in app["metadata"]
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": False, "selfHeal": True}
    manual = argocd_app.application(addon({"sync_policy": {"automated": False}}), "dev", VALUES)
    assert "automated" not in manual["spec"]["syncPolicy"]
    assert "finalizers" not in manual["metadata"]


def test_settings_map_one_to_one() -> None:
    settings = {
        "sync_policy": {"self_heal": False, "sync_options": ["ServerSideApply=true"]},
        "retry_policy": {"limit": 2, "backoff": {"duration": "10s", "factor": 1.5, "max_duration": "1m"}},
        "revision_history_limit": 3,
        "ignore_differences": [
            {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]},
            {"kind": "ConfigMap", "managed_fields_managers": ["kube-controller-manager"]},
            {"kind": "Secret"},  # no specifier: ignored, as the validator warns
        ],
    }
    spec = argocd_app.application(addon(settings), "dev", VALUES)["spec"]
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": False}
    assert spec["syncPolicy"]["syncOptions"] == ["ServerSideApply=true", "RespectIgnoreDifferences=true"]
    assert spec["syncPolicy"]["retry"] == {
        "limit": 2,
        "backoff": {"duration": "10s", "factor": 2, "maxDuration": "1m"},  # Argo CD's factor is an int
    }
    assert spec["revisionHistoryLimit"] == 3
    assert spec["ignoreDifferences"] == [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]},
        {"kind": "ConfigMap", "managedFieldsManagers": ["kube-controller-manager"]},
    ]


def test_oci_registries_are_named_without_scheme_and_registered() -> None:
    oci = addon(url="oci://registry.example.com:5000/charts")
    assert (
        argocd_app.application(oci, "dev", {})["spec"]["source"]["repoURL"]
        == "registry.example.com:5000/charts"
    )
    secret = argocd_app.repository_secret(oci)
    assert secret is not None
    assert secret["metadata"]["labels"][argocd_app.REPOSITORY_SECRET_LABEL] == "repository"
    assert secret["stringData"] == {
        "type": "helm",
        "name": secret["metadata"]["name"],
        "url": "registry.example.com:5000/charts",
        "enableOCI": "true",
    }
    assert argocd_app.repository_secret(addon()) is None


def test_empty_values_send_no_values_object() -> None:
    assert "valuesObject" not in argocd_app.application(addon(), "dev", {})["spec"]["source"]["helm"]


def test_missing_registries_and_encrypted_values_without_their_document_are_refused() -> None:
    assert argocd_app.refusal(addon(registry_url=None)) is not None
    refused = argocd_app.refusal(addon(encrypted=True))  # decrypted, but the ciphertext was not kept
    assert refused is not None
    assert "ankra_native" in refused
    assert argocd_app.refusal(addon()) is None
    too_big = addon(encrypted=True, sops_document="x" * argocd_app.PLUGIN_MAX_ENV_BYTES)
    assert "too big" in (argocd_app.refusal(too_big) or "")


SOPS_DOCUMENT = "password: ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\nsops:\n    version: 3.11.0\n"


def encrypted_addon() -> ResolvedAddon:
    values = Sensitive({"username": "app", "password": "hunter2-plaintext"}, frozenset({("password",)}))
    return addon(values=values, encrypted=True, sops_document=SOPS_DOCUMENT)


def test_encrypted_values_go_to_the_plugin_as_ciphertext_never_as_plaintext() -> None:
    enc = encrypted_addon()
    assert argocd_app.refusal(enc) is None
    app = argocd_app.application(enc, "dev", enc.values.reveal())
    source = app["spec"]["source"]
    assert "helm" not in source  # Argo CD allows one of helm / plugin
    assert source["plugin"]["name"] == argocd_app.PLUGIN_NAME
    env = {e["name"]: base64.b64decode(e["value"]).decode() for e in source["plugin"]["env"]}
    assert json.loads(env[argocd_app.PLUGIN_VALUES]) == {"username": "app", "password": MASK}
    assert json.loads(env[argocd_app.PLUGIN_SECRET_PATHS]) == [["password"]]
    assert env[argocd_app.PLUGIN_SOPS] == SOPS_DOCUMENT
    assert "hunter2-plaintext" not in json.dumps(app)
    assert not any("hunter2-plaintext" in text for text in env.values())  # nor once decoded
    echoed = json.loads(json.dumps(source))
    assert argocd_app.same_source(source, echoed)
    assert not argocd_app.same_source(source, {k: v for k, v in source.items() if k != "plugin"})


def test_applications_of_others_are_not_owned() -> None:
    theirs = {"metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "Helm"}}}
    assert not argocd_app.owned(theirs)
    assert not argocd_app.owned({"metadata": {"name": "y"}})


def status(sync: str, health: str, phase: str = "", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"sync": {"status": sync, "revision": "1.0.0"}, "health": {"status": health}}
    if phase:
        out["operationState"] = {"phase": phase, "message": extra.pop("op_message", "")}
    out.update(extra)
    return {"status": out}


@pytest.mark.parametrize(
    ("app", "sync", "health", "done", "message"),
    [
        (status("Synced", "Healthy", "Succeeded"), "Synced", HealthStatus.HEALTHY, True, ""),
        (status("Synced", "Progressing", "Succeeded"), "Synced", HealthStatus.PROGRESSING, False, ""),
        (status("Synced", "Healthy", "Running"), "Synced", HealthStatus.HEALTHY, False, ""),
        (status("OutOfSync", "Healthy"), "OutOfSync", HealthStatus.HEALTHY, False, ""),
        (
            status("OutOfSync", "Missing", "Failed", op_message="one or more objects failed to apply"),
            "OutOfSync",
            HealthStatus.MISSING,
            False,
            "Argo CD sync failed: one or more objects failed to apply",
        ),
        (
            status(
                "Unknown", "Healthy", conditions=[{"type": "ComparisonError", "message": "chart not found"}]
            ),
            "Unknown",
            HealthStatus.HEALTHY,
            False,
            "ComparisonError: chart not found",
        ),
        ({}, "Unknown", HealthStatus.UNKNOWN, False, ""),
        ({"status": {"health": {"status": "Strange"}}}, "Unknown", HealthStatus.UNKNOWN, False, ""),
    ],
)
def test_state_of(app: dict[str, Any], sync: str, health: HealthStatus, done: bool, message: str) -> None:
    state = argocd_app.state_of(app)
    assert (state.sync, state.health, state.done, state.message) == (sync, health, done, message)


def test_a_status_of_an_older_version_is_not_in_sync() -> None:
    assert argocd_app.state_of(status("Synced", "Healthy", "Succeeded"), "2.0.0").sync == "OutOfSync"
    assert argocd_app.state_of(status("Synced", "Healthy", "Succeeded"), "1.0.0").done


def test_a_status_compared_with_an_older_source_is_not_in_sync() -> None:
    """After an update, Argo CD's status still describes the previous spec until it compares again:
    the deploy must not count that old Synced/Healthy as its own."""
    new = argocd_app.spec_for(addon(), {"replicaCount": 4})["source"]
    old = argocd_app.spec_for(addon(), {"replicaCount": 3})["source"]
    app = status("Synced", "Healthy", "Succeeded")
    app["status"]["sync"]["comparedTo"] = {"source": {k: v for k, v in old.items()}}
    assert argocd_app.state_of(app, "1.0.0", new).sync == "OutOfSync"
    assert argocd_app.state_of(app, "1.0.0", old).done


def test_same_source_ignores_what_argo_cd_drops() -> None:
    source = argocd_app.spec_for(addon(), {})["source"]
    echoed = {
        "repoURL": source["repoURL"],
        "chart": "webapp",
        "targetRevision": "1.0.0",
        "helm": {"releaseName": "webapp"},
    }
    assert argocd_app.same_source(source, echoed)
    assert not argocd_app.same_source(source, {**echoed, "targetRevision": "1.0.1"})
    assert not argocd_app.same_source(source, None)


def test_letting_go_removes_automated_sync_and_the_resources_finalizer_whoever_set_them() -> None:
    app = {
        "metadata": {"finalizers": ["other/keep", argocd_app.RESOURCES_FINALIZER]},
        "spec": {"syncPolicy": {"automated": {"prune": True}, "retry": {"limit": 5}}},
    }
    assert argocd_app.let_go_operations(app) == [
        {"op": "remove", "path": "/spec/syncPolicy/automated"},
        {"op": "test", "path": "/metadata/finalizers/1", "value": argocd_app.RESOURCES_FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/1"},
    ]
    let_go = {"metadata": {"finalizers": ["other/keep"]}, "spec": {"syncPolicy": {"retry": {"limit": 5}}}}
    assert argocd_app.let_go_operations(let_go) == []
    assert argocd_app.let_go_operations({}) == []


def test_the_observed_differences_of_an_encrypted_add_on_compare_its_plugin_inputs() -> None:
    from moorage.engine.argocd import differences

    enc = encrypted_addon()
    want = argocd_app.spec_for(enc, {})
    assert differences({"spec": json.loads(json.dumps(want))}, want) == []
    changed = addon(values=Sensitive({"username": "other", "password": "x"}, frozenset({("password",)})),
                    encrypted=True, sops_document=SOPS_DOCUMENT)  # fmt: skip
    assert differences({"spec": want}, argocd_app.spec_for(changed, {})) == ["values differ"]
    plain = argocd_app.spec_for(addon(), VALUES)
    assert differences({"spec": plain}, plain) == []
    nine = argocd_app.spec_for(addon(), {"replicaCount": 9})
    assert differences({"spec": plain}, nine) == ["values differ"]


def _healing_app(phase: str, *, attempts: int | None = 1, automated: bool = True) -> dict[str, Any]:
    """An Application as Argo CD v3.6.1 writes it while (or after) self-healing a scaled Deployment."""
    sync: dict[str, Any] = {
        "revision": "1.0.0",
        "resources": [{"group": "apps", "kind": "Deployment", "name": "web"}],
    }
    if attempts is not None:
        sync["autoHealAttemptsCount"] = attempts
    finished = {} if phase == "Running" else {"finishedAt": "2026-12-02T10:00:03Z"}
    return {
        "spec": argocd_app.spec_for(addon(), VALUES),
        "status": {
            "sync": {"status": "Synced" if phase == "Succeeded" else "OutOfSync", "revision": "1.0.0"},
            "health": {"status": "Healthy"},
            "resources": [
                {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web", "name": "web",
                 "status": "Synced"},
                {"version": "v1", "kind": "Service", "namespace": "web", "name": "web", "status": "Synced"},
            ],
            "operationState": {
                "operation": {"sync": sync, "initiatedBy": {"automated": automated}},
                "phase": phase,
                "startedAt": "2026-12-02T10:00:01Z",
                **finished,
            },
        },
    }  # fmt: skip


def test_a_self_heal_is_an_automated_sync_with_heal_attempts() -> None:
    heal = argocd_app.self_heal(_healing_app("Succeeded"))
    assert heal == argocd_app.SelfHeal(
        "2026-12-02T10:00:01Z", "2026-12-02T10:00:03Z", "Succeeded", (("apps", "Deployment", "web"),)
    )
    assert not heal.running
    running = argocd_app.self_heal(_healing_app("Running"))
    assert running is not None
    assert running.running
    # a first automated sync of a new source has no heal attempts; a sync a person started is no heal
    assert argocd_app.self_heal(_healing_app("Succeeded", attempts=None)) is None
    assert argocd_app.self_heal(_healing_app("Succeeded", attempts=0)) is None
    assert argocd_app.self_heal(_healing_app("Succeeded", automated=False)) is None
    assert argocd_app.self_heal({"status": {}}) is None


def test_the_drift_a_heal_reverted_is_reported_before_the_heal() -> None:
    from moorage.engine.argocd import before_heal, observation
    from moorage.spec.lifecycle import AddonState, ServerView, decide

    app = _healing_app("Succeeded")
    heal = argocd_app.self_heal(app)
    assert heal is not None
    now = observation(addon(), app, cause="heal")
    assert decide(now, ServerView()).state == AddonState.SYNCED
    before = before_heal(addon(), app, heal, cause="sweep", commit=None)
    assert [(d["api_version"], d["kind"], d["namespace"], d["name"]) for d in before.drift] == [
        ("apps/v1", "Deployment", "web", "web")
    ]
    found = decide(before, ServerView())
    assert found.state == AddonState.OUT_OF_SYNC, found
    assert "Deployment web" in found.reason


def test_a_self_heal_running_is_drift_not_a_deploy() -> None:
    from moorage.engine.argocd import observation
    from moorage.spec.lifecycle import AddonState, ServerView, decide

    found = decide(observation(addon(), _healing_app("Running"), cause="sweep"), ServerView())
    assert found.state == AddonState.OUT_OF_SYNC, found
    assert "Deployment web" in found.reason
    # an automated sync of a new version running is a deploy
    deploying = _healing_app("Running", attempts=None)
    assert decide(observation(addon(), deploying, cause="sweep"), ServerView()).state == AddonState.DEPLOYING


def test_the_time_argo_cd_last_synced_is_a_datetime() -> None:
    from datetime import UTC, datetime

    from moorage.engine.argocd import observation

    found = observation(addon(), _healing_app("Succeeded"), cause="sweep")
    assert found.last_deployed == datetime(2026, 12, 2, 10, 0, 3, tzinfo=UTC)
