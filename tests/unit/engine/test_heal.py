"""Self-heal: which fields only foreign managers own, from managedFields as the API server writes
them after a Helm server-side apply, `kubectl label`, `kubectl set env` and controller writes; and
the re-apply of drifted objects from the stored manifest (no helm run), with fields in a fight or
ignored left as they are live."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from moorage.engine import objects
from moorage.engine.context import EngineContext
from moorage.engine.diff import IgnoreRule, ResourceDrift, ResourceKey, diff_resource
from moorage.engine.heal import (
    _pointer,
    can_leave_out,
    concrete_path,
    desired_path,
    foreign_managers,
    foreign_only_paths,
    helm_field_manager,
    helm_object,
    reapply_release,
    remove_foreign_fields,
)
from moorage.helm.cli import Helm
from moorage.helm.storage import Release
from moorage.kube import errors as kube_errors
from moorage.kube.client import ApiResource, KubeClient
from moorage.spec.content import ResolvedAddon, Sensitive
from moorage.spec.models import AddonSettings, IgnoreDifference, JobConfiguration

OWN = ("helm", "moorage")
CONTAINER = ("spec", "template", "spec", "containers", 0)
TIME = "2026-05-01T10:00:00Z"


def entry(
    manager: str, operation: str, fields: dict[str, Any], subresource: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "time": TIME,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        out["subresource"] = subresource
    return out


def k(**key: Any) -> str:
    return "k:" + json.dumps(key, separators=(",", ":"))


# `helm upgrade --install --server-side` (manager "helm", operation Apply)
HELM_APPLY = entry(
    "helm",
    "Apply",
    {
        "f:metadata": {
            "f:annotations": {"f:meta.helm.sh/release-name": {}, "f:meta.helm.sh/release-namespace": {}},
            "f:labels": {"f:app.kubernetes.io/managed-by": {}, "f:app.kubernetes.io/name": {}},
        },
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}},
                "f:spec": {
                    "f:containers": {
                        k(name="web"): {
                            ".": {},
                            "f:env": {
                                k(name="LOG_LEVEL"): {".": {}, "f:name": {}, "f:value": {}},
                            },
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                k(containerPort=8080, protocol="TCP"): {
                                    ".": {},
                                    "f:containerPort": {},
                                    "f:name": {},
                                },
                            },
                        }
                    }
                },
            },
        },
    },
)

# `kubectl label deployment web team=payments` (Update by "kubectl-label")
KUBECTL_LABEL = entry("kubectl-label", "Update", {"f:metadata": {"f:labels": {"f:team": {}}}})

# `kubectl set env deployment/web DEBUG=1 TRACE=on` (Update by "kubectl-set"): two new env items
KUBECTL_SET_ENV = entry(
    "kubectl-set",
    "Update",
    {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {
                        k(name="web"): {
                            "f:env": {
                                k(name="DEBUG"): {".": {}, "f:name": {}, "f:value": {}},
                                k(name="TRACE"): {".": {}, "f:name": {}, "f:value": {}},
                            }
                        }
                    }
                }
            }
        }
    },
)

# the Deployment controller: revision annotation (main resource) and status (status subresource)
KCM_ANNOTATION = entry(
    "kube-controller-manager",
    "Update",
    {"f:metadata": {"f:annotations": {"f:deployment.kubernetes.io/revision": {}}}},
)
KCM_STATUS = entry(
    "kube-controller-manager",
    "Update",
    {
        "f:status": {
            "f:availableReplicas": {},
            "f:observedGeneration": {},
            "f:replicas": {},
            "f:conditions": {".": {}, k(type="Available"): {".": {}, "f:status": {}, "f:type": {}}},
        }
    },
    subresource="status",
)

# another applier that set spec.replicas to the same value as the chart: shared ownership
ARGO_SHARED_REPLICAS = entry("argocd-controller", "Apply", {"f:spec": {"f:replicas": {}}})

# a custom controller that only writes status (via the status subresource)
OPERATOR_STATUS = entry(
    "rollout-operator", "Update", {"f:status": {"f:conditions": {}}}, subresource="status"
)


def deployment(*managed: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "uid": "6f1c2a9e-2d7b-4c8e-9a51-3f0e8d2c7b11",
            "resourceVersion": "48213",
            "generation": 4,
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "meta.helm.sh/release-name": "web",
                "meta.helm.sh/release-namespace": "apps",
            },
            "labels": {
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/name": "web",
                "team": "payments",
            },
            "managedFields": list(managed),
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "strategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.local/web:1.0.0",
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {"name": "DEBUG", "value": "1"},
                                {"name": "TRACE", "value": "on"},
                            ],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        }
                    ]
                },
            },
        },
        "status": {
            "availableReplicas": 2,
            "observedGeneration": 4,
            "replicas": 2,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


EVERYONE = (HELM_APPLY, KUBECTL_LABEL, KUBECTL_SET_ENV, KCM_ANNOTATION, KCM_STATUS, ARGO_SHARED_REPLICAS)


# --------------------------------------------------------------------------- foreign_managers


def test_foreign_managers_excludes_own_controllers_and_status_writers() -> None:
    live = deployment(*EVERYONE, OPERATOR_STATUS)
    assert foreign_managers(live, OWN, ()) == {"kubectl-label", "kubectl-set", "argocd-controller"}


def test_foreign_managers_excludes_ignored_managers() -> None:
    live = deployment(*EVERYONE)
    assert foreign_managers(live, OWN, ["argocd-controller", "kubectl-set"]) == {"kubectl-label"}


def test_foreign_managers_of_a_pristine_helm_object() -> None:
    assert foreign_managers(deployment(HELM_APPLY, KCM_ANNOTATION, KCM_STATUS), OWN, ()) == set()


def test_a_manager_with_a_main_resource_entry_is_foreign_even_if_it_also_writes_status() -> None:
    spec_write = entry("rollout-operator", "Update", {"f:spec": {"f:strategy": {}}})
    live = deployment(HELM_APPLY, OPERATOR_STATUS, spec_write)
    assert foreign_managers(live, OWN, ()) == {"rollout-operator"}
    assert foreign_only_paths(live, OWN, ()) == [("spec", "strategy")]


# --------------------------------------------------------------------------- foreign_only_paths


def test_kubectl_label_and_set_env_are_healed() -> None:
    live = deployment(*EVERYONE)
    assert foreign_only_paths(live, OWN, ()) == [
        ("metadata", "labels", "team"),
        (*CONTAINER, "env", 1),
        (*CONTAINER, "env", 2),
    ]


def test_only_the_outermost_path_of_an_owned_item_is_returned() -> None:
    paths = foreign_only_paths(deployment(HELM_APPLY, KUBECTL_SET_ENV), OWN, ())
    assert (*CONTAINER, "env", 1, "value") not in paths
    assert paths == [(*CONTAINER, "env", 1), (*CONTAINER, "env", 2)]


def test_env_list_created_by_kubectl_set_is_removed_whole() -> None:
    # the chart sets no env: `kubectl set env` creates the list, and the API server records its "."
    helm = copy.deepcopy(HELM_APPLY)
    del helm["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][k(name="web")]["f:env"]
    set_env = copy.deepcopy(KUBECTL_SET_ENV)
    container_fields = set_env["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][k(name="web")]
    container_fields["f:env"] = {".": {}, k(name="DEBUG"): {".": {}, "f:name": {}, "f:value": {}}}
    live = deployment(helm, set_env)
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "DEBUG", "value": "1"}]
    assert foreign_only_paths(live, OWN, ()) == [(*CONTAINER, "env")]


def test_field_shared_with_helm_is_never_returned() -> None:
    live = deployment(HELM_APPLY, ARGO_SHARED_REPLICAS)
    assert foreign_managers(live, OWN, ()) == {"argocd-controller"}
    assert foreign_only_paths(live, OWN, ()) == []


def test_field_shared_through_an_atomic_ancestor_is_not_returned() -> None:
    # helm owns spec.selector as a whole (atomic); another manager's claim below it is shared
    other = entry(
        "kubectl-edit",
        "Update",
        {"f:spec": {"f:selector": {"f:matchLabels": {"f:app.kubernetes.io/name": {}}}}},
    )
    assert foreign_only_paths(deployment(HELM_APPLY, other), OWN, ()) == []


def test_the_same_field_unowned_by_helm_is_returned() -> None:
    helm_without_replicas = copy.deepcopy(HELM_APPLY)
    del helm_without_replicas["fieldsV1"]["f:spec"]["f:replicas"]
    live = deployment(helm_without_replicas, ARGO_SHARED_REPLICAS)
    assert foreign_only_paths(live, OWN, ()) == [("spec", "replicas")]


def test_status_and_controller_fields_are_never_healed() -> None:
    live = deployment(HELM_APPLY, KCM_ANNOTATION, KCM_STATUS, OPERATOR_STATUS)
    assert foreign_only_paths(live, OWN, ()) == []
    # even written by a foreign manager outside the status subresource, status is not healable
    rogue = entry("kubectl-edit", "Update", {"f:status": {"f:replicas": {}}})
    assert foreign_only_paths(deployment(HELM_APPLY, rogue), OWN, ()) == []


def test_metadata_other_than_labels_and_annotations_is_not_healed() -> None:
    rogue = entry(
        "kubectl-edit",
        "Update",
        {
            "f:metadata": {
                "f:finalizers": {".": {}, 'v:"example.com/cleanup"': {}},
                "f:annotations": {"f:note": {}},
            }
        },
    )
    live = deployment(HELM_APPLY, rogue)
    live["metadata"]["finalizers"] = ["example.com/cleanup"]
    live["metadata"]["annotations"]["note"] = "hello"
    assert foreign_only_paths(live, OWN, ()) == [("metadata", "annotations", "note")]


def test_fields_recorded_but_no_longer_present_are_not_returned() -> None:
    live = deployment(*EVERYONE)
    del live["metadata"]["labels"]["team"]
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "LOG_LEVEL", "value": "info"}]
    assert foreign_only_paths(live, OWN, ()) == []


def test_ignored_managers_are_not_healed() -> None:
    assert foreign_only_paths(deployment(*EVERYONE), OWN, ["kubectl-set"]) == [("metadata", "labels", "team")]


@pytest.mark.parametrize(
    ("skip", "expected"),
    [
        ([("metadata", "labels")], [(*CONTAINER, "env", 1), (*CONTAINER, "env", 2)]),
        ([("metadata", "labels", "team")], [(*CONTAINER, "env", 1), (*CONTAINER, "env", 2)]),
        ([(*CONTAINER, "env", 1)], [("metadata", "labels", "team"), (*CONTAINER, "env", 2)]),
        ([("spec",)], [("metadata", "labels", "team")]),
        (
            [("metadata", "labels", "tea")],
            [("metadata", "labels", "team"), (*CONTAINER, "env", 1), (*CONTAINER, "env", 2)],
        ),
        ([("metadata",), ("spec",)], []),
    ],
)
def test_skip_paths(skip: list[tuple[str | int, ...]], expected: list[tuple[str | int, ...]]) -> None:
    assert foreign_only_paths(deployment(*EVERYONE), OWN, (), skip) == expected


def test_no_managed_fields_means_nothing_to_heal() -> None:
    live = deployment()
    del live["metadata"]["managedFields"]
    assert foreign_managers(live, OWN, ()) == set()
    assert foreign_only_paths(live, OWN, ()) == []


# --------------------------------------------------------------------------- _pointer


@pytest.mark.parametrize(
    ("path", "pointer"),
    [
        ((), ""),
        (("metadata", "labels", "team"), "/metadata/labels/team"),
        (("metadata", "labels", "app.kubernetes.io/name"), "/metadata/labels/app.kubernetes.io~1name"),
        (("metadata", "annotations", "a~b"), "/metadata/annotations/a~0b"),
        (("metadata", "annotations", "x/~1"), "/metadata/annotations/x~1~01"),  # ~ first, then /
        (("metadata", "annotations", "~/"), "/metadata/annotations/~0~1"),
        ((*CONTAINER, "env", 12), "/spec/template/spec/containers/0/env/12"),
        (("data", ""), "/data/"),
    ],
)
def test_pointer_escaping(path: tuple[str | int, ...], pointer: str) -> None:
    assert _pointer(path) == pointer


# --------------------------------------------------------------------------- remove_foreign_fields


class RecordingKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str | None, list[dict[str, Any]]]] = []

    async def json_patch(
        self, api_version: str, kind: str, name: str, namespace: str | None, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.calls.append((api_version, kind, name, namespace, operations))
        return {}


async def test_remove_foreign_fields_guards_each_removal_and_removes_high_indexes_first() -> None:
    kube = RecordingKube()
    removed = await remove_foreign_fields(cast(KubeClient, kube), deployment(*EVERYONE), OWN)
    assert removed == 3
    env = "/spec/template/spec/containers/0/env"
    assert kube.calls == [
        (
            "apps/v1",
            "Deployment",
            "web",
            "apps",
            [
                {"op": "test", "path": f"{env}/2", "value": {"name": "TRACE", "value": "on"}},
                {"op": "remove", "path": f"{env}/2"},
                {"op": "test", "path": f"{env}/1", "value": {"name": "DEBUG", "value": "1"}},
                {"op": "remove", "path": f"{env}/1"},
                {"op": "test", "path": "/metadata/labels/team", "value": "payments"},
                {"op": "remove", "path": "/metadata/labels/team"},
            ],
        )
    ]


async def test_remove_foreign_fields_sends_nothing_when_clean() -> None:
    kube = RecordingKube()
    assert await remove_foreign_fields(cast(KubeClient, kube), deployment(HELM_APPLY, KCM_STATUS), OWN) == 0
    assert kube.calls == []


# --------------------------------------------------------------------------- re-apply helpers


def test_helm_object_adds_helms_ownership_metadata_without_touching_the_manifest_object() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}}
    out = helm_object(obj, release())
    assert out["metadata"] == {
        "name": "c",
        "labels": {"a": "1", "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "apps"},
    }
    assert obj["metadata"] == {"name": "c", "labels": {"a": "1"}}
    assert helm_object({"apiVersion": "v1", "kind": "ConfigMap"}, release())["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "Helm"
    }


@pytest.mark.parametrize(
    ("binary", "manager"), [("/root/.cache/moorage/bin/helm", "helm"), ("/opt/helm-4.1", "helm-4.1")]
)
def test_the_field_manager_is_what_helm_4_derives_from_its_argv0(binary: str, manager: str) -> None:
    assert helm_field_manager(Helm(binary=binary)) == manager


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("spec", "replicas"), ("spec", "replicas")),
        (("spec", "template", "spec", "containers", "0", "env", "2"), (*CONTAINER, "env", 2)),
        (("spec", "template", "spec", "containers", 0, "image"), (*CONTAINER, "image")),
        (("spec", "template", "spec", "containers", "1"), None),
        (("spec", "template", "spec", "containers", "00"), None),
        (("spec", "nope"), None),
        ((), ()),
    ],
)
def test_concrete_path(parts: tuple[str | int, ...], expected: tuple[str | int, ...] | None) -> None:
    assert concrete_path(deployment(), parts) == expected


@pytest.mark.parametrize(
    ("live_path", "expected"),
    [
        (("spec", "replicas"), ("spec", "replicas")),
        # env items matched by name: LOG_LEVEL is item 0 live, item 1 in desired
        ((*CONTAINER, "env", 0, "value"), (*CONTAINER, "env", 1, "value")),
        ((*CONTAINER, "env", 1), None),  # DEBUG: desired does not set it
        (("metadata", "labels", "team"), None),
        (
            ("spec", "template", "spec", "volumes", 1),
            ("spec", "template", "spec", "volumes", 1),
        ),  # by position
        (("spec", "template", "spec", "volumes", 5), None),
    ],
)
def test_desired_path_matches_list_items_like_the_drift_walk(
    live_path: tuple[str | int, ...], expected: tuple[str | int, ...] | None
) -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["volumes"] = [{"emptyDir": {}}, {"emptyDir": {"medium": "Memory"}}]
    desired = copy.deepcopy(live)
    desired["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "TRACE", "value": "on"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    del desired["metadata"]["labels"]["team"]
    assert desired_path(desired, live, live_path) == expected


HELM_WITHOUT_REPLICAS = copy.deepcopy(HELM_APPLY)
del HELM_WITHOUT_REPLICAS["fieldsV1"]["f:spec"]["f:replicas"]
HPA_REPLICAS = entry("hpa-controller-test", "Apply", {"f:spec": {"f:replicas": {}}})


@pytest.mark.parametrize(
    ("managed", "path", "safe"),
    [
        # another manager owns it and helm does not: dropping it from helm's apply keeps it
        ((HELM_WITHOUT_REPLICAS, HPA_REPLICAS), ("spec", "replicas"), True),
        # shared: the other owner keeps it
        ((HELM_APPLY, ARGO_SHARED_REPLICAS), ("spec", "replicas"), True),
        # helm alone owns it (a webhook's value recorded as helm's): dropping it would delete it
        ((HELM_APPLY,), ("spec", "replicas"), False),
        # the whole container: helm alone owns its image, name, ports
        ((HELM_APPLY, KUBECTL_SET_ENV), CONTAINER, False),
        # inside a value helm applies whole (spec.selector is atomic in helm's entry)
        ((HELM_APPLY,), ("spec", "selector", "matchLabels"), False),
        # a foreign label helm never set
        ((HELM_APPLY, KUBECTL_LABEL), ("metadata", "labels", "team"), True),
        # helm owns nothing at all
        ((KUBECTL_LABEL,), ("spec",), True),
    ],
)
def test_can_leave_out_only_what_another_manager_keeps(
    managed: tuple[dict[str, Any], ...], path: tuple[str | int, ...], safe: bool
) -> None:
    assert can_leave_out(deployment(*managed), path, "helm") is safe


# --------------------------------------------------------------------------- reapply_release

MANIFEST = """\
---
# Source: web/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app.kubernetes.io/name: web}
spec:
  selector: {app.kubernetes.io/name: web}
  ports: [{port: 80, targetPort: 8080}]
