"""The kubectl proxy's pure parts: what a request is about (audit, limits), chunking, paths the
agent refuses, headers that never reach the API server, and the per-cluster limits."""

import pytest
from pydantic import ValidationError

from moorage.server.kubeproxy import KubeProxySettings, Limiter, LimitReached, is_proxied_path
from moorage.spec import kubeproxy as kp
from moorage.spec import protocol
from moorage.spec.kubeproxy import Mode

CASES = [
    # method, path, query, verb, group, resource, subresource, namespace, name, mode
    ("GET", "/version", "", "get", "", "", "", "", "", Mode.UNARY),
    ("GET", "/apis", "", "get", "", "", "", "", "", Mode.UNARY),
    ("GET", "/api/v1", "", "get", "", "", "", "", "", Mode.UNARY),
    ("GET", "/api/v1/pods", "limit=500", "list", "", "pods", "", "", "", Mode.UNARY),
    ("GET", "/api/v1/namespaces/a/pods", "watch=true", "watch", "", "pods", "", "a", "", Mode.STREAM),
    (
        "GET",
        "/api/v1/namespaces/a/pods",
        "watch=1&resourceVersion=5",
        "watch",
        "",
        "pods",
        "",
        "a",
        "",
        Mode.STREAM,
    ),
    ("GET", "/api/v1/watch/namespaces/a/pods", "", "watch", "", "pods", "", "a", "", Mode.STREAM),
    ("GET", "/api/v1/namespaces/a/pods/p", "", "get", "", "pods", "", "a", "p", Mode.UNARY),
    (
        "GET",
        "/api/v1/namespaces/a/pods/p/log",
        "follow=true",
        "get",
        "",
        "pods",
        "log",
        "a",
        "p",
        Mode.STREAM,
    ),
    ("GET", "/api/v1/namespaces/a/pods/p/log", "", "get", "", "pods", "log", "a", "p", Mode.UNARY),
    ("GET", "/api/v1/namespaces/a", "", "get", "", "namespaces", "", "a", "a", Mode.UNARY),
    ("DELETE", "/api/v1/namespaces/a", "", "delete", "", "namespaces", "", "a", "a", Mode.UNARY),
    ("GET", "/api/v1/namespaces", "", "list", "", "namespaces", "", "", "", Mode.UNARY),
    (
        "POST",
        "/apis/apps/v1/namespaces/a/deployments",
        "",
        "create",
        "apps",
        "deployments",
        "",
        "a",
        "",
        Mode.UNARY,
    ),
    (
        "PATCH",
        "/apis/apps/v1/namespaces/a/deployments/d",
        "fieldManager=kubectl",
        "patch",
        "apps",
        "deployments",
        "",
        "a",
        "d",
        Mode.UNARY,
    ),
    (
        "PUT",
        "/apis/apps/v1/namespaces/a/deployments/d/scale",
        "",
        "update",
        "apps",
        "deployments",
        "scale",
        "a",
        "d",
        Mode.UNARY,
    ),
    (
        "DELETE",
        "/api/v1/namespaces/a/configmaps",
        "",
        "deletecollection",
        "",
        "configmaps",
        "",
        "a",
        "",
        Mode.UNARY,
    ),
    ("DELETE", "/api/v1/namespaces/a/secrets/s", "", "delete", "", "secrets", "", "a", "s", Mode.UNARY),
    (
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
        "",
        "get",
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "",
        "view",
        Mode.UNARY,
    ),
    (
        "GET",
        "/api/v1/namespaces/a/services/web:80/proxy/metrics",
        "",
        "proxy",
        "",
        "services",
        "proxy",
        "a",
        "web:80",
        Mode.UNARY,
    ),
    (
        "POST",
        "/api/v1/namespaces/a/pods/p/exec",
        "command=ls",
        "connect",
        "",
        "pods",
        "exec",
        "a",
        "p",
        Mode.UNARY,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "verb", "group", "resource", "sub", "ns", "name", "mode"), CASES
)
def test_classify(
    method: str,
    path: str,
    query: str,
    verb: str,
    group: str,
    resource: str,
    sub: str,
    ns: str,
    name: str,
    mode: Mode,
) -> None:
    info = kp.classify(method, path, query)
    assert (
        info.verb,
        info.api_group,
        info.resource,
        info.subresource,
        info.namespace,
        info.name,
        info.mode,
    ) == (
        verb,
        group,
        resource,
        sub,
        ns,
        name,
        mode,
    )


