"""diff_resource / diff_release over realistic objects: what counts as drift and how it is named."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from moorage.engine.diff import (
    FieldChange,
    ResourceDrift,
    ResourceKey,
    diff_release,
    diff_resource,
    normalize,
    resource_key,
)
from tests.unit.engine.test_diff_fixtures import (
    KUBECTL_EDIT_ENTRY_YAML,
    KUBECTL_SCALE_ENTRY_YAML,
    as_live,
    container,
    desired_configmap,
    desired_deployment,
    desired_service,
    edited,
    live_configmap,
    live_deployment,
    live_service,
    load,
)

Obj = dict[str, Any]


def changes_of(desired: Obj, live: Obj | None) -> list[tuple[str, Any, Any]]:
    drift = diff_resource(desired, live)
    return [] if drift is None else [(c.path, c.desired, c.live) for c in drift.changes]


# ---------------------------------------------------------------------------------------- no drift


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        pytest.param(desired_deployment, live_deployment, id="deployment-helm-ssa-with-defaults"),
        pytest.param(desired_service, live_service, id="service-port-string-vs-int"),
        pytest.param(desired_configmap, live_configmap, id="configmap"),
    ],
)
def test_freshly_applied_objects_have_no_drift(desired: Callable[[], Obj], live: Callable[[], Obj]) -> None:
    assert diff_resource(desired(), live()) is None


def test_helm3_client_side_update_owning_defaults_is_not_drift() -> None:
    live = live_deployment()
    # Helm 3 creates with an Update: the create records the defaulted fields under "helm" too
    live["metadata"]["managedFields"][0]["operation"] = "Update"
    live["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:strategy"] = {"f:type": {}}
    assert diff_resource(desired_deployment(), live) is None


# ---------------------------------------------------------------------------------------- out-of-band edits


def kubectl_edit(live: Obj) -> Obj:
    out = edited(live, KUBECTL_EDIT_ENTRY_YAML)
    out["metadata"]["labels"]["team"] = "payments"
    container(out)["env"].append({"name": "DEBUG", "value": "1"})
    return out


def kubectl_scale(live: Obj) -> Obj:
    out = edited(live, KUBECTL_SCALE_ENTRY_YAML)
    out["spec"]["replicas"] = 5
    return out


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            kubectl_scale,
            [("spec.replicas", 2, 5)],
            id="kubectl-scale-value-mismatch",
        ),
        pytest.param(
            kubectl_edit,
            [
                ("metadata.labels.team", None, "payments"),
                ("spec.template.spec.containers[web].env[DEBUG]", None, {"name": "DEBUG", "value": "1"}),
            ],
            id="kubectl-edit-label-and-env-owned-by-foreign-manager",
        ),
    ],
)
def test_out_of_band_edits_are_reported_with_exact_paths(
    mutate: Callable[[Obj], Obj], expected: list[tuple[str, Any, Any]]
) -> None:
    assert changes_of(desired_deployment(), mutate(live_deployment())) == expected


def test_change_types_and_live_pointers() -> None:
    live = kubectl_edit(live_deployment())
    del live["metadata"]["labels"]["helm.sh/chart"]
    live["spec"]["replicas"] = 3
    drift = diff_resource(desired_deployment(), live)
    assert drift is not None
    assert [(c.path, c.change, c.live_pointer) for c in drift.changes] == [
        ('metadata.labels["helm.sh/chart"]', "removed", None),
        ("metadata.labels.team", "added", "/metadata/labels/team"),
        ("spec.replicas", "modified", "/spec/replicas"),
        ("spec.template.spec.containers[web].env[DEBUG]", "added", "/spec/template/spec/containers/0/env/2"),
    ]


def test_changed_env_value_and_image_are_named_by_container_and_env_name() -> None:
    live = live_deployment()
    container(live)["env"][0]["value"] = "debug"
    container(live)["image"] = "registry.local/web:1.0.1"
    assert changes_of(desired_deployment(), live) == [
        ("spec.template.spec.containers[web].env[LOG_LEVEL].value", "info", "debug"),
        ("spec.template.spec.containers[web].image", "registry.local/web:1.0.0", "registry.local/web:1.0.1"),
    ]


def test_named_items_match_by_name_whatever_their_order() -> None:
    live = live_deployment()
    container(live)["env"].reverse()
    assert diff_resource(desired_deployment(), live) is None


def test_removed_label_and_removed_env_item_are_drift() -> None:
    live = live_deployment()
    del live["metadata"]["labels"]["helm.sh/chart"]
    del container(live)["env"][1]
    assert changes_of(desired_deployment(), live) == [
        ('metadata.labels["helm.sh/chart"]', "webapp-1.0.0", None),
        ("spec.template.spec.containers[web].env[WORKERS]", {"name": "WORKERS", "value": "4"}, None),
    ]


def test_unnamed_lists_are_compared_by_position() -> None:
    live = live_deployment()
    container(live)["args"] = ["--port", "9090"]
    assert changes_of(desired_deployment(), live) == [
        ("spec.template.spec.containers[web].args[1]", "8080", "9090")
    ]


def test_live_only_fields_by_controllers_helm_or_nobody_are_not_drift() -> None:
    live = live_deployment()
    live["metadata"]["finalizers"] = ["example.com/protect"]  # written by a known controller below
    live["metadata"]["managedFields"].append(
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:finalizers": {".": {}, 'v:"example.com/protect"': {}}}},
        }
    )
    live["spec"]["minReadySeconds"] = 0  # a default nobody owns
    assert diff_resource(desired_deployment(), live) is None


def test_live_only_field_of_an_unknown_operator_is_drift() -> None:
    live = live_deployment()
    live["metadata"]["annotations"]["example.com/injected"] = "yes"
    live["metadata"]["managedFields"].append(
        {
            "manager": "some-operator",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:example.com/injected": {}}}},
        }
    )
    assert changes_of(desired_deployment(), live) == [
        ('metadata.annotations["example.com/injected"]', None, "yes")
    ]


def test_status_subresource_writes_by_anyone_are_not_drift() -> None:
    live = live_deployment()
    live["metadata"]["managedFields"].append(
        {
            "manager": "argo-rollouts",
            "operation": "Update",
            "subresource": "status",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {"f:replicas": {}}},
        }
    )
    assert diff_resource(desired_deployment(), live) is None


def test_foreign_owner_of_a_whole_new_map_reports_only_its_own_keys() -> None:
    desired = desired_configmap()
    live = live_configmap()
    live["metadata"]["labels"] = {"team": "payments", "from-helm": "x"}
    live["metadata"]["managedFields"].append(
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}},
        }
    )
    assert changes_of(desired, live) == [("metadata.labels.team", None, "payments")]


def test_own_managers_are_configurable() -> None:
    live = kubectl_edit(live_deployment())
    drift = diff_resource(desired_deployment(), live, own_managers={"helm", "kubectl-edit"})
    assert drift is None


# ---------------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("desired_value", "live_value", "drift"),
    [
        (0.5, "500m", False),
        ("0.5", "500m", False),
        (1, "1", False),
        ("1000m", "1", False),
        ("1024Mi", "1Gi", False),
        ("1Gi", "1073741824", False),
        ("1G", "1Gi", True),
        ("1Gi", "2Gi", True),
        ("250m", "500m", True),
    ],
)
def test_resource_quantities_compare_by_value(desired_value: Any, live_value: Any, drift: bool) -> None:
    desired, live = desired_deployment(), live_deployment()
    container(desired)["resources"]["limits"]["memory"] = desired_value
    container(live)["resources"]["limits"]["memory"] = live_value
    expected = [("spec.template.spec.containers[web].resources.limits.memory", desired_value, live_value)]
    assert changes_of(desired, live) == (expected if drift else [])


@pytest.mark.parametrize(
    ("desired_value", "live_value", "drift"),
    [
        ("80", 80, False),
        (80, 80.0, False),
        ("80", "80", False),
        ("080", 80, False),
        ("80", 81, True),
        ("http", 80, True),
        (True, 1, True),
        ("true", True, True),
    ],
)
def test_scalars_coerce_numbers_only(desired_value: Any, live_value: Any, drift: bool) -> None:
    desired, live = desired_service(), live_service()
    desired["spec"]["ports"][0]["port"] = desired_value
    live["spec"]["ports"][0]["port"] = live_value
    assert bool(changes_of(desired, live)) is drift


def test_quantity_rules_do_not_apply_outside_quantity_fields() -> None:
    desired, live = desired_configmap(), live_configmap()
    desired["data"]["LOG_FORMAT"] = "1Gi"
    live["data"]["LOG_FORMAT"] = "1024Mi"
    assert changes_of(desired, live) == [("data.LOG_FORMAT", "1Gi", "1024Mi")]


def test_desired_null_and_omitempty_zero_values_are_not_drift() -> None:
    desired = desired_deployment()
    desired["spec"]["template"]["spec"]["hostNetwork"] = False
    desired["spec"]["template"]["spec"]["nodeSelector"] = None
    desired["spec"]["template"]["spec"]["tolerations"] = []
    container(desired)["workingDir"] = ""
    assert diff_resource(desired, live_deployment()) is None


def test_empty_value_in_a_freeform_map_is_a_real_value() -> None:
    desired = desired_configmap()
    desired["data"]["EMPTY"] = ""
    assert changes_of(desired, live_configmap()) == [("data.EMPTY", "", None)]


def test_type_mismatch_is_a_change() -> None:
    desired, live = desired_configmap(), live_configmap()
    live["data"] = ["not", "a", "map"]
    assert changes_of(desired, live)[0][0] == "data"


def test_path_quoting_for_dotted_keys_and_odd_names() -> None:
    desired, live = desired_configmap(), live_configmap()
    live["data"]["config.yaml"] = "listen: 9090\n"
    assert changes_of(desired, live) == [('data["config.yaml"]', "listen: 8080\n", "listen: 9090\n")]


def test_non_string_yaml_keys_do_not_break_the_walk() -> None:
    desired, live = desired_configmap(), live_configmap()
    desired["data"][80] = "port"
    assert changes_of(desired, live) == [("data.80", "port", None)]


def test_identity_fields_are_not_diffed() -> None:
    live = live_deployment()
    live["apiVersion"] = "apps/v1beta2"  # read at another version of the same group
    assert diff_resource(desired_deployment(), live) is None


# ---------------------------------------------------------------------------------------- result shape


def test_missing_object() -> None:
    drift = diff_resource(desired_configmap(), None, default_namespace="apps")
    assert drift == ResourceDrift("v1", "ConfigMap", "apps", "web-config", "missing", ())
    assert drift.to_dict() == {
        "api_version": "v1",
        "kind": "ConfigMap",
        "namespace": "apps",
        "name": "web-config",
        "drift_type": "missing",
        "paths": [],
        "changes": [],
    }


def test_result_is_json_serialisable_and_matches_the_wire_shape() -> None:
    drift = diff_resource(desired_deployment(), kubectl_scale(live_deployment()))
    assert drift is not None
    wire = json.loads(json.dumps(drift.to_dict()))
    assert {k: wire[k] for k in ("api_version", "kind", "namespace", "name", "drift_type", "paths")} == {
        "api_version": "apps/v1",
        "kind": "Deployment",
        "namespace": "apps",
        "name": "web",
        "drift_type": "modified",
        "paths": ["spec.replicas"],
    }
    assert drift.changes == (FieldChange("spec.replicas", 2, 5, "modified", "/spec/replicas"),)
    assert drift.key == ResourceKey("apps", "Deployment", "apps", "web")


def test_inputs_are_not_mutated() -> None:
    desired, live = desired_deployment(), kubectl_edit(live_deployment())
    before = (copy.deepcopy(desired), copy.deepcopy(live))
    diff_resource(desired, live)
    normalize(live)
    assert (desired, live) == before


# ---------------------------------------------------------------------------------------- diff_release


def test_diff_release_pairs_by_group_kind_namespace_name_and_keeps_input_order() -> None:
    cluster_role = load(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: web}\n"
    )
    desired = [desired_deployment(), desired_service(), desired_configmap(), cluster_role]
    live_cm = live_configmap()
    live_cm["data"]["LOG_FORMAT"] = "text"
    live_by_key = {
        resource_key(live_deployment()): kubectl_scale(live_deployment()),
        resource_key(live_service()): live_service(),
        resource_key(live_cm): live_cm,
        ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "web"): as_live(
            cluster_role, namespace=""
        ),
    }
    drifts = diff_release(desired, live_by_key, default_namespace="apps")
    assert [(d.kind, d.drift_type, d.paths) for d in drifts] == [
        ("Deployment", "modified", ("spec.replicas",)),
        ("ConfigMap", "modified", ("data.LOG_FORMAT",)),
    ]


def test_diff_release_reports_missing_objects() -> None:
    drifts = diff_release([desired_configmap()], {}, default_namespace="apps")
    assert [(d.key, d.drift_type) for d in drifts] == [
        (ResourceKey("", "ConfigMap", "apps", "web-config"), "missing")
    ]


def test_diff_release_accepts_the_callers_key_function() -> None:
    def key(obj: Any) -> tuple[str, str]:
        return (obj["kind"], obj["metadata"]["name"])

    drifts = diff_release([desired_configmap()], {("ConfigMap", "web-config"): live_configmap()}, key=key)
    assert drifts == []
