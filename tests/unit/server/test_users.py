"""Users of the web UI, sign-in sessions and CSRF: moorage.server.sessions, api/session.py, api/users.py
and the cookie path of auth.require."""

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import Response  # what fastapi.testclient answers with

from moorage.server import sessions
from moorage.server.app import create_app
from moorage.server.db import SessionFactory
from moorage.server.sessions import Scrypt
from moorage.server.settings import ServerSettings
from tests.unit.server.conftest import ADMIN_TOKEN, Clock, FakeBus, example_bundle

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long passphrase 42"
FAST = Scrypt(log_n=4, r=8, p=1)


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real cost (~0.2 s a hash) is checked once, in test_real_parameters."""
    monkeypatch.setattr(sessions, "SCRYPT", FAST)


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password: bytes, *, salt: bytes, n: int, r: int, p: int, **kw: Any) -> bytes:
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, **kw)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def create_user(
    client: TestClient, name: str, role: str = "read", password: str = PASSWORD
) -> dict[str, Any]:
    r = client.post("/api/v1/users", json={"username": name, "role": role, "password": password})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def sign_in(browser: TestClient, name: str, password: str = PASSWORD) -> str:
    """Signs `browser` in (its cookie jar keeps the session); the CSRF token."""
    r = browser.post("/api/v1/session", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    token: str = r.json()["csrf_token"]
    return token


@pytest.fixture
def browser(app: FastAPI) -> TestClient:
    """A browser: no Authorization header, a cookie jar (no `with`: the app's background loops stay off)."""
    return TestClient(app)


@pytest.fixture
def new_browser(app: FastAPI) -> Callable[[], TestClient]:
    return lambda: TestClient(app)


def _set_cookie(r: Response) -> str:
    cookie: str = r.headers.get("set-cookie", "")
    return cookie


def _attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}


# --------------------------------------------------------------------------- passwords


def test_real_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the documented cost, not the fast one
    assert Scrypt(log_n=14, r=8, p=5) == sessions.SCRYPT
    stored = sessions.hash_password(PASSWORD)
    assert stored.startswith("$scrypt$ln=14,r=8,p=5$")
    assert PASSWORD not in stored
    assert sessions.verify_password(stored, PASSWORD)
    assert not sessions.verify_password(stored, PASSWORD + "!")
    assert not sessions.needs_rehash(stored)


def test_hashes_are_salted_and_old_parameters_are_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = sessions.hash_password(PASSWORD), sessions.hash_password(PASSWORD)
    assert first != second
    assert sessions.verify_password(first, PASSWORD)
    assert sessions.verify_password(second, PASSWORD)
    monkeypatch.setattr(sessions, "SCRYPT", Scrypt(log_n=5, r=8, p=1))
    assert sessions.needs_rehash(first)
    assert sessions.verify_password(first, PASSWORD)  # old hashes keep working


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "plain",
        "$scrypt$ln=99,r=8,p=1$c2FsdA$a2V5",
        "$scrypt$ln=20,r=32,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",  # more memory than allowed
        "$scrypt$ln=4,r=8,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5\n",
        "$bcrypt$x$y$z",
    ],
)
def test_unusable_hashes_never_match(stored: str | None, scrypt_calls: list[tuple[int, int, int]]) -> None:
    assert not sessions.verify_password(stored, PASSWORD)
    assert len(scrypt_calls) == 1  # the same work as a real comparison


def test_password_rules_have_clear_messages(client: TestClient) -> None:
    r = client.post("/api/v1/users", json={"username": "alice", "role": "read", "password": "short"})
    assert r.status_code == 422
    assert r.json() == {"detail": "a password needs at least 12 characters"}
    r = client.post("/api/v1/users", json={"username": "alice", "role": "read", "password": " " * 12})
    assert r.json()["detail"] == "a password cannot be only spaces"
    r = client.post("/api/v1/users", json={"username": "Alice", "role": "read", "password": PASSWORD})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("invalid username 'Alice': use 1-64 lowercase letters")
    r = client.post("/api/v1/users", json={"username": "alice\n", "role": "read", "password": PASSWORD})
    assert r.status_code == 422
    r = client.post("/api/v1/users", json={"username": "alice", "role": "root", "password": PASSWORD})
    assert r.status_code == 422
    assert PASSWORD not in r.text