def test_an_upgraded_request_is_an_upgrade_and_a_connect() -> None:
    info = kp.classify("GET", "/api/v1/namespaces/a/pods/p/exec", "command=echo", upgrade=True)
    assert (info.verb, info.mode, info.resource_path) == ("connect", Mode.UPGRADE, "pods/exec")
    assert kp.classify("GET", "/apis/apps/v1/deployments").resource_path == "deployments.apps"


@pytest.mark.parametrize(
    "size", [0, 1, kp.CHUNK_BYTES - 1, kp.CHUNK_BYTES, kp.CHUNK_BYTES + 1, 5 * kp.CHUNK_BYTES + 7]
)
def test_chunks_cover_the_data_in_order_within_the_limit(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    pieces = kp.chunks(data)
    assert b"".join(pieces) == data
    assert all(0 < len(p) <= kp.CHUNK_BYTES for p in pieces)
    assert len(pieces) == -(-size // kp.CHUNK_BYTES)
    # a chunk and its headers fit a NATS message
    assert kp.CHUNK_BYTES * 2 <= protocol.MAX_MESSAGE_BYTES


@pytest.mark.parametrize(
    "path",
    [
        "version",
        "//evil.example.com/api",
        "/api/../../etc",
        "/api/%2e%2e/x",
        "/api/v1\r\nX: y",
        "/a?b",
        "/a#b",
        "/a\\b",
    ],
)
def test_paths_the_agent_refuses(path: str) -> None:
    assert kp.path_problem(path) is not None
    with pytest.raises(ValidationError):
        _request(path=path)


def _request(**change: object) -> kp.KubeRequest:
    fields: dict[str, object] = {
        "stream_id": "a" * 24,
        "mode": Mode.UNARY,
        "method": "GET",
        "path": "/api/v1/pods",
        "user": "moorage:user:alice",
        "groups": ["moorage:view"],
        "timeout_seconds": 60,
    }
    fields.update(change)
    return kp.KubeRequest.model_validate(fields)


@pytest.mark.parametrize(
    "header", ["Authorization", "Impersonate-User", "Impersonate-Group", "Cookie", "Host"]
)
def test_credentials_and_impersonation_headers_are_never_forwarded(header: str) -> None:
    with pytest.raises(ValidationError):
        _request(headers=[(header, "x")])
    assert _request(headers=[("Accept", "application/json")]).headers == [("Accept", "application/json")]


def test_the_impersonated_identity_follows_the_role() -> None:
    assert kp.impersonation("user", "alice", "read") == ("moorage:user:alice", ["moorage:view"])
    assert kp.impersonation("token", "ci", "write") == ("moorage:token:ci", ["moorage:edit"])
    assert kp.impersonation("user", "root", "admin") == ("moorage:user:root", ["moorage:admin"])
    with pytest.raises(ValueError, match="unknown role"):
        kp.impersonation("user", "x", "agent")


def test_an_agent_may_only_use_its_own_kube_subjects() -> None:
    perms = protocol.agent_permissions("abc")
    assert kp.kube_to_server_subject("abc", "*") in perms["publish"]["allow"]
    assert kp.kube_to_agent_subject("abc") in perms["subscribe"]["allow"]
    assert not any("def" in s for s in perms["publish"]["allow"] + perms["subscribe"]["allow"])


def test_limits_per_cluster_and_kind_refuse_at_once_and_free_on_release() -> None:
    limiter = Limiter(KubeProxySettings(unary=2, stream=1))
    first = limiter.acquire("c1", "one", Mode.UNARY)
    limiter.acquire("c1", "one", Mode.UNARY)
    with pytest.raises(LimitReached, match="limit 2, MOORAGE_KUBE_PROXY_UNARY_CONCURRENCY"):
        limiter.acquire("c1", "one", Mode.UNARY)
    limiter.acquire("c2", "two", Mode.UNARY)  # another cluster has its own
    watch = limiter.acquire("c1", "one", Mode.STREAM)
    with pytest.raises(LimitReached, match="STREAM"):
        limiter.acquire("c1", "one", Mode.UPGRADE)  # exec counts as streaming
    first()
    first()  # idempotent
    limiter.acquire("c1", "one", Mode.UNARY)
    watch()
    assert limiter.in_use("c1") == (2, 0)


def test_proxied_paths_bypass_gzip() -> None:
    assert is_proxied_path("/api/v1/clusters/a/kube/api/v1/pods")
    assert is_proxied_path("/api/v1/clusters/a/services/ns/web:80/proxy/")
    assert not is_proxied_path("/api/v1/clusters/a/addons")
    assert not is_proxied_path("/api/v1/clusters")
