"""GET /clusters/{name}/argocd/migration: the preview reads the cluster's Applications through the
agent (every page) and says which can migrate; it changes nothing."""

import asyncio
from typing import Any

from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
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
        assert job.action is JobAction.LIST_RESOURCES
        assert (job.payload["api_version"], job.payload["kind"]) == ("argoproj.io/v1alpha1", "Application")
        offset = job.payload["offset"]
        page = {"items": apps[offset : offset + 2], "total": len(apps), "offset": offset, "limit": 2}

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
    assert (data["eligible"], data["moorage_applications"]) == (2, 3)
    assert "ankra_native" in data["how"]
    assert len(bus.jobs) == 2  # two pages of two