# --------------------------------------------------------------------------- users API


def test_users_api_lifecycle_without_hashes(client: TestClient, browser: TestClient) -> None:
    created = create_user(client, "alice", "write")
    assert set(created) == {
        "id",
        "username",
        "role",
        "created_at",
        "last_login_at",
        "disabled_at",
        "disabled",
    }
    assert client.post(
        "/api/v1/users", json={"username": "alice", "role": "read", "password": PASSWORD}
    ).json() == {"detail": "a user named 'alice' already exists"}
    sign_in(browser, "alice")
    listing = client.get("/api/v1/users")
    assert listing.status_code == 200
    assert [(u["username"], u["role"]) for u in listing.json()] == [("alice", "write")]
    assert listing.json()[0]["last_login_at"] is not None
    assert "scrypt" not in listing.text
    assert "hash" not in listing.text

    changed = client.patch("/api/v1/users/alice", json={"role": "admin"}).json()
    assert changed["role"] == "admin"
    assert browser.get("/api/v1/session").json()["role"] == "admin"  # from the next request on

    deleted = client.delete("/api/v1/users/alice")
    assert deleted.status_code == 200
    assert deleted.json()["username"] == "alice"
    assert client.get("/api/v1/users").json() == []
    assert browser.get("/api/v1/session").status_code == 401  # the session went with the user
    assert client.delete("/api/v1/users/alice").json() == {"detail": "no user named 'alice'"}


def test_users_api_is_admin_only(client: TestClient, browser: TestClient) -> None:
    create_user(client, "walt", "write")
    csrf = sign_in(browser, "walt")
    r = browser.get("/api/v1/users")
    assert r.status_code == 403
    assert r.json() == {"detail": "your role 'write' does not allow this; it needs 'admin'"}
    body = {"username": "eve", "role": "admin", "password": PASSWORD}
    assert browser.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 403


def test_an_admin_session_manages_users(client: TestClient, browser: TestClient) -> None:
    create_user(client, "root", "admin")
    csrf = sign_in(browser, "root")
    body = {"username": "bob", "role": "read", "password": PASSWORD}
    assert browser.post("/api/v1/users", json=body).status_code == 403  # no CSRF token
    assert browser.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


# --------------------------------------------------------------------------- sign-in


def test_sign_in_answers_user_role_and_csrf_token(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice", "write")
    r = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"username", "role", "csrf_token"}
    assert (body["username"], body["role"]) == ("alice", "write")
    assert r.headers["cache-control"] == "no-store"
    secret = browser.cookies[sessions.COOKIE_NAME]
    assert body["csrf_token"] == sessions.csrf_token(secret)
    assert secret not in r.text  # the secret is only in the cookie
    # who am I: the same CSRF token again, e.g. after a page reload
    assert browser.get("/api/v1/session").json() == body


def test_signing_in_again_ends_the_previous_session(
    client: TestClient, browser: TestClient, app: FastAPI
) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    first = browser.cookies[sessions.COOKIE_NAME]
    sign_in(browser, "alice")
    assert browser.cookies[sessions.COOKIE_NAME] != first
    assert browser.get("/api/v1/session").status_code == 200
    assert TestClient(app, cookies={sessions.COOKIE_NAME: first}).get("/api/v1/session").status_code == 401


