"""How API and agent tokens are stored (issue 18, item 10): a keyed hash, so that a copied database
does not let anyone test guesses of a user-chosen token offline; hashes of older servers (plain
sha256) keep working and are rewritten."""

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyrage import x25519
from sqlalchemy import select

from moorage.server import service, tokens
from moorage.server.app import create_app
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import ApiToken, Cluster
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.server.tokens import TokenHasher
from tests.unit.server.conftest import ADMIN_TOKEN, HASHER, Clock, FakeBus


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored_hashes(factory: SessionFactory) -> set[str]:
    with transaction(factory) as s:
        return set(s.scalars(select(ApiToken.token_hash))) | set(s.scalars(select(Cluster.agent_token_hash)))


def test_the_database_holds_no_unkeyed_hash_of_any_token(client: TestClient, factory: SessionFactory) -> None:
    made = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]}).json()["token"]
    agent = client.post("/api/v1/clusters", json={"name": "c1"}).json()["agent_token"]
    hashes = stored_hashes(factory)
    assert len(hashes) == 3  # bootstrap, ci, the agent's
    for token in (ADMIN_TOKEN, made, agent):
        assert sha256(token) not in hashes
    assert all(h.startswith(tokens.KEYED_PREFIX) and len(h) <= 64 for h in hashes)
    # the tokens work
    assert (
        TestClient(client.app, headers={"Authorization": f"Bearer {made}"}).get("/api/v1/clusters").is_success
    )
    r = TestClient(client.app, headers={"Authorization": f"Bearer {agent}"}).post("/api/v1/agent/register")
    assert r.status_code == 200, r.text


def test_a_guess_cannot_be_checked_without_the_server_key(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        service.ensure_bootstrap_token(s, HASHER, "my-chosen-bootstrap-token")
    (stored,) = stored_hashes(factory)
    other_key = TokenHasher(b"some other key, not the server's one!!")
    assert stored != other_key.hash("my-chosen-bootstrap-token")
    assert stored != sha256("my-chosen-bootstrap-token")
    assert stored == HASHER.hash("my-chosen-bootstrap-token")


def test_the_key_is_derived_from_the_server_key() -> None:
    one, two = SecretBox(x25519.Identity.generate()), SecretBox(x25519.Identity.generate())
    assert one.derive_key(tokens.TOKEN_KEY_PURPOSE) == one.derive_key(tokens.TOKEN_KEY_PURPOSE)
    assert one.derive_key(tokens.TOKEN_KEY_PURPOSE) != two.derive_key(tokens.TOKEN_KEY_PURPOSE)
    assert one.derive_key(tokens.TOKEN_KEY_PURPOSE) != one.derive_key("something else")
    assert len(one.derive_key(tokens.TOKEN_KEY_PURPOSE)) == 32
    assert "key" in repr(TokenHasher(one.derive_key("x")))
    with pytest.raises(ValueError, match="32 bytes"):
        TokenHasher(b"short")


def _legacy_rows(factory: SessionFactory, api_token: str, agent_token: str) -> None:
    """Rows as a server before the keyed hash wrote them."""
    with transaction(factory) as s:
        s.add(ApiToken(name="old", token_hash=sha256(api_token), scopes=["admin"]))
        s.add(Cluster(name="old", agent_token_hash=sha256(agent_token), agent_password_bcrypt="unused"))


def test_hashes_of_an_older_server_are_rewritten_at_start_up_and_keep_working(
    tmp_path: Path, db_url: str, factory: SessionFactory, clock: Clock
) -> None:
    api_token, agent_token = "mrg_" + "a" * 43, "mrga_" + "b" * 43
    _legacy_rows(factory, api_token, agent_token)
    settings = ServerSettings(data_dir=tmp_path, database_url=db_url, nats_url="nats://127.0.0.1:4222")
    app = create_app(settings, factory, FakeBus(), clock=clock, expire_jobs=False, run_gitops=False)

    hashes = stored_hashes(factory)
    assert sha256(api_token) not in hashes
    assert sha256(agent_token) not in hashes
    assert all(h.startswith(tokens.KEYED_PREFIX) for h in hashes)
    r = TestClient(app, headers={"Authorization": f"Bearer {api_token}"}).get("/api/v1/tokens")
    assert r.status_code == 200, r.text
    r = TestClient(app, headers={"Authorization": f"Bearer {agent_token}"}).post("/api/v1/agent/register")
    assert r.status_code == 200, r.text
    # a second start rewrites nothing twice
    create_app(settings, factory, FakeBus(), clock=clock, expire_jobs=False, run_gitops=False)
    assert stored_hashes(factory) == hashes


def test_an_unkeyed_hash_written_after_start_up_is_rewritten_at_its_first_use(
    factory: SessionFactory,
) -> None:
    # e.g. by an older replica, after this server's start-up rewrite
    api_token, agent_token = "mrg_" + "c" * 43, "mrga_" + "d" * 43
    _legacy_rows(factory, api_token, agent_token)
    with transaction(factory) as s:
        assert service.authenticate_token(s, HASHER, api_token) is not None
        assert service.authenticate_agent(s, HASHER, agent_token) is not None
    hashes = stored_hashes(factory)
    assert HASHER.hash(api_token) in hashes
    assert HASHER.hash(agent_token) in hashes
    assert sha256(api_token) not in hashes
    with transaction(factory) as s:
        assert service.authenticate_token(s, HASHER, api_token) is not None
        assert service.authenticate_token(s, HASHER, "mrg_" + "e" * 43) is None
        assert service.authenticate_agent(s, HASHER, "mrga_" + "e" * 43) is None


def test_a_rotated_agent_token_is_stored_keyed(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster, first = service.register_cluster(s, HASHER, "c1")
        second = service.rotate_agent_token(s, HASHER, cluster)
    with transaction(factory) as s:
        assert service.authenticate_agent(s, HASHER, first) is None
        assert service.authenticate_agent(s, HASHER, second) is not None
    assert stored_hashes(factory) == {HASHER.hash(second)}
