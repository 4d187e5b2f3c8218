"""Ignore rules: selectors, JSON pointers, jq path expressions, managed-fields managers."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.engine.diff import IgnoreRule, ResourceKey, diff_resource
from moorage.engine.diffing.ignore import jq_paths, remove_paths
from moorage.spec.models import IgnoreDifference
from tests.unit.engine.test_diff_fixtures import (
    KUBECTL_EDIT_ENTRY_YAML,
    KUBECTL_SCALE_ENTRY_YAML,
    container,
    desired_deployment,
    edited,
    live_deployment,
)

Obj = dict[str, Any]
ENV_PATH = "spec.template.spec.containers[web].env"


def drifted_live() -> Obj:
    """kubectl scale to 5, kubectl edit: label team, env DEBUG added, LOG_LEVEL changed."""
    live = edited(edited(live_deployment(), KUBECTL_SCALE_ENTRY_YAML), KUBECTL_EDIT_ENTRY_YAML)
    live["spec"]["replicas"] = 5
    live["metadata"]["labels"]["team"] = "payments"
    env = container(live)["env"]
    env.append({"name": "DEBUG", "value": "1"})
    env[0]["value"] = "debug"
    # an Update takes the field it changed away from the applier
    fields = live["metadata"]["managedFields"][-1]["fieldsV1"]
    web = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    web["f:env"]['k:{"name":"LOG_LEVEL"}'] = {"f:value": {}}
    return live


ALL_PATHS = (
    "metadata.labels.team",
    "spec.replicas",
    f"{ENV_PATH}[LOG_LEVEL].value",
    f"{ENV_PATH}[DEBUG]",
)


def paths(rules: list[IgnoreRule], live: Obj | None = None) -> tuple[str, ...]:
    drift = diff_resource(desired_deployment(), drifted_live() if live is None else live, rules)
    return () if drift is None else drift.paths


def test_without_rules_everything_is_reported() -> None:
    assert paths([]) == ALL_PATHS


@pytest.mark.parametrize(
    ("rule", "still_reported"),
    [
        pytest.param(
            IgnoreRule(group="apps", kind="Deployment", json_pointers=("/spec/replicas",)),
            [p for p in ALL_PATHS if p != "spec.replicas"],
            id="replicas-by-json-pointer",
        ),
        pytest.param(
            IgnoreRule(json_pointers=("/metadata/labels/team", "/spec/template/spec/containers/0/env")),
            ["spec.replicas"],
            id="pointers-including-a-list-index",
        ),
        pytest.param(
            IgnoreRule(managed_fields_managers=("kubectl-edit",)),
            ["spec.replicas"],
            id="fields-owned-by-kubectl-edit",
        ),
        pytest.param(
            IgnoreRule(managed_fields_managers=("kubectl",)),
            [p for p in ALL_PATHS if p != "spec.replicas"],
            id="replicas-owned-by-kubectl-scale",
        ),
        pytest.param(
            IgnoreRule(
                jq_path_expressions=('.spec.template.spec.containers[].env[] | select(.name == "LOG_LEVEL")',)
            ),
            ["metadata.labels.team", "spec.replicas", f"{ENV_PATH}[DEBUG]"],
            id="jq-env-by-name",
        ),
        pytest.param(
            IgnoreRule(jq_path_expressions=(".spec.template.spec.containers[].env", ".metadata.labels")),
            ["spec.replicas"],
            id="jq-wildcard",
        ),
        pytest.param(
            IgnoreRule(kind="Deploy*", name="w?b", namespace="apps", json_pointers=("/spec/replicas",)),
            [p for p in ALL_PATHS if p != "spec.replicas"],
            id="glob-selectors",
        ),
    ],
)
def test_ignored_fields_are_not_drift(rule: IgnoreRule, still_reported: list[str]) -> None:
    assert paths([rule]) == tuple(still_reported)


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(IgnoreRule(kind="Service", json_pointers=("/spec/replicas",)), id="other-kind"),
        pytest.param(IgnoreRule(group="", json_pointers=("/spec/replicas",)), id="core-group-only"),
        pytest.param(IgnoreRule(namespace="other", json_pointers=("/spec/replicas",)), id="other-namespace"),
        pytest.param(IgnoreRule(kind="Deployment"), id="no-specifier-is-ignored"),
        pytest.param(
            IgnoreRule(json_pointers=("/spec/nope", "/spec/template/spec/containers/7")), id="no-match"
        ),
        pytest.param(IgnoreRule(jq_path_expressions=(".spec.nothing[] | .x",)), id="jq-runtime-error"),
        pytest.param(IgnoreRule(managed_fields_managers=("someone-else",)), id="unknown-manager"),
    ],
)
def test_rules_that_do_not_apply_change_nothing(rule: IgnoreRule) -> None:
    assert paths([rule]) == ALL_PATHS


def test_manager_rule_does_not_hide_a_field_another_manager_changed() -> None:
    # kubectl-edit is ignored, but kubectl (scale) still owns replicas: reported
    assert "spec.replicas" in paths([IgnoreRule(managed_fields_managers=("kubectl-edit",))])


def test_json_pointer_escapes() -> None:
    desired, live = desired_deployment(), live_deployment()
    live["metadata"]["labels"]["helm.sh/chart"] = "webapp-1.0.1"
    rule = IgnoreRule(json_pointers=("/metadata/labels/helm.sh~1chart",))
    assert diff_resource(desired, live) is not None
    assert diff_resource(desired, live, [rule]) is None


def test_rules_remove_from_both_sides() -> None:
    desired = desired_deployment()
    container(desired)["env"].append({"name": "ONLY_DESIRED", "value": "x"})
    rule = IgnoreRule(
        jq_path_expressions=('.spec.template.spec.containers[].env[] | select(.name == "ONLY_DESIRED")',)
    )
    assert diff_resource(desired, live_deployment(), [rule]) is None


def test_items_removed_by_a_rule_keep_live_positions_for_ownership_and_pointers() -> None:
    live = drifted_live()
    rule = IgnoreRule(
        jq_path_expressions=('.spec.template.spec.containers[].env[] | select(.name == "LOG_LEVEL")',)
    )
    drift = diff_resource(desired_deployment(), live, [rule])
    assert drift is not None
    debug = [c for c in drift.changes if c.path == f"{ENV_PATH}[DEBUG]"]
    assert [c.live_pointer for c in debug] == ["/spec/template/spec/containers/0/env/2"]
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[2] == {"name": "DEBUG", "value": "1"}  # the pointer designates it in the object as read


def test_index_matched_lists_pair_the_items_left_after_a_rule() -> None:
    desired, live = desired_deployment(), live_deployment()
    container(live)["args"] = ["--injected", "--port", "8080"]
    # a pointer would designate args/0 on both sides; a jq selection finds it only in live
    pointer = IgnoreRule(json_pointers=("/spec/template/spec/containers/0/args/0",))
    selection = IgnoreRule(
        jq_path_expressions=('.spec.template.spec.containers[].args[] | select(. == "--injected")',)
    )
    assert diff_resource(desired, live, [pointer]) is not None
    assert diff_resource(desired, live, [selection]) is None


def test_from_spec_reads_the_spec_model_with_argo_spellings() -> None:
    spec = IgnoreDifference.model_validate(
        {
            "group": "apps",
            "kind": "Deployment",
            "jsonPointers": ["/spec/replicas"],
            "managedFieldsManagers": ["x"],
        }
    )
    rule = IgnoreRule.from_spec(spec)
    assert rule == IgnoreRule(
        group="apps", kind="Deployment", json_pointers=("/spec/replicas",), managed_fields_managers=("x",)
    )
    assert rule.matches(ResourceKey("apps", "Deployment", "apps", "web"))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json_pointers": ("spec/replicas",)}, id="pointer-without-slash"),
        pytest.param({"json_pointers": ("/a/~2",)}, id="bad-escape"),
        pytest.param({"jq_path_expressions": (".spec[",)}, id="jq-syntax"),
    ],
)
def test_invalid_rules_fail_when_built(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"JSON pointer|jq"):
        IgnoreRule(**kwargs)


def test_jq_paths_and_removal_handle_several_items_of_one_list() -> None:
    obj: Obj = {"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}
    found = jq_paths('.items[] | select(.name == "b" or .name == "d")', obj)
    assert found == [("items", 1), ("items", 3)]
    remove_paths(obj, found)
    assert obj == {"items": [{"name": "a"}, {"name": "c"}]}


def test_pointer_removal_uses_numeric_order_for_list_indices() -> None:
    obj: Obj = {"a": list(range(12))}
    remove_paths(obj, [("a", "9"), ("a", "10"), ("a", "01"), ("a", "-")])
    assert obj == {"a": [0, 1, 2, 3, 4, 5, 6, 7, 8, 11]}


def test_non_path_jq_expression_designates_nothing() -> None:
    assert jq_paths(".items | length", {"items": [1]}) == []
