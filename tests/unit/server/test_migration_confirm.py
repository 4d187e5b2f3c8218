"""`moorage cluster migrate NAME --confirm`: the last applied definition applied again with the ArgoCD
engine switched off (server/migration.py), keeping the files' comments and other lines; a cluster
synced from Git is changed in Git instead."""

from typing import Any

from fastapi.testclient import TestClient

from moorage.server import service
from moorage.server.db import SessionFactory, transaction
from moorage.server.migration import to_native
from moorage.spec.protocol import JobState, ResultMessage
from tests.unit.server.conftest import Clock, FakeBus
from tests.unit.server.test_argocd_migration import ARGO_BUNDLE
from tests.unit.server.test_logs import online

ROOT = """apiVersion: v1
kind: ImportCluster
metadata: {name: c1}
spec:
  # every add-on on Argo CD, for now
  deployment_engine: argo_cd
  stacks:
    - name: s
      addons:
        - include: addons/
"""
ADDON = """# the web front
- name: web
  chart_name: web
  chart_version: "1.0.0"
  settings:
    engine: argo_cd   # moved back after the first try
- name: db
  chart_name: db
  chart_version: "2.0.0"
  settings: {engine: argo_cd, auto_prune: false}
"""
VALUES = "settings:\n  engine: argo_cd  # a chart value, not an add-on setting\n"
SOPS = "password: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nengine: argo_cd\nsops:\n  version: 3.11.0\n"


def test_the_engine_is_switched_where_it_is_set_and_nothing_else_changes() -> None:
    files = {
        "import-cluster.yaml": ROOT,
        "addons/web.yaml": ADDON,
        "values/web.yaml": VALUES,
        "v.enc.yaml": SOPS,
    }
    out, changes = to_native(files, "import-cluster.yaml")
    assert out["import-cluster.yaml"] == ROOT.replace(
        "deployment_engine: argo_cd", "deployment_engine: ankra_native"
    )
    assert "# the web front" in out["addons/web.yaml"]
    assert "engine" not in out["addons/web.yaml"]
    assert "settings: {auto_prune: false}" in out["addons/web.yaml"]
    assert "settings:\n" not in out["addons/web.yaml"].split("- name: db")[0]  # emptied settings go
    assert out["values/web.yaml"] == VALUES  # not an add-on entry
    assert out["v.enc.yaml"] == SOPS  # SOPS files are never rewritten
    assert changes == [
        "addons/web.yaml: add-on web: settings.engine argo_cd removed",
        "addons/web.yaml: add-on db: settings.engine argo_cd removed",
        "import-cluster.yaml: spec.deployment_engine argo_cd → ankra_native",
    ]
    assert to_native(out, "import-cluster.yaml") == (out, [])  # once is enough


def applied_once(client: TestClient, bus: FakeBus, factory: SessionFactory, cluster_id: str) -> None:
    assert client.post("/api/v1/clusters/c1/apply", json=ARGO_BUNDLE).status_code == 202
    job = bus.jobs[-1]
    with transaction(factory) as s:
        result: dict[str, Any] = {"outcomes": {"addon/web": {"status": "applied"}}}
        service.record_result(
            s, ResultMessage(job_id=job.job_id, cluster_id=cluster_id, state=JobState.SUCCESS, result=result)
        )


def test_confirming_applies_the_last_definition_with_the_native_engine(
    client: TestClient, bus: FakeBus, factory: SessionFactory, clock: Clock
) -> None:
    cluster_id = online(client, factory, clock)
    nothing = client.post("/api/v1/clusters/c1/argocd/migration")
    assert nothing.status_code == 409
    assert "no applied definition" in nothing.json()["detail"]
    applied_once(client, bus, factory, cluster_id)

    confirmed = client.post("/api/v1/clusters/c1/argocd/migration")
    assert confirmed.status_code == 202, confirmed.text
    assert confirmed.json()["changes"] == [
        "import-cluster.yaml: spec.deployment_engine argo_cd → ankra_native"
    ]
    sent = bus.jobs[-1].payload["files"]["import-cluster.yaml"]
    assert "deployment_engine: ankra_native" in sent
    assert sent == ARGO_BUNDLE["files"]["import-cluster.yaml"].replace("argo_cd", "ankra_native")


def test_a_cluster_synced_from_git_is_changed_in_git(
    client: TestClient, factory: SessionFactory, clock: Clock
) -> None:
    online(client, factory, clock)
    with transaction(factory) as s:
        from moorage.server.db.models import GitRepository

        cluster = service.get_cluster(s, "c1")
        s.add(
            GitRepository(
                cluster_id=cluster.id,
                url="https://git.example.com/r.git",
                branch="main",
                provider="github",
                path="import-cluster.yaml",
                webhook_secret_sealed="sealed",
                poll_interval_seconds=180,
            )
        )
    refused = client.post("/api/v1/clusters/c1/argocd/migration")
    assert refused.status_code == 409
    assert "Git" in refused.json()["detail"]
    assert "moorage stacks" in refused.json()["detail"]
