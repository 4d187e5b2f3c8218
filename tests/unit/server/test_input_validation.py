"""Names, free text and query parameters that the API refuses with a clear 422 (issue 18, item 11)."""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from moorage.server import safetext

UNSAFE = {
    "NUL": "a\x00b",
    "CR": "a\rb",
    "LF": "a\nb",
    "ESC": "a\x1b[31mb",
    "right-to-left override": "invoice\u202etxt.exe",
    "first strong isolate": "a\u2068b",
    "line separator": "a\u2028b",
}


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
def test_a_token_name_with_control_or_bidi_characters_is_refused(client: TestClient, text: str) -> None:
    r = client.post("/api/v1/tokens", json={"name": text, "scopes": ["read"]})
    assert r.status_code == 422, r.text
    assert "the token name must not contain control characters" in r.json()["detail"]
    assert "U+" in r.json()["detail"]
    assert len(client.get("/api/v1/tokens").json()) == 1  # the bootstrap token only


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
def test_a_cluster_description_with_control_or_bidi_characters_is_refused(
    client: TestClient, text: str
) -> None:
    r = client.post("/api/v1/clusters", json={"name": "c1", "description": text})
    assert r.status_code == 422, r.text
    assert "the description must not contain control characters" in r.json()["detail"]
    assert client.get("/api/v1/clusters").json()["pagination"]["total_count"] == 0


@pytest.mark.parametrize("name", ["c1\n", "c1\r\n", "c1\x00", "\u202ec1"])
def test_a_cluster_name_with_a_line_break_or_control_character_is_refused(
    client: TestClient, name: str
) -> None:
    r = client.post("/api/v1/clusters", json={"name": name})
    assert r.status_code == 422, r.text
    assert "invalid cluster name" in r.json()["detail"]


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
def test_a_credential_username_with_control_or_bidi_characters_is_refused(
    client: TestClient, text: str
) -> None:
    body = {
        "name": "git",
        "kind": "token",
        "secret": "ghp_0123456789abcdef",
        "hosts": ["github.com"],
        "username": text,
    }
    r = client.post("/api/v1/credentials", json=body)
    assert r.status_code == 422, r.text
    assert "the user name must not contain control characters" in r.json()["detail"]
    assert client.post("/api/v1/credentials", json=body | {"username": "bot"}).status_code == 201
    r = client.put("/api/v1/credentials/git", json={"secret": "ghp_0123456789abcdef", "username": text})
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/credentials").json()[0]["username"] == "bot"


@pytest.mark.parametrize("text", UNSAFE.values(), ids=UNSAFE.keys())
def test_a_user_name_with_control_or_bidi_characters_is_refused(client: TestClient, text: str) -> None:
    r = client.post("/api/v1/users", json={"username": text, "role": "read", "password": "x" * 20})
    assert r.status_code == 422, r.text
    assert "invalid username" in r.json()["detail"]


def test_ordinary_text_is_accepted() -> None:
    for text in ("ci pipeline", "Prod — eu-west (München)", "emoji 🚢", "日本語"):
        assert safetext.problem(text, "the name") is None


def test_an_api_token_with_the_agent_scope_is_refused(client: TestClient) -> None:
    for scopes in (["agent"], ["read", "agent"]):
        r = client.post("/api/v1/tokens", json={"name": "ci", "scopes": scopes})
        assert r.status_code == 422, r.text
        assert "cannot have the scope 'agent'" in r.json()["detail"]
        assert "moorage cluster register" in r.json()["detail"]
    assert len(client.get("/api/v1/tokens").json()) == 1


def _routes_with_wait(app: FastAPI) -> list[tuple[str, str]]:
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if any(p["name"] == "wait" and p["in"] == "query" for p in operation.get("parameters", [])):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "placeholder", path)))
    return found


def test_every_route_with_wait_refuses_nan_and_infinity(app: FastAPI, client: TestClient) -> None:
    routes = _routes_with_wait(app)
    assert len(routes) >= 5, routes  # apply, gitops sync, add-on rollback, resume, sync
    for method, path in routes:
        for value in ("nan", "NaN", "inf", "-inf", "infinity"):
            r = client.request(method, path, params={"wait": value}, json={})
            assert r.status_code == 422, (method, path, value, r.text)
            errors: list[dict[str, Any]] = r.json()["errors"]
            assert {
                "loc": "query.wait",
                "msg": "Input should be a finite number",
                "type": "finite_number",
            } in (errors), (method, path, value, errors)
        r = client.request(method, path, params={"wait": "601"}, json={})
        assert any(e["loc"] == "query.wait" and "600" in e["msg"] for e in r.json()["errors"]), r.text