def test_username_case_does_not_matter(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice")
    assert sign_in(browser, " Alice ")


def test_cookie_flags(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice")
    r = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    cookie = _set_cookie(r)
    assert cookie.startswith(f"{sessions.COOKIE_NAME}=")
    attributes = _attributes(cookie)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert attributes["max-age"] == str(7 * 86400)
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back


def test_cookie_is_secure_under_https(client: TestClient, app: FastAPI) -> None:
    create_user(client, "alice")
    secure = TestClient(app, base_url="https://testserver")
    r = secure.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 200
    assert "secure" in _attributes(_set_cookie(r))
    assert secure.get("/api/v1/session").status_code == 200


def test_cookie_is_secure_when_the_public_url_is_https(
    tmp_path: Path, db_url: str, factory: SessionFactory, bus: FakeBus, clock: Clock
) -> None:
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url=db_url,
        bootstrap_token=ADMIN_TOKEN,
        nats_url="nats://127.0.0.1:4222",
        public_url="https://moorage.example.com",
        session_cookie_samesite="strict",
    )
    app = create_app(settings, factory, bus, clock=clock, expire_jobs=False, run_gitops=False)
    admin = TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    create_user(admin, "alice")
    r = TestClient(app).post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    attributes = _attributes(_set_cookie(r))
    assert "secure" in attributes
    assert attributes["samesite"].lower() == "strict"


def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: TestClient, browser: TestClient, scrypt_calls: list[tuple[int, int, int]]
) -> None:
    create_user(client, "alice")
    scrypt_calls.clear()
    wrong = browser.post("/api/v1/session", json={"username": "alice", "password": OTHER_PASSWORD})
    wrong_work = list(scrypt_calls)
    scrypt_calls.clear()
    unknown = browser.post("/api/v1/session", json={"username": "nobody", "password": OTHER_PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong username or password"}
    assert _set_cookie(wrong) == _set_cookie(unknown) == ""
    assert {k: v for k, v in wrong.headers.items() if k != "date"} == {
        k: v for k, v in unknown.headers.items() if k != "date"
    }
    # the same work (one scrypt of the same cost) whether the user exists or not
    assert wrong_work == scrypt_calls == [(2**FAST.log_n, FAST.r, FAST.p)]


def test_sign_in_takes_json_only(client: TestClient, browser: TestClient) -> None:
    """A form of another site cannot sign anyone in (login CSRF) nor probe passwords."""
    create_user(client, "alice")
    form = browser.post("/api/v1/session", data={"username": "alice", "password": PASSWORD})
    assert form.status_code == 415
    assert form.json() == {"detail": "sign in with a JSON body (Content-Type: application/json)"}
    plain = browser.post(
        "/api/v1/session",
        content=f'{{"username": "alice", "password": "{PASSWORD}"}}',
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status_code == 415
    assert sessions.COOKIE_NAME not in browser.cookies
    charset = browser.post(
        "/api/v1/session",
        content=f'{{"username": "alice", "password": "{PASSWORD}"}}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_disabled_user(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    assert client.patch("/api/v1/users/alice", json={"disabled": True}).json()["disabled"] is True
    assert browser.get("/api/v1/session").status_code == 401  # disabling ended the session
    r = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403
    assert r.json() == {"detail": "this user is disabled; ask an admin"}
    # a wrong password learns nothing about it
    r = browser.post("/api/v1/session", json={"username": "alice", "password": OTHER_PASSWORD})
    assert r.json() == {"detail": "wrong username or password"}
    client.patch("/api/v1/users/alice", json={"disabled": False})
    assert sign_in(browser, "alice")


def test_old_hash_is_replaced_at_sign_in(
    client: TestClient, browser: TestClient, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(client, "alice")
    stronger = Scrypt(log_n=5, r=8, p=1)
    monkeypatch.setattr(sessions, "SCRYPT", stronger)
    sign_in(browser, "alice")
    with factory() as s:
        user = sessions.find_user(s, "alice")
        assert user is not None
        assert user.password_hash.startswith(f"$scrypt${stronger.encode()}$")


# --------------------------------------------------------------------------- CSRF and roles


def test_changes_need_the_csrf_token(client: TestClient, browser: TestClient) -> None:
    create_user(client, "walt", "write")
    csrf = sign_in(browser, "walt")
    assert browser.get("/api/v1/clusters").status_code == 200  # reads need no token
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": csrf[:-1]}):
        r = browser.post("/api/v1/clusters", json={"name": "c1"}, headers=headers)
        assert r.status_code == 403
        assert r.json() == {"detail": "missing or wrong CSRF token; reload the page"}
    assert browser.delete("/api/v1/clusters/c1").status_code == 403
    r = browser.post("/api/v1/clusters", json={"name": "c1"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    assert browser.delete("/api/v1/clusters/c1", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_another_sessions_csrf_token_is_wrong(
    client: TestClient, browser: TestClient, new_browser: Callable[[], TestClient]
) -> None:
    create_user(client, "walt", "write")
    sign_in(browser, "walt")
    other = sign_in(new_browser(), "walt")
    r = browser.post("/api/v1/clusters", json={"name": "c1"}, headers={"X-CSRF-Token": other})
    assert r.status_code == 403


def test_a_reader_cannot_write(client: TestClient, browser: TestClient) -> None:
    create_user(client, "rita", "read")
    csrf = sign_in(browser, "rita")
    assert browser.get("/api/v1/clusters").status_code == 200
    r = browser.post("/api/v1/clusters", json={"name": "c1"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    assert r.json() == {"detail": "your role 'read' does not allow this; it needs 'write'"}


def test_writes_are_recorded_as_the_user(client: TestClient, browser: TestClient) -> None:
    create_user(client, "walt", "write")
    csrf = sign_in(browser, "walt")
    headers = {"X-CSRF-Token": csrf}
    assert browser.post("/api/v1/clusters", json={"name": "c1"}, headers=headers).status_code == 201
    r = browser.post("/api/v1/clusters/c1/apply", json={"files": example_bundle()}, headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["created_by"] == "user:walt"
    assert browser.get(f"/api/v1/operations/{r.json()['id']}").json()["created_by"] == "user:walt"


def test_api_tokens_keep_working(client: TestClient, app: FastAPI) -> None:
    create_user(client, "rita", "read")
    # no cookie: the bearer token alone, no CSRF token needed
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    # a bearer token wins over a reader's cookie
    both = TestClient(app)
    sign_in(both, "rita")
    r = both.post("/api/v1/clusters", json={"name": "c2"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 201
    # without either
    r = TestClient(app).get("/api/v1/clusters")
    assert r.status_code == 401
    assert r.json() == {"detail": "missing bearer token"}


def test_who_am_i_needs_a_session(client: TestClient, anon: TestClient) -> None:
    r = anon.get("/api/v1/session")
    assert r.status_code == 401
    assert r.json() == {"detail": "not signed in, or the session ended; sign in again"}
    assert client.get("/api/v1/session").status_code == 401  # an API token is not a session


# --------------------------------------------------------------------------- session ends


def test_idle_session_expires(client: TestClient, browser: TestClient, clock: Clock) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    clock.advance(11 * 3600)
    assert browser.get("/api/v1/session").status_code == 200  # a request keeps it alive
    clock.advance(11 * 3600)
    assert browser.get("/api/v1/session").status_code == 200
    clock.advance(12 * 3600 + 1)
    r = browser.get("/api/v1/clusters")
    assert r.status_code == 401
    assert r.json()["detail"] == "not signed in, or the session ended; sign in again"


def test_session_ends_after_seven_days_even_when_used(
    client: TestClient, browser: TestClient, clock: Clock
) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    for _ in range(15):  # 165 h of use
        clock.advance(11 * 3600)
        assert browser.get("/api/v1/session").status_code == 200
    clock.advance(3 * 3600)  # 168 h after sign-in
    assert browser.get("/api/v1/session").status_code == 401


def test_sign_out_revokes_the_session(client: TestClient, browser: TestClient, app: FastAPI) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    secret = browser.cookies[sessions.COOKIE_NAME]
    r = browser.delete("/api/v1/session")
    assert r.status_code == 204
    assert _set_cookie(r).startswith(f'{sessions.COOKIE_NAME}=""')  # the browser drops it
    assert "max-age" in _attributes(_set_cookie(r))
    # the old cookie, replayed, no longer works
    replay = TestClient(app, cookies={sessions.COOKIE_NAME: secret})
    assert replay.get("/api/v1/session").status_code == 401
    assert replay.get("/api/v1/clusters").status_code == 401
    assert TestClient(app).delete("/api/v1/session").status_code == 204  # signed out already: fine


def test_unknown_cookie_is_refused(app: FastAPI) -> None:
    forged = TestClient(app, cookies={sessions.COOKIE_NAME: "forged"})
    assert forged.get("/api/v1/clusters").status_code == 401
    assert forged.post("/api/v1/clusters", json={"name": "c"}).status_code == 401


def test_admin_password_reset_ends_every_session(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice")
    sign_in(browser, "alice")
    r = client.post("/api/v1/users/alice/password", json={"password": OTHER_PASSWORD})
    assert r.status_code == 200
    assert browser.get("/api/v1/session").status_code == 401
    assert (
        browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD}).status_code == 401
    )
    assert sign_in(browser, "alice", OTHER_PASSWORD)
    missing = client.post("/api/v1/users/nobody/password", json={"password": OTHER_PASSWORD})
    assert missing.status_code == 404


def test_change_own_password(
    client: TestClient, browser: TestClient, new_browser: Callable[[], TestClient]
) -> None:
    create_user(client, "alice")
    csrf = sign_in(browser, "alice")
    elsewhere = new_browser()
    sign_in(elsewhere, "alice")
    change = {"old_password": PASSWORD, "new_password": OTHER_PASSWORD}
    assert browser.post("/api/v1/session/password", json=change).status_code == 403  # no CSRF token
    headers = {"X-CSRF-Token": csrf}
    wrong = {"old_password": "not the password", "new_password": OTHER_PASSWORD}
    r = browser.post("/api/v1/session/password", json=wrong, headers=headers)
    assert r.status_code == 403
    assert r.json() == {"detail": "the current password is wrong"}
    short = {"old_password": PASSWORD, "new_password": "short"}
    r = browser.post("/api/v1/session/password", json=short, headers=headers)
    assert r.json() == {"detail": "a password needs at least 12 characters"}
    assert browser.post("/api/v1/session/password", json=change, headers=headers).status_code == 204
    assert browser.get("/api/v1/session").status_code == 200  # this session stays
    assert elsewhere.get("/api/v1/session").status_code == 401  # the others end
    assert sign_in(new_browser(), "alice", OTHER_PASSWORD)


# --------------------------------------------------------------------------- rate limit


def test_failed_sign_ins_are_limited_per_username(
    client: TestClient, browser: TestClient, clock: Clock
) -> None:
    create_user(client, "alice")
    for _ in range(10):
        r = browser.post("/api/v1/session", json={"username": "alice", "password": OTHER_PASSWORD})
        assert r.status_code == 401
    r = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429  # even the right password, until the window moves on
    assert r.headers["retry-after"] == "300"
    assert r.json() == {"detail": "too many failed sign-ins; try again in 300 s"}
    clock.advance(120)
    assert (
        browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD}).headers[
            "retry-after"
        ]
        == "180"
    )
    clock.advance(180)
    assert sign_in(browser, "alice")


def test_successes_do_not_count(client: TestClient, new_browser: Callable[[], TestClient]) -> None:
    create_user(client, "alice")
    for _ in range(12):
        assert sign_in(new_browser(), "alice")


def test_failed_sign_ins_are_limited_per_address(client: TestClient, browser: TestClient) -> None:
    create_user(client, "alice")
    for i in range(30):
        r = browser.post("/api/v1/session", json={"username": f"guess{i}", "password": OTHER_PASSWORD})
        assert r.status_code == 401
    r = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0


def test_limiter_forgets_old_keys() -> None:
    limiter = sessions.SignInLimiter(per_user=1, per_address=1000, window=timedelta(minutes=5))
    limiter.MAX_KEYS = 10
    now = datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(50):
        assert limiter.begin(f"user{i}", "10.0.0.1", now) is None
    assert len(limiter._failures) <= limiter.MAX_KEYS + 1


# --------------------------------------------------------------------------- secrecy


def test_passwords_never_in_responses_or_logs(
    client: TestClient, browser: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    def keep(r: Response) -> Response:
        texts.append(r.text + str(r.headers))
        return r

    keep(client.post("/api/v1/users", json={"username": "alice", "role": "admin", "password": PASSWORD}))
    keep(client.post("/api/v1/users", json={"username": "bob", "role": "read", "password": "tooshort!"}))
    keep(browser.post("/api/v1/session", json={"username": "alice", "password": OTHER_PASSWORD}))
    # a password typed into the username field is not logged either
    keep(browser.post("/api/v1/session", json={"username": OTHER_PASSWORD, "password": PASSWORD}))
    r = keep(browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD}))
    csrf = r.json()["csrf_token"]
    keep(
        browser.post(
            "/api/v1/session/password",
            json={"old_password": PASSWORD, "new_password": OTHER_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
    )
    keep(client.post("/api/v1/users/alice/password", json={"password": PASSWORD}))
    keep(client.get("/api/v1/users"))
    keep(client.get("/openapi.json"))
    assert "sign-in refused" in caplog.text
    assert "signed in" in caplog.text
    for secret in (PASSWORD, OTHER_PASSWORD, "tooshort!"):
        assert secret not in caplog.text
        for text in texts:
            assert secret not in text
