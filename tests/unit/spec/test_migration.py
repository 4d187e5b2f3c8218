"""Which Argo CD Applications the migration preview calls eligible, and why the others are not."""

from typing import Any

import pytest

from moorage.spec.migration import eligibility

OURS = {"app.kubernetes.io/managed-by": "moorage", "moorage.dev/addon": "web"}
CHART = {"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0"}


def app(labels: dict[str, str] | None = None, phase: str = "", **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "sync": {"status": "Synced"},
        "health": {"status": "Healthy"},
        "resources": [{"kind": "Deployment"}, {"kind": "Service"}, {"kind": "Deployment"}],
    }
    if phase:
        status["operationState"] = {"phase": phase}
    return {"metadata": {"name": "web", "labels": labels or {}}, "spec": spec, "status": status}


@pytest.mark.parametrize(
    ("application", "eligible", "why"),
    [
        (app(OURS, source=CHART), True, ""),
        (app(OURS, phase="Succeeded", source=CHART), True, ""),
        (app(OURS, phase="Running", source=CHART), False, "sync is in flight"),
        (
            app(OURS, sources=[CHART, {"repoURL": "https://git.example.com/v.git", "ref": "values"}]),
            False,
            "multi-source",
        ),
        (
            app(OURS, source={"repoURL": "https://git.example.com/x.git", "path": "k8s"}),
            False,
            "not a Helm chart",
        ),
        (app({"app.kubernetes.io/managed-by": "Helm"}, source=CHART), False, "not made by Moorage"),
        (app({}, source=CHART), False, "not made by Moorage"),
    ],
)
def test_eligibility(application: dict[str, Any], eligible: bool, why: str) -> None:
    found = eligibility(application)
    assert found.eligible is eligible
    if why:
        assert why in " ".join(found.reasons)
    else:
        assert found.reasons == []
    assert found.kinds == ["Deployment", "Service"]
    assert (found.sync, found.health) == ("Synced", "Healthy")


def test_only_moorage_applications_name_their_add_on() -> None:
    assert eligibility(app(OURS, source=CHART)).addon == "web"
    assert eligibility(app({}, source=CHART)).addon is None


def test_kinds_no_health_rule_judges_are_flagged_without_blocking() -> None:
    application = app(OURS, source=CHART)
    application["status"]["resources"] = [
        {"group": "apps", "kind": "Deployment"},
        {"group": "example.com", "kind": "Widget"},
        {"group": "", "kind": "Service"},
        {"group": "example.com", "kind": "Widget"},
    ]
    ruled = {("apps", "Deployment"), ("", "Service")}
    found = eligibility(application, lambda group, kind: (group, kind) in ruled)
    assert found.no_health_rule == ["example.com/Widget"]
    assert found.eligible is True  # a flag, not a reason
    assert eligibility(application).no_health_rule == []  # not asked
    everything = eligibility(application, lambda _group, _kind: False).no_health_rule
    assert everything == ["Service", "apps/Deployment", "example.com/Widget"]