---
# Source: web/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data: {greeting: hello}
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app.kubernetes.io/name: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: web}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web}
    spec:
      containers:
        - name: web
          image: registry.local/web:1.0.0
          env: [{name: LOG_LEVEL, value: info}]
          ports: [{name: http, containerPort: 8080, protocol: TCP}]
"""

SERVICE_LIVE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "apps",
        "labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "apps"},
    },
    "spec": {"selector": {"app.kubernetes.io/name": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}
CONFIG_LIVE = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "web-config"},
    "data": {"greeting": "hello"},
}


def release() -> Release:
    return Release(
        name="web",
        namespace="apps",
        revision=1,
        status="deployed",
        chart_name="web",
        chart_version="1.0.0",
        app_version="1.0.0",
        last_deployed=None,
        values={},
        manifest=MANIFEST,
        secret_name="sh.helm.release.v1.web.v1",
        labels={},
    )


def addon(ignore: list[dict[str, Any]] | None = None) -> ResolvedAddon:
    return ResolvedAddon(
        name="web",
        stack="apps",
        chart_name="web",
        chart_version="1.0.0",
        registry_name="repo",
        registry_url="https://charts.example",
        namespace="apps",
        values=Sensitive({}, frozenset()),
        settings=AddonSettings.model_validate({"ignore_differences": ignore or []}),
        job_configuration=JobConfiguration.model_validate({}),
        encrypted=False,
    )


class FakeKube:
    """Serves live objects by (kind, name); apply returns the object as it was (the patch step then
    sees the foreign fields still there), and records what was applied and patched."""

    def __init__(
        self,
        *live: dict[str, Any],
        failing: tuple[str, ...] = (),
        after: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> None:
        self.live = {(o["kind"], o["metadata"]["name"]): o for o in live}
        self.failing = failing
        self.after = after or {}  # what an apply returns instead, by (kind, name)
        self.applied: list[tuple[dict[str, Any], str, bool]] = []
        self.patched: list[tuple[str, list[dict[str, Any]]]] = []

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        group, _, version = api_version.rpartition("/")
        return ApiResource(group, version, kind, kind.lower() + "s", namespaced=True)

    async def get(self, _api_version: str, kind: str, name: str, _namespace: str | None = None) -> Any:
        found = self.live.get((kind, name))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, obj: dict[str, Any], *, field_manager: str, force: bool = False, **_: Any) -> Any:
        if obj["kind"] in self.failing:
            raise kube_errors.Invalid(f"apply {obj['kind']}: denied by a webhook")
        self.applied.append((copy.deepcopy(obj), field_manager, force))
        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.after:
            return copy.deepcopy(self.after[key])
        return await self.get(obj["apiVersion"], *key) or obj

    async def json_patch(
        self, _api_version: str, kind: str, name: str, namespace: str | None, operations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        self.patched.append((f"{kind} {namespace}/{name}", operations))
        return {}


def context(kube: FakeKube) -> EngineContext:
    return EngineContext(cast(KubeClient, kube), Helm(binary="/usr/local/bin/helm"), fights=None)


def drift_of(kube: FakeKube, rules: list[IgnoreRule] | None = None) -> list[ResourceDrift]:
    out = []
    for obj in objects.parse_manifest(MANIFEST):
        obj["metadata"]["namespace"] = "apps"
        found = diff_resource(obj, kube.live.get((obj["kind"], obj["metadata"]["name"])), rules or [])
        if found is not None:
            out.append(found)
    return out


def fought_deployment(*managed: dict[str, Any]) -> dict[str, Any]:
    """kubectl label + kubectl set env + another manager that set spec.replicas to 5."""
    live = deployment(*managed)
    live["spec"]["replicas"] = 5
    return live


REPLICAS_KEY = (ResourceKey("apps", "Deployment", "apps", "web"), "spec.replicas")


async def test_drifted_objects_are_reapplied_under_helms_manager_and_missing_ones_created() -> None:
    # the forced apply takes spec.replicas back from the other manager
    healed = deployment(HELM_APPLY, KUBECTL_LABEL, KUBECTL_SET_ENV)
    kube = FakeKube(
        fought_deployment(HELM_WITHOUT_REPLICAS, HPA_REPLICAS, KUBECTL_LABEL, KUBECTL_SET_ENV),
        SERVICE_LIVE,
        after={("Deployment", "web"): healed},
    )
    drift = drift_of(kube)
    assert [(d.kind, d.drift_type) for d in drift] == [("ConfigMap", "missing"), ("Deployment", "modified")]
    outcome = await reapply_release(context(kube), release(), addon(), drift)

    assert outcome.applied == ["ConfigMap apps/web-config", "Deployment apps/web"]  # manifest order
    assert outcome.created == ["ConfigMap apps/web-config"]
    assert outcome.errors == []
    assert [(o["kind"], manager, force) for o, manager, force in kube.applied] == [
        ("ConfigMap", "helm", True),
        ("Deployment", "helm", True),
    ]
    manifest = {o["kind"]: o for o in objects.parse_manifest(MANIFEST)}
    for applied, _, _ in kube.applied:
        expected = helm_object(manifest[applied["kind"]], release())
        expected["metadata"]["namespace"] = "apps"
        assert applied == expected  # the stored manifest as helm applies it, replicas: 2 included
    # then the foreign-only fields: the label and both env items (replicas is not healed by a patch)
    ((what, operations),) = kube.patched
    assert what == "Deployment apps/web"
    assert [op["path"] for op in operations if op["op"] == "remove"] == [
        "/spec/template/spec/containers/0/env/2",
        "/spec/template/spec/containers/0/env/1",
        "/metadata/labels/team",
    ]
    assert outcome.removed_fields == 3
    assert REPLICAS_KEY in outcome.healed
    assert outcome.held == {}


async def test_a_held_field_is_left_out_of_the_apply_and_of_the_patch() -> None:
    kube = FakeKube(
        fought_deployment(HELM_WITHOUT_REPLICAS, HPA_REPLICAS, KUBECTL_LABEL), SERVICE_LIVE, CONFIG_LIVE
    )
    outcome = await reapply_release(context(kube), release(), addon(), drift_of(kube), hold={REPLICAS_KEY})
    ((applied, _, _),) = kube.applied
    assert "replicas" not in applied["spec"]
    assert applied["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1.0.0"
    ((_, operations),) = kube.patched
    assert [op["path"] for op in operations if op["op"] == "remove"] == ["/metadata/labels/team"]
    assert REPLICAS_KEY not in outcome.healed
    assert (REPLICAS_KEY[0], "metadata.labels.team") in outcome.healed
    held = outcome.held[REPLICAS_KEY]
    assert held.manager == "hpa-controller-test"
    assert "json_pointers:\n  - /spec/replicas\n" in held.ignore_entry


async def test_an_object_whose_only_drift_is_held_is_not_written() -> None:
    kube = FakeKube(fought_deployment(HELM_WITHOUT_REPLICAS, HPA_REPLICAS), SERVICE_LIVE, CONFIG_LIVE)
    drift = drift_of(kube)
    assert [d.paths for d in drift] == [("spec.replicas",)]
    outcome = await reapply_release(context(kube), release(), addon(), drift, hold={REPLICAS_KEY})
    assert (kube.applied, kube.patched, outcome.applied) == ([], [], [])
    assert set(outcome.held) == {REPLICAS_KEY}


async def test_a_held_field_only_helm_owns_stays_in_the_apply() -> None:
    # a mutating webhook changed replicas during helm's own apply: dropping it would delete it
    kube = FakeKube(fought_deployment(HELM_APPLY, KUBECTL_LABEL), SERVICE_LIVE)
    outcome = await reapply_release(context(kube), release(), addon(), drift_of(kube), hold={REPLICAS_KEY})
    deployment_applied = next(o for o, _, _ in kube.applied if o["kind"] == "Deployment")
    assert deployment_applied["spec"]["replicas"] == 2
    assert outcome.held[REPLICAS_KEY].manager.startswith("unknown")


async def test_ignored_fields_another_manager_owns_keep_their_live_value() -> None:
    ignore = [
        {"kind": "Deployment", "json_pointers": ["/spec/replicas", "/spec/template/spec/containers/0/image"]}
    ]
    kube = FakeKube(fought_deployment(HELM_WITHOUT_REPLICAS, HPA_REPLICAS, KUBECTL_LABEL), SERVICE_LIVE)
    rules = [IgnoreRule.from_spec(IgnoreDifference.model_validate(r)) for r in ignore]
    drift = drift_of(kube, rules)
    assert [d.paths for d in drift if d.kind == "Deployment"] == [("metadata.labels.team",)]
    await reapply_release(context(kube), release(), addon(ignore), drift)
    applied = next(o for o, _, _ in kube.applied if o["kind"] == "Deployment")
    assert "replicas" not in applied["spec"]  # the other manager's value stays
    # helm alone owns the image: left in, it re-applies the value helm set
    assert applied["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/web:1.0.0"


async def test_objects_without_drift_left_are_not_written_and_failures_do_not_stop_the_rest() -> None:
    kube = FakeKube(
        fought_deployment(HELM_WITHOUT_REPLICAS, HPA_REPLICAS), SERVICE_LIVE, failing=("ConfigMap",)
    )
    drift = drift_of(kube)
    stale = [*drift, ResourceDrift("v1", "Service", "apps", "web", "modified")]  # healed meanwhile
    outcome = await reapply_release(context(kube), release(), addon(), stale)
    assert outcome.errors == ["self-heal of ConfigMap apps/web-config: apply ConfigMap: denied by a webhook"]
    assert outcome.applied == ["Deployment apps/web"]
