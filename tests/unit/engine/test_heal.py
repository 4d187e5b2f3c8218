"""Self-heal: which fields only foreign managers own, from managedFields as the API server writes
them after a Helm server-side apply, `kubectl label`, `kubectl set env` and controller writes."""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import pytest

from moorage.engine.heal import _pointer, foreign_managers, foreign_only_paths, remove_foreign_fields
from moorage.kube.client import KubeClient

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
