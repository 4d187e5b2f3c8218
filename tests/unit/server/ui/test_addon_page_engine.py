"""The add-on page says which engine runs it: an ArgoCD-engine add-on shows its Application and the
Redis caveat instead of a Helm revision."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from moorage.server import addon_state, service
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import AddonObservation, StateReport
from tests.unit.server.conftest import HASHER

PASSWORD = "correct horse battery staple"


def signed_in(app: FastAPI, client: TestClient, role: str = "read") -> TestClient:
    assert (
        client.post("/api/v1/users", json={"username": "ann", "role": role, "password": PASSWORD}).status_code
        == 201
    )
    browser = TestClient(app)
    assert browser.post("/api/v1/session", json={"username": "ann", "password": PASSWORD}).status_code == 200
    return browser


def report(factory: SessionFactory, engine: str) -> None:
    with transaction(factory) as s:
        cluster, _ = service.register_cluster(s, HASHER, "c1")
        web = AddonObservation(
            name="web", namespace="apps", engine=engine, chart="webapp", version="1.0.0", installed=True,
            release_chart="webapp", release_version="1.0.0", revision=3, helm_status="deployed",
            health="Healthy",
        )  # fmt: skip
        addon_state.record_state(
            s,
            StateReport(
                cluster_id=cluster.id, session="s", seq=1, addons=[web], snapshot="x", all_names=["web"]
            ),
        )


def test_an_argo_cd_add_on_names_its_application(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    report(factory, "argo_cd")
    page = signed_in(app, client).get("/clusters/c1/addons/web")
    assert page.status_code == 200
    assert "Application <code>argocd/web</code>" in page.text
    assert "Redis" in page.text
    assert "<dt>Revision</dt>" not in page.text


def test_a_native_add_on_shows_its_helm_revision(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    report(factory, "native")
    page = signed_in(app, client).get("/clusters/c1/addons/web")
    assert "<dt>Revision</dt><dd>3 (deployed)</dd>" in page.text
    assert "argocd/web" not in page.text


def test_settings_count_add_ons_per_engine_and_offer_the_migration_check(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    report(factory, "argo_cd")
    page = signed_in(app, client).get("/clusters/c1/settings")
    assert page.status_code == 200
    assert "1 add-on on Argo CD" in page.text
    assert 'data-action="migration"' in page.text
    assert "Decommission Argo CD" not in page.text  # a reader, and an add-on still on Argo CD
    assert 'data-action="migrate-confirm"' not in page.text  # a reader cannot migrate


def test_a_writer_is_offered_to_confirm_the_migration(
    app: FastAPI, client: TestClient, factory: SessionFactory
) -> None:
    report(factory, "argo_cd")
    page = signed_in(app, client, "write").get("/clusters/c1/settings")
    assert 'data-action="migrate-confirm"' in page.text
    assert 'data-url="/api/v1/clusters/c1/argocd/migration"' in page.text
