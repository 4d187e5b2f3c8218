"""Which Applications can be migrated to the native engine, what they track, and that Argo CD's
objects belong to their Application (adopted only when migrating that very Application)."""

from typing import Any

import pytest

from moorage.engine.migrate import ineligible, tracked
from moorage.engine.ownership import ARGOCD_TRACKING, owner_of


def app(**spec: Any) -> dict[str, Any]:
    return {"spec": spec}


@pytest.mark.parametrize(
    ("application", "why"),
    [
        (
            app(source={"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0"}),
            None,
        ),
        (app(sources=[{"repoURL": "a", "chart": "x"}, {"repoURL": "b", "path": "values"}]), "multi-source"),
        (app(source={"repoURL": "https://git.example.com/x.git", "path": "manifests"}), "not a Helm chart"),
        (app(), "not a Helm chart"),
    ],
)
def test_ineligible(application: dict[str, Any], why: str | None) -> None:
    found = ineligible(application)
    assert (found is None) if why is None else (found is not None and why in found)


def test_tracked_objects_carry_their_api_version() -> None:
    status = {
        "resources": [
            {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "web", "name": "w"},
            {"version": "v1", "kind": "Service", "namespace": "web", "name": "w"},
            {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole", "name": "r"},
        ]
    }
    assert tracked({"status": status}) == [
        ("apps/v1", "Deployment", "web", "w"),
        ("v1", "Service", "web", "w"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "", "r"),
    ]


def test_objects_tracked_by_argo_cd_belong_to_their_application() -> None:
    live = {"metadata": {"annotations": {ARGOCD_TRACKING: "payments:apps/Deployment:pay/api"}}}
    assert owner_of(live, "api", ["pay"]) == ("Argo CD Application payments", False)
    assert owner_of(live, "api", ["pay"], migrating_from="payments") == ("Argo CD Application payments", True)
    assert owner_of(live, "api", ["pay"], migrating_from="other") == ("Argo CD Application payments", False)
    # once Helm's annotations are there, Helm's ownership is what counts
    helm = {
        "metadata": {
            "annotations": {
                **live["metadata"]["annotations"],
                "meta.helm.sh/release-name": "api",
                "meta.helm.sh/release-namespace": "pay",
            }
        }
    }
    assert owner_of(helm, "api", ["pay"]) == ("this add-on's release in pay", True)
