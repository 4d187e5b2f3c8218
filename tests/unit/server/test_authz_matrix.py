"""Who may call what: every route of the OpenAPI document by every kind of caller, with the answer
the route's rule says (issue 18).

`ROUTES` lists EVERY route of the API with the rule it must follow; a route in the OpenAPI document
that is missing here (or a stale entry) fails the suite, so a new route cannot ship without a
decision. The rules:

- read / write / admin: an API token or a signed-in user granting that scope (admin ⊇ write ⊇
  read); no credential, an unknown, revoked or agent token → 401; too small a scope → 403; with
  the session cookie, an unsafe method without the CSRF header → 403.
- agent: only an agent token (/api/v1/agent); everything else → 401.
- session: only a signed-in user's cookie (any role, CSRF on unsafe methods); tokens → 401.
- public: the answer does not depend on the credential at all (webhooks authenticate by
  signature, sign-in and sign-out by their body and cookie, probes and metrics by nothing).

"Allowed" means the request got past authentication and authorization: anything but 401 and 403
(path parameters are placeholders, so 404 or a 422 for the empty body are expected)."""

import asyncio
import re
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from moorage.server import sessions
from moorage.server.sessions import Scrypt
from moorage.server.tokens import Scope, granted

READ, WRITE, ADMIN = Scope.READ.value, Scope.WRITE.value, Scope.ADMIN.value
AGENT, SESSION, PUBLIC = "agent", "session", "public"
KUBE = "kube"  # a kubectl token only (every other credential: 401)
KUBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

ROUTES: dict[tuple[str, str], str] = {
    # API tokens
    ("GET", "/api/v1/tokens"): ADMIN,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMIN,
    # clusters and their agent tokens
    ("POST", "/api/v1/clusters"): WRITE,
    ("GET", "/api/v1/clusters"): READ,
    ("GET", "/api/v1/clusters/{name}"): READ,
    ("PATCH", "/api/v1/clusters/{name}"): WRITE,
    ("DELETE", "/api/v1/clusters/{name}"): WRITE,
    ("POST", "/api/v1/clusters/{name}/agent-token/revoke"): WRITE,
    ("POST", "/api/v1/clusters/{name}/agent-token/rotate"): WRITE,
    ("POST", "/api/v1/clusters/{name}/agent/upgrade"): WRITE,
    # add-ons
    ("GET", "/api/v1/clusters/{name}/addons"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/drift"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/transitions"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/values"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/manifest"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/history"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/events"): READ,
    ("GET", "/api/v1/clusters/{name}/addons/{addon}/map"): READ,
    ("GET", "/api/v1/clusters/{name}/releases"): READ,
    ("GET", "/api/v1/clusters/{name}/argocd/migration"): READ,
    ("POST", "/api/v1/clusters/{name}/argocd/migration"): WRITE,
    ("POST", "/api/v1/clusters/{name}/argocd/decommission"): ADMIN,
    ("POST", "/api/v1/clusters/{name}/addons/{addon}/rollback"): WRITE,
    ("POST", "/api/v1/clusters/{name}/addons/{addon}/resume"): WRITE,
    ("POST", "/api/v1/clusters/{name}/addons/{addon}/sync"): WRITE,
    ("GET", "/api/v1/events"): READ,
    # operations
    ("POST", "/api/v1/clusters/{name}/apply"): WRITE,
    ("GET", "/api/v1/clusters/{name}/operations"): READ,
    ("GET", "/api/v1/operations/{operation_id}"): READ,
    ("POST", "/api/v1/operations/{operation_id}/cancel"): WRITE,
    # the agent
    ("POST", "/api/v1/agent/register"): AGENT,
    # resources and logs, read through the agent
    ("GET", "/api/v1/clusters/{name}/kinds"): READ,
    ("GET", "/api/v1/clusters/{name}/resources"): READ,
    ("GET", "/api/v1/clusters/{name}/resources/{kind}/{object_name}"): READ,
    ("GET", "/api/v1/clusters/{name}/resources/{kind}/{object_name}/events"): READ,
    ("GET", "/api/v1/clusters/{name}/logs/{namespace}/{pod}"): READ,
    # Git credentials (names and user names only ever come out)
    ("GET", "/api/v1/credentials"): READ,
    ("POST", "/api/v1/credentials"): WRITE,
    ("PUT", "/api/v1/credentials/{name}"): WRITE,
    ("DELETE", "/api/v1/credentials/{name}"): WRITE,
    ("POST", "/api/v1/credentials/{name}/hosts"): ADMIN,  # the credential will be sent there
    # the chart catalog of the global registries
    ("GET", "/api/v1/charts"): READ,
    ("GET", "/api/v1/fleet/rollout"): READ,
    ("GET", "/api/v1/charts/{registry}/{chart}"): READ,
    ("GET", "/api/v1/charts/{registry}/{chart}/{version}"): READ,
    # GitOps
    ("GET", "/api/v1/clusters/{name}/gitops/status"): READ,
    ("PUT", "/api/v1/clusters/{name}/gitops"): WRITE,
    ("PATCH", "/api/v1/clusters/{name}/gitops"): WRITE,
    ("DELETE", "/api/v1/clusters/{name}/gitops"): WRITE,
    ("POST", "/api/v1/clusters/{name}/gitops/webhook-secret/rotate"): WRITE,
    ("POST", "/api/v1/clusters/{name}/gitops/sync"): WRITE,
    ("GET", "/api/v1/clusters/{name}/gitops/history"): READ,
    ("GET", "/api/v1/clusters/{name}/gitops/history/{sync_id}"): READ,
    ("POST", "/api/v1/webhooks/{provider}"): PUBLIC,
    # the Stack Builder: edits become commits on the tracked branch
    ("GET", "/api/v1/clusters/{name}/stacks"): READ,
    ("POST", "/api/v1/clusters/{name}/stacks/edits"): WRITE,
    ("POST", "/api/v1/clusters/{name}/stacks/{stack}/copy"): WRITE,
    # the web UI's session and users
    ("GET", "/api/v1/session"): SESSION,
    ("POST", "/api/v1/session"): PUBLIC,
    ("DELETE", "/api/v1/session"): PUBLIC,
    ("POST", "/api/v1/session/password"): SESSION,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("PATCH", "/api/v1/users/{username}"): ADMIN,
    ("DELETE", "/api/v1/users/{username}"): ADMIN,
    ("POST", "/api/v1/users/{username}/password"): ADMIN,
    # kubectl through the agent: only kubectl tokens (made by POST /kube-tokens) reach the proxy
    **{(m, "/api/v1/clusters/{name}/kube/{path}"): KUBE for m in KUBE_METHODS},
    **{
        (m, "/api/v1/clusters/{name}/services/{namespace}/{service_port}/proxy/{path}"): READ
        for m in KUBE_METHODS
    },
    ("POST", "/api/v1/kube-tokens"): READ,
    ("GET", "/api/v1/kube-tokens"): READ,
    ("DELETE", "/api/v1/kube-tokens/{token_id}"): READ,
    ("GET", "/api/v1/audit"): ADMIN,
    # probes and Prometheus
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
}

