"""CEL checks (Flux's healthCheckExprs), the order user check > dedicated rule > generic rule, the
definition over the server-wide file, "not covered", and no object making a user check raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.engine.health import Checks, HealthStatus, assess
from moorage.engine.health.custom import ChecksFileError, load_file, not_covered
from moorage.spec.models import HealthCheck
from tests.unit.engine.health.helpers import NOW, ago, cond

H, P, D, U = HealthStatus.HEALTHY, HealthStatus.PROGRESSING, HealthStatus.DEGRADED, HealthStatus.UNKNOWN

# Flux's own example (kustomize-controller docs, "Health check expressions"), for SealedSecret
SEALED = {
    "api_version": "bitnami.com/v1alpha1",
    "kind": "SealedSecret",
    "cel": {
        "failed": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')",
        "current": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')",
    },
}
WIDGET = {
    "group": "moorage.test",
    "kind": "Widget",
    "cel": {
        "inProgress": "has(status.phase) && status.phase == 'Provisioning'",
        "failed": "has(status.phase) && status.phase == 'Failed'",
        "current": "has(status.phase) && status.phase == 'Ready' && self.spec.size > 0",
    },
}


def compiled(*entries: dict[str, Any]) -> Checks:
    return Checks.compile([HealthCheck.model_validate(e) for e in entries])


def sealed(*conditions: dict[str, Any], generation: int = 1, observed: int | None = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "s", "namespace": "apps", "generation": generation, "creationTimestamp": ago(1)},
        "status": status,
    }


def widget(phase: str | None, size: int = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "moorage.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "apps", "creationTimestamp": ago(1)},
        "spec": {"size": size},
        "status": {},
    }
    if phase is not None:
        obj["status"]["phase"] = phase
    return obj


CEL_CASES = [
    ("synced", sealed(cond("Synced", "True")), H, "current: status.conditions"),
    ("not synced", sealed(cond("Synced", "False", "ErrUnseal")), D, "failed: status.conditions"),
    (
        "generation lag first",
        sealed(cond("Synced", "True"), generation=2),
        P,
        "observedGeneration 1 != metadata",
    ),
    (
        "no observedGeneration: exprs decide",
        sealed(cond("Synced", "True"), generation=2, observed=None),
        H,
        "current",
    ),
    ("Synced Unknown: none true", sealed(cond("Synced", "Unknown")), P, "not current yet"),
    ("widget ready", widget("Ready"), H, "current"),
    ("widget ready, self reads spec", widget("Ready", size=0), P, "not current yet"),
    ("widget provisioning", widget("Provisioning"), P, "inProgress: has(status.phase)"),
    ("widget failed", widget("Failed"), D, "failed: has(status.phase)"),
    ("widget no phase", widget(None), P, "not current yet"),
]
CEL = compiled(SEALED, WIDGET)


@pytest.mark.parametrize(("name", "obj", "status", "reason"), CEL_CASES, ids=[c[0] for c in CEL_CASES])
def test_cel_table(name: str, obj: dict[str, Any], status: HealthStatus, reason: str) -> None:
    health = assess(obj, NOW, checks=CEL)
    assert health.status is status, health.reason
    assert reason in health.reason
    assert health.reason.endswith("(CEL check)")


def test_cel_in_progress_comes_before_failed_before_current() -> None:
    everything_true = compiled(
        {
            "group": "moorage.test",
            "kind": "Widget",
            "cel": {"inProgress": "true", "failed": "true", "current": "true"},
        }
    )
    assert assess(widget("Ready"), NOW, checks=everything_true).status is P
    failed_and_current = compiled(
        {"group": "moorage.test", "kind": "Widget", "cel": {"failed": "true", "current": "true"}}
    )
    assert assess(widget("Ready"), NOW, checks=failed_and_current).status is D


@pytest.mark.parametrize(
    ("cel", "error"),
    [
        ({"current": "status.phase == 'Ready'"}, "no such key: phase"),
        ({"current": "missing.field"}, "Undefined variable or function: 'missing'"),
        ({"current": "status"}, "'current' must give a boolean, it gave dict"),
        ({"current": "1 / 0 == 1"}, "division by zero"),
    ],
)
def test_cel_runtime_errors_are_unknown(cel: dict[str, str], error: str) -> None:
    checks = compiled({"group": "moorage.test", "kind": "Widget", "cel": cel})
    health = assess(widget(None), NOW, checks=checks)
    assert health.status is U
    assert health.reason.startswith("the definition's CEL check for moorage.test/Widget failed: ")
    assert error in health.reason


def test_cel_compiles_once_per_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    import cel

    calls: list[str] = []
    real = cel.compile

    def counting(expression: str) -> Any:
        calls.append(expression)
        return real(expression)

    monkeypatch.setattr(cel, "compile", counting)
    checks = compiled(WIDGET)
    compiled_count = len(calls)
    for _ in range(50):
        assess(widget("Ready"), NOW, checks=checks)
    assert len(calls) == compiled_count


def test_cel_progressing_turns_degraded_after_the_deadline() -> None:
    obj = widget("Provisioning")
    obj["metadata"]["creationTimestamp"] = ago(45)
    assert assess(obj, NOW, checks=CEL).status is D


# --------------------------------------------------------------------------- precedence

CERT_READY = {
    "apiVersion": "cert-manager.io/v1",
    "kind": "Certificate",
    "metadata": {"name": "tls", "namespace": "apps", "generation": 1, "creationTimestamp": ago(5)},
    "status": {"conditions": [cond("Ready", "True", "Ready", "Certificate is up to date")]},
}


def test_user_check_beats_the_dedicated_rule() -> None:
    assert assess(CERT_READY, NOW).status is H  # cert-manager's dedicated rule
    checks = compiled(
        {"argocd_key": "cert-manager.io_Certificate", "lua": 'return {status = "Degraded", message = "ours"}'}
    )
    health = assess(CERT_READY, NOW, checks=checks)
    assert (health.status, health.reason) == (D, "ours (Lua check)")


def test_user_check_beats_the_generic_rule_and_only_for_its_kind() -> None:
    ready = {**widget(None), "status": {"conditions": [cond("Ready", "True")]}}
    assert assess(ready, NOW).status is H  # generic (kstatus) rule
    checks = compiled({"group": "moorage.test", "kind": "Widget", "cel": {"current": "false"}})
    assert assess(ready, NOW, checks=checks).status is P
    other = {**ready, "kind": "Gadget"}
    assert assess(other, NOW, checks=checks).status is H  # no check for Gadget: generic


def test_core_group_check_and_deletion_first() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"type": "ClusterIP"},
    }
    checks = compiled({"argocd_key": "Service", "lua": 'return {status = "Suspended", message = "m"}'})
    assert assess(service, NOW, checks=checks).status is HealthStatus.SUSPENDED
    deleting = {**service, "metadata": {"name": "s", "deletionTimestamp": ago(1)}}
    assert assess(deleting, NOW, checks=checks).status is P  # being deleted, as before any rule


def test_definition_overrides_the_server_wide_file(tmp_path: Path) -> None:
    file = tmp_path / "checks.yaml"
    file.write_text(
        "- {group: moorage.test, kind: Widget, cel: {current: 'false'}}\n"
        "- {group: moorage.test, kind: Gadget, cel: {current: 'true'}}\n"
    )
    server = load_file(file)
    definition = compiled({"group": "moorage.test", "kind": "Widget", "cel": {"current": "true"}})
    both = definition.over(server)
    assert assess(widget(None), NOW, checks=both).status is H
    gadget = {**widget(None), "kind": "Gadget"}
    health = assess(gadget, NOW, checks=both)
    assert health.status is H
    assert assess(widget(None), NOW, checks=server).status is P
    gadget_check = both.for_kind("moorage.test", "Gadget")
    assert gadget_check is not None
    assert str(file) in gadget_check.label


def test_an_invalid_server_wide_file_names_file_and_line(tmp_path: Path) -> None:
    file = tmp_path / "checks.yaml"
    file.write_text("- argocd_key: moorage.test_Widget\n  lua: |\n    local x = \n    return {}\n")
    with pytest.raises(ChecksFileError) as caught:
        load_file(file)
    assert f"{file}:4:" in str(caught.value)
    assert "does not compile" in str(caught.value)


# --------------------------------------------------------------------------- not covered


def test_not_covered_lists_kinds_nothing_judges() -> None:
    bare = {"apiVersion": "moorage.test/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "a"}}
    with_conditions = {**bare, "kind": "Gadget", "status": {"conditions": [cond("Ready", "True")]}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    found = not_covered([bare, with_conditions, config, CERT_READY, None], NOW)
    assert [(n.display, n.objects) for n in found] == [("moorage.test/Widget", ("a/w",))]
    assert found[0].answer.status is H
    assert "judged by the generic rule: Healthy" in str(found[0])
    checks = compiled({"group": "moorage.test", "kind": "Widget", "cel": {"current": "true"}})
    assert not_covered([bare], NOW, checks) == []


# --------------------------------------------------------------------------- no object makes a check raise

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=40,
)
LUA_ANY = compiled(
    {
        "group": "moorage.test",
        "kind": "Widget",
        "lua": """
        local hs = {status = "Progressing", message = ""}
        if obj.status ~= nil and type(obj.status) == "table" then
          for k, v in pairs(obj.status) do
            hs.message = hs.message .. tostring(k) .. "=" .. tostring(v) .. ";"
          end
          if obj.status.phase == "Ready" then hs.status = "Healthy" end
          if obj.status.conditions ~= nil then
            for _, c in ipairs(obj.status.conditions) do
              if c.type == "Failed" then hs.status = "Degraded" end
            end
          end
        end
        return hs
        """,
    },
    {**WIDGET, "kind": "Gadget"},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HypothesisHealthCheck.too_slow])
@given(status=JSON, spec=JSON, metadata=JSON, kind=st.sampled_from(["Widget", "Gadget"]))
def test_no_object_makes_a_user_check_raise(status: Any, spec: Any, metadata: Any, kind: str) -> None:
    obj = {
        "apiVersion": "moorage.test/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
        "status": status,
    }
    health = assess(obj, NOW, checks=LUA_ANY)
    assert isinstance(health.status, HealthStatus)
    assert isinstance(health.reason, str)
