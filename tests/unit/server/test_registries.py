"""Registry credentials for sync jobs: resolved by name, checked against their hosts, the GHCR
fallback to the Git token, sealed so that only the cluster's agent opens them."""

from typing import Any

import pytest
from pyrage import x25519
from sqlalchemy.orm import Session

from moorage.agent.registryauth import CredentialsError, open_credentials
from moorage.server import registries
from moorage.server.db import SessionFactory, transaction
from moorage.server.db.models import Cluster, new_id
from moorage.server.gitops import store
from moorage.server.secretbox import SecretBox
from moorage.spec.loader import LoadOptions, load

BOX = SecretBox(x25519.Identity.generate())
PASSWORD = "registry-pass-0123456789"
HTTP_REPO = "https://charts.example.com/private"
OCI = "oci://registry.example.com/charts"


def make_cluster(session: Session, name: str) -> Cluster:
    cluster = Cluster(name=name, agent_token_hash=new_id(), agent_password_bcrypt="unused")
    session.add(cluster)
    session.flush()
    return cluster


def need(url: str, credential: str | None, addon: str = "web") -> dict[str, Any]:
    return {"url": url, "credential": credential, "addons": [addon], "at": "clusters/c/import.yaml:12"}


def resolve(session: Session, needs: list[dict[str, Any]], **kw: Any) -> Any:
    return registries.resolve(
        session, BOX, needs, git_credential=kw.pop("git", None), loopback_http=False, ghcr_fallback=True, **kw
    )


def test_a_missing_credential_is_a_validation_error_naming_it(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        creds, errors = resolve(s, [need(HTTP_REPO, "charts-bot")])
    assert creds == {}
    (error,) = errors
    assert "credential 'charts-bot'" in error["message"]
    assert HTTP_REPO in error["message"]
    assert (error["file"], error["line"]) == ("clusters/c/import.yaml", 12)
    assert "moorage credentials create charts-bot --kind helm" in error["hint"]


def test_a_credential_is_given_only_to_the_registry_it_is_bound_to(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        store.create_credential(s, BOX, "charts", "helm", PASSWORD, "robot", hosts=[HTTP_REPO])
        store.create_credential(s, BOX, "git", "token", "ghp_0123456789abcdef", hosts=["charts.example.com"])
        creds, errors = resolve(
            s,
            [
                need(HTTP_REPO + "/stable", "charts"),
                need("https://evil.example/charts", "charts", "stolen"),
                need(HTTP_REPO, "git", "git-as-registry"),
            ],
        )
    assert creds == {HTTP_REPO + "/stable": {"username": "robot", "password": PASSWORD}}
    messages = " | ".join(e["message"] for e in errors)
    assert "stolen" in messages
    assert "not to evil.example" in messages
    assert "git-as-registry" in messages
    assert "is a Git credential" in messages
    assert PASSWORD not in messages


def test_ghcr_falls_back_to_the_clusters_github_token_unless_turned_off(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        git = store.create_credential(
            s, BOX, "gh", "token", "ghp_0123456789abcdef", "me", hosts=["github.com"]
        )
        other = store.create_credential(s, BOX, "gl", "token", "glpat-0123456789", hosts=["gitlab.com"])
        needs = [need("oci://ghcr.io/acme/charts", None), need(OCI, None, "public")]
        creds, errors = resolve(s, needs, git=git)
        assert errors == []
        assert creds == {"oci://ghcr.io/acme/charts": {"username": "me", "password": "ghp_0123456789abcdef"}}
        assert resolve(s, needs, git=other) == ({}, [])  # not a GitHub token
        off = registries.resolve(s, BOX, needs, git_credential=git, loopback_http=False, ghcr_fallback=False)
        assert off == ({}, [])


def test_the_sealed_credentials_open_only_with_the_clusters_agent_key(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        store.create_credential(
            s, BOX, "oci", "oci", PASSWORD, "robot", hosts=["registry.example.com"], ca_bundle=None
        )
        cluster, other = make_cluster(s, "c1"), make_cluster(s, "c2")
        extra, errors = registries.sealed_payload(
            s, BOX, cluster, [need(OCI, "oci")], loopback_http=False, ghcr_fallback=True
        )
        identity, other_identity = (
            registries.agent_identity(BOX, cluster),
            registries.agent_identity(BOX, other),
        )
        cluster.agent_token_hash = new_id()  # the token was rotated
        rotated = registries.agent_identity(BOX, cluster)
    assert errors == []
    sealed = extra[registries.PAYLOAD_KEY]
    assert PASSWORD not in sealed
    opened = open_credentials(extra, identity)
    assert opened[OCI].username == "robot"
    assert opened[OCI].password == PASSWORD
    assert PASSWORD not in repr(opened)
    for wrong in (other_identity, rotated):
        with pytest.raises(CredentialsError, match="cannot be opened"):
            open_credentials(extra, wrong)
    assert open_credentials({}, None) == {}


def test_a_definitions_registries_and_credential_names(tmp_path: Any) -> None:
    root = tmp_path / "import-cluster.yaml"
    root.write_text(
        """apiVersion: v1
kind: ImportCluster
metadata:
  name: c
spec:
  helm_registries:
    - name: private
      url: https://charts.example.com/private
      credential_name: charts-bot
  stacks:
    - name: s
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: private
          namespace: web
        - name: api
          chart_name: webapp
          chart_version: "1.0.0"
          registry_url: oci://registry.example.com/charts
          registry_credential_name: oci-bot
          namespace: api
"""
    )
    result = load(root, LoadOptions(decrypt=False), repo_root=tmp_path)
    assert result.resolved is not None, result.report.to_text()
    needs = {n["url"]: (n["credential"], n["addons"]) for n in registries.needs_of(result.resolved)}
    assert needs == {
        "https://charts.example.com/private": ("charts-bot", ["web"]),
        "oci://registry.example.com/charts": ("oci-bot", ["api"]),
    }