# answered as server-sent events that never end while the client listens: the status is read from
# the start of the response and the client then goes away
STREAMS = {("GET", "/api/v1/events")}
# signs the session out: each run gets sessions of its own
ENDS_SESSION = {("DELETE", "/api/v1/session")}

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PASSWORD = "a long enough password 1234"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "SCRYPT", Scrypt(log_n=4, r=8, p=1))


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    token_scope: str | None = None  # an API token with this scope
    agent: bool = False
    kube: bool = False  # a kubectl token
    role: str | None = None  # a signed-in user with this role
    csrf: bool = True


def _token(client: TestClient, scope: str) -> str:
    r = client.post("/api/v1/tokens", json={"name": f"matrix-{scope}", "scopes": [scope]})
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


def _signed_in(app: FastAPI, username: str) -> tuple[str, str]:
    """A new session of `username` (its own client, so no other session is replaced): cookie, CSRF."""
    r = TestClient(app).post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.cookies[sessions.COOKIE_NAME], r.json()["csrf_token"]


def _user(app: FastAPI, role: str, *, csrf: bool = True, name: str | None = None) -> Caller:
    cookie, token = _signed_in(app, f"matrix-{role}")
    headers = {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}
    if csrf:
        headers[sessions.CSRF_HEADER] = token
    return Caller(name or f"user-{role}", headers, role=role, csrf=csrf)


@pytest.fixture
def callers(app: FastAPI, client: TestClient) -> Callable[[], list[Caller]]:
    """Every kind of caller; called again for a route that ends sessions, to get fresh ones."""
    bearer = {scope: _token(client, scope) for scope in (READ, WRITE, ADMIN)}
    revoked = client.post("/api/v1/tokens", json={"name": "matrix-revoked", "scopes": [ADMIN]}).json()
    assert client.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 200
    agent = client.post("/api/v1/clusters", json={"name": "matrix-agent"}).json()["agent_token"]
    made = client.post("/api/v1/kube-tokens", json={"cluster": "matrix-agent"})
    assert made.status_code == 201, made.text
    kube = made.json()["token"]
    for role in (READ, WRITE):
        body = {"username": f"matrix-{role}", "role": role, "password": PASSWORD}
        assert client.post("/api/v1/users", json=body).status_code == 201

    def make() -> list[Caller]:
        return [
            Caller("nobody", {}),
            Caller("wrong-token", {"Authorization": "Bearer mrg_not-a-token-of-this-server-0123456789"}),
            Caller("revoked-token", {"Authorization": f"Bearer {revoked['token']}"}),
            *(
                Caller(f"{s}-token", {"Authorization": f"Bearer {t}"}, token_scope=s)
                for s, t in bearer.items()
            ),
            Caller("agent-token", {"Authorization": f"Bearer {agent}"}, agent=True),
            Caller("kube-token", {"Authorization": f"Bearer {kube}"}, kube=True),
            _user(app, READ),
            _user(app, WRITE),
            _user(app, WRITE, csrf=False, name="user-write-without-csrf"),
        ]

    return make


