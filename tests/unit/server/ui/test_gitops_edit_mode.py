"""The GitOps page says where Stack Builder saves go (the connection's edit mode) and lets writers
switch it (the checkbox PATCHes /api/v1/clusters/{name}/gitops); readers see it, disabled."""

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.unit.server.ui.test_addon_page_engine import signed_in

URL = "https://github.com/acme/platform.git"


def connect(client: TestClient, **body: str) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    assert client.put("/api/v1/clusters/c1/gitops", json={"url": URL, **body}).status_code == 200


def test_a_writer_sees_where_saves_go_and_can_switch(app: FastAPI, client: TestClient) -> None:
    connect(client)
    browser = signed_in(app, client, "write")
    page = browser.get("/clusters/c1/gitops").text
    assert 'id="edit-mode" data-url="/api/v1/clusters/c1/gitops" data-branch="main"  >' in page
    assert "each save is committed and pushed to <code>main</code> and synced" in page
    client.patch("/api/v1/clusters/c1/gitops", json={"edit_mode": "pull_request"})
    page = browser.get("/clusters/c1/gitops").text
    assert 'data-branch="main" checked >' in page
    assert "each save goes to a new branch, with a pull request into <code>main</code>" in page
    assert "nothing syncs until it is merged" in page


def test_a_reader_sees_the_mode_disabled(app: FastAPI, client: TestClient) -> None:
    connect(client, edit_mode="pull_request")
    page = signed_in(app, client, "read").get("/clusters/c1/gitops").text
    assert 'data-branch="main" checked disabled>' in page


def test_an_unconnected_cluster_has_no_edit_mode(app: FastAPI, client: TestClient) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    page = signed_in(app, client, "write").get("/clusters/c1/gitops").text
    assert 'id="edit-mode"' not in page
