"""GET /clusters/{name}/argocd/migration: the preview reads the cluster's Applications with their
eligibility through the agent (every page) and says which can migrate; it changes nothing."""

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.migration import eligibility
from moorage.spec.protocol import JobAction, JobMessage, JobState, ResultMessage
from tests.unit.server.conftest import Clock, FakeBus
from tests.unit.server.test_logs import online


def application(name: str, ours: bool, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "moorage", "moorage.dev/addon": name} if ours else {}
    spec = {"source": {"repoURL": "https://charts.example.com", "chart": name, "targetRevision": "1"}}
    return {"metadata": {"name": name, "labels": labels}, "spec": {**spec, **extra}, "status": {}}


def test_the_preview_lists_every_application_across_pages(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock
) -> None:
    cluster_id = online(client, factory, clock)
    apps = [application(f"web{i}", ours=True) for i in range(3)] + [application("theirs", ours=False)]
    apps[1]["spec"]["sources"] = [{}, {}]
    waiters = client.app.state.moorage.job_waiters  # type: ignore[attr-defined]

    async def answer(job: JobMessage) -> None:
        bus.jobs.append(job)
        assert job.action is JobAction.ARGOCD_MIGRATION
        offset = job.payload["offset"]
        found = [eligibility(a).to_dict() for a in apps[offset : offset + 2]]
        page = {"applications": found, "total": len(apps), "offset": offset, "limit": 2}

        async def later() -> None:
            await asyncio.sleep(0.01)
            with transaction(factory) as s:
                service.record_result(
                    s,
                    ResultMessage(
                        job_id=job.job_id, cluster_id=cluster_id, state=JobState.SUCCESS, result=page
                    ),
                )
            waiters.done(job.job_id)

        asyncio.get_running_loop().create_task(later())

    bus.publish_job = answer  # type: ignore[method-assign]
    response = client.get("/api/v1/clusters/c1/argocd/migration")
    assert response.status_code == 200, response.text
    data = response.json()
    assert [a["application"] for a in data["applications"]] == ["web0", "web1", "web2", "theirs"]
    assert [a["eligible"] for a in data["applications"]] == [True, False, True, False]
    assert (data["eligible"], data["moorage_applications"], data["truncated"]) == (2, 3, False)
    assert "ankra_native" in data["how"]
    assert len(bus.jobs) == 2  # two pages of two


def observed(factory: SessionFactory, cluster_id: str, name: str, engine: str) -> None:
    from moorage.server.db.models import AddonState

    with transaction(factory) as s:
        s.add(
            AddonState(
                cluster_id=cluster_id,
                name=name,
                namespace="web",
                state="Synced",
                reason="",
                observation={"name": name, "namespace": "web", "engine": engine},
            )
        )


ARGO_BUNDLE: dict[str, Any] = {
    "root": "import-cluster.yaml",
    "files": {
        "import-cluster.yaml": "apiVersion: v1\nkind: ImportCluster\nmetadata: {name: c1}\nspec:\n"
        "  deployment_engine: argo_cd\n  helm_registries: [{name: r, url: 'https://charts.example.com'}]\n"
        "  stacks:\n    - name: s\n      addons:\n"
        "        - {name: web, chart_name: web, chart_version: '1.0.0', registry_name: r, namespace: web}\n"
    },
}


def test_decommission_is_refused_while_an_add_on_runs_on_argo_cd_then_one_way(
    client: TestClient, factory: SessionFactory, clock: Clock
) -> None:
    cluster_id = online(client, factory, clock)
    observed(factory, cluster_id, "web", "argo_cd")
    observed(factory, cluster_id, "db", "native")
    refused = client.post("/api/v1/clusters/c1/argocd/decommission")
    assert refused.status_code == 409
    assert "web" in refused.json()["detail"]
    assert "ankra_native" in refused.json()["detail"]
    assert "db" not in refused.json()["detail"]

    with transaction(factory) as s:
        from moorage.server.db.models import AddonState

        for row in s.query(AddonState).filter_by(cluster_id=cluster_id, name="web"):
            row.observation = {**row.observation, "engine": "native"}  # migrated
    done = client.post("/api/v1/clusters/c1/argocd/decommission")
    assert done.status_code == 200, done.text
    assert done.json()["decommissioned_at"]
    again = client.post("/api/v1/clusters/c1/argocd/decommission")
    assert again.json()["decommissioned_at"] == done.json()["decommissioned_at"]  # idempotent

    applied = client.post("/api/v1/clusters/c1/apply", json=ARGO_BUNDLE)
    assert applied.status_code == 422, applied.text
    (error,) = [e for e in applied.json()["errors"] if e["code"] == "argocd-decommissioned"]
    assert "decommissioned" in error["message"]
    assert "web" in error["message"]
    native = {
        **ARGO_BUNDLE,
        "files": {k: v.replace("argo_cd", "ankra_native") for k, v in ARGO_BUNDLE["files"].items()},
    }
    assert client.post("/api/v1/clusters/c1/apply", json=native).status_code == 202


def test_decommission_needs_admin_scope(anon: TestClient, client: TestClient) -> None:
    client.post("/api/v1/clusters", json={"name": "c1"})
    writer = client.post("/api/v1/tokens", json={"name": "w", "scopes": ["write"]}).json()["token"]
    r = anon.post("/api/v1/clusters/c1/argocd/decommission", headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 403