def expected(rule: str, method: str, caller: Caller) -> str:
    """'allowed', '401' or '403' for a caller of a route with `rule` (public: 'same')."""
    if rule == PUBLIC:
        return "same"
    if rule == AGENT:
        return "allowed" if caller.agent else "401"
    if rule == KUBE:
        return "allowed" if caller.kube else "401"
    if rule == SESSION:
        if caller.role is None:
            return "401"
        return "allowed" if caller.csrf or method in SAFE_METHODS else "403"
    scope = Scope(rule)
    if caller.token_scope is not None:
        return "allowed" if granted([caller.token_scope], scope) else "403"
    if caller.role is not None:
        if not caller.csrf and method not in SAFE_METHODS:
            return "403"
        return "allowed" if granted([caller.role], scope) else "403"
    return "401"


# a real provider, so that a delivery reaches the webhook's own checks (and is refused by them alike)
CONCRETE = {
    "/api/v1/webhooks/{provider}": "/api/v1/webhooks/github",
    # the cluster the kubectl token is bound to (any other cluster: 401 for it too)
    "/api/v1/clusters/{name}/kube/{path}": "/api/v1/clusters/matrix-agent/kube/version",
}


def _concrete(path: str) -> str:
    return CONCRETE.get(path) or re.sub(r"\{[^}]+\}", "placeholder", path)


async def _stream_status(app: FastAPI, method: str, path: str, headers: dict[str, str]) -> int:
    """The status of a streaming response: the client goes away once the response has started."""
    started = asyncio.Event()
    status: list[int] = []
    pending = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            started.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    return status[0]


def _call(app: FastAPI, client: TestClient, method: str, path: str, caller: Caller) -> int:
    url = _concrete(path)
    if (method, path) in STREAMS:
        return asyncio.run(_stream_status(app, method, url, caller.headers))
    body: dict[str, Any] | None = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, url, headers=caller.headers, json=body).status_code


def _documented(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() not in ("HEAD", "OPTIONS")
    }


def test_every_route_of_the_openapi_document_has_a_rule(app: FastAPI) -> None:
    documented = _documented(app)
    missing = sorted(documented - ROUTES.keys())
    stale = sorted(ROUTES.keys() - documented)
    assert not missing, f"routes without a rule in ROUTES (decide who may call them): {missing}"
    assert not stale, f"ROUTES names routes the API no longer has: {stale}"


def _matrix(app: FastAPI, callers: Callable[[], list[Caller]]) -> Iterator[tuple[str, str, str, str, int]]:
    client = TestClient(app)  # no default credentials: each caller brings its own
    everyone = callers()
    for (method, path), rule in sorted(ROUTES.items()):
        for caller in callers() if (method, path) in ENDS_SESSION else everyone:
            yield method, path, rule, caller.name, _call(app, client, method, path, caller)
        if (method, path) in ENDS_SESSION:
            everyone = callers()


def test_every_route_answers_every_caller_as_its_rule_says(
    app: FastAPI, callers: Callable[[], list[Caller]]
) -> None:
    by_name: dict[str, Caller] = {}
    answers: dict[tuple[str, str], dict[str, int]] = {}
    for caller in callers():
        by_name[caller.name] = caller
    for method, path, _rule, name, status in _matrix(app, callers):
        answers.setdefault((method, path), {})[name] = status

    wrong: list[str] = []
    for (method, path), statuses in sorted(answers.items()):
        rule = ROUTES[(method, path)]
        for name, status in statuses.items():
            want = expected(rule, method, by_name[name])
            if want == "same":
                ok = status == statuses["nobody"]
            elif want == "allowed":
                ok = status not in (401, 403)
            else:
                ok = str(status) == want
            if not ok:
                wrong.append(f"{method} {path} ({rule}) as {name}: {status}, expected {want}")
    assert not wrong, "\n".join(wrong)
    # the matrix really ran: every route, every caller
    assert len(answers) == len(ROUTES)
    assert all(len(statuses) == len(by_name) for statuses in answers.values())


def test_public_routes_refuse_nobody_by_authentication(app: FastAPI) -> None:
    """Webhooks refuse unsigned deliveries by their signature check (test_gitops_api.py); with a
    placeholder provider, and for the other public routes, nobody is refused as such."""
    anon = TestClient(app)
    for method, path in sorted(k for k, rule in ROUTES.items() if rule == PUBLIC):
        status = _call(app, anon, method, path, Caller("nobody", {}))
        assert status not in (401, 403), (method, path, status)
