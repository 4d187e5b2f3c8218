"""Push webhooks: realistic deliveries from each provider, refusals, signatures, and fuzzing."""

import copy
import json
import os
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.server.gitops.repourl import PROVIDERS, Provider, RepoIdentity
from moorage.server.gitops.webhooks import (
    MAX_BODY_BYTES,
    Push,
    WebhookError,
    WebhookEvent,
    parse,
    sign,
    signature_valid,
)

BEFORE = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
AFTER = "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5"
ZEROS = "0" * 40
SECRET = b"webhook-secret-0123456789"

GITHUB_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": BEFORE,
    "after": AFTER,
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": "https://github.com/Acme/Platform/compare/6113728f27ae...59b20b8d5c6f",
    "commits": [
        {
            "id": AFTER,
            "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
            "distinct": True,
            "message": "clusters/dev: bump ingress-nginx to 4.11.3",
            "timestamp": "2026-11-20T10:02:11+01:00",
            "url": f"https://github.com/Acme/Platform/commit/{AFTER}",
            "author": {"name": "Alice", "email": "alice@example.com", "username": "alice"},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
            "added": [],
            "removed": [],
            "modified": ["clusters/dev/cluster.yaml"],
        }
    ],
    "head_commit": {"id": AFTER, "message": "clusters/dev: bump ingress-nginx to 4.11.3"},
    "repository": {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "Platform",
        "full_name": "Acme/Platform",
        "private": True,
        "owner": {"name": "Acme", "login": "Acme", "id": 21031067, "type": "Organization"},
        "html_url": "https://github.com/Acme/Platform",
        "clone_url": "https://github.com/Acme/Platform.git",
        "ssh_url": "git@github.com:Acme/Platform.git",
        "default_branch": "main",
        "pushed_at": 1795000931,
    },
    "pusher": {"name": "alice", "email": "alice@example.com"},
    "sender": {"login": "alice", "id": 583231, "type": "User"},
}

GITHUB_PING: dict[str, Any] = {
    "zen": "Keep it logically awesome.",
    "hook_id": 479371234,
    "hook": {"type": "Repository", "id": 479371234, "active": True, "events": ["push"]},
    "repository": {"id": 186853002, "full_name": "Acme/Platform"},
    "sender": {"login": "alice", "id": 583231},
}

BITBUCKET_CLOUD_PUSH: dict[str, Any] = {
    "push": {
        "changes": [
            {
                "forced": False,
                "old": {
                    "type": "branch",
                    "name": "main",
                    "target": {"type": "commit", "hash": BEFORE},
                    "links": {"html": {"href": "https://bitbucket.org/acme-ws/platform/branch/main"}},
                },
                "new": {
                    "type": "branch",
                    "name": "main",
                    "target": {
                        "type": "commit",
                        "hash": AFTER,
                        "date": "2026-11-20T09:02:11+00:00",
                        "message": "clusters/dev: bump ingress-nginx to 4.11.3\n",
                        "author": {"raw": "Alice <alice@example.com>", "type": "author"},
                        "parents": [{"type": "commit", "hash": BEFORE}],
                    },
                    "links": {"html": {"href": "https://bitbucket.org/acme-ws/platform/branch/main"}},
                },
                "created": False,
                "closed": False,
                "truncated": False,
                "commits": [{"type": "commit", "hash": AFTER}],
            }
        ]
    },
    "actor": {"type": "user", "display_name": "Alice", "uuid": "{3a1b2c3d-0000-4000-8000-000000000001}"},
    "repository": {
        "type": "repository",
        "full_name": "acme-ws/platform",
        "name": "Platform",
        "uuid": "{9f2e7c5a-0000-4000-8000-000000000002}",
        "workspace": {"type": "workspace", "slug": "acme-ws", "name": "Acme"},
        "project": {"type": "project", "key": "OPS", "name": "Operations"},
        "links": {"html": {"href": "https://bitbucket.org/acme-ws/platform"}},
        "is_private": True,
        "scm": "git",
    },
}

BITBUCKET_DC_PUSH: dict[str, Any] = {
    "eventKey": "repo:refs_changed",
    "date": "2026-11-20T10:02:11+0100",
    "actor": {"name": "alice", "emailAddress": "alice@example.com", "id": 8361, "slug": "alice"},
    "repository": {
        "slug": "cluster-config",
        "id": 2659,
        "name": "Cluster Config",
        "scmId": "git",
        "state": "AVAILABLE",
        "forkable": True,
        "project": {"key": "PLAT", "id": 2264, "name": "Platform", "public": False, "type": "NORMAL"},
        "public": False,
        "links": {
            "clone": [
                {"href": "https://bitbucket.example.com/scm/plat/cluster-config.git", "name": "http"},
                {"href": "ssh://git@bitbucket.example.com:7999/plat/cluster-config.git", "name": "ssh"},
            ],
            "self": [{"href": "https://bitbucket.example.com/projects/PLAT/repos/cluster-config/browse"}],
        },
    },
    "changes": [
        {
            "ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
            "refId": "refs/heads/main",
            "fromHash": BEFORE,
            "toHash": AFTER,
            "type": "UPDATE",
        }
    ],
}

FIXTURES: dict[Provider, dict[str, Any]] = {
    "github": GITHUB_PUSH,
    "bitbucket_cloud": BITBUCKET_CLOUD_PUSH,
    "bitbucket_data_center": BITBUCKET_DC_PUSH,
}
PUSH_HEADERS: dict[Provider, dict[str, str]] = {
    "github": {"X-GitHub-Event": "push", "Content-Type": "application/json"},
    "bitbucket_cloud": {"X-Event-Key": "repo:push", "Content-Type": "application/json"},
    "bitbucket_data_center": {
        "X-Event-Key": "repo:refs_changed",
        "Content-Type": "application/json; charset=UTF-8",
    },
}
EXPECTED = {
    "github": Push(RepoIdentity("acme", "platform"), "main", AFTER),
    "bitbucket_cloud": Push(RepoIdentity("acme-ws", "platform"), "main", AFTER),
    "bitbucket_data_center": Push(RepoIdentity("plat", "cluster-config"), "main", AFTER),
}


def _body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _refused(provider: Provider, payload: object, headers: dict[str, str] | None = None) -> WebhookError:
    body = payload if isinstance(payload, bytes) else _body(payload)
    with pytest.raises(WebhookError) as caught:
        parse(provider, PUSH_HEADERS[provider] if headers is None else headers, body)
    return caught.value


# --------------------------------------------------------------------------- pushes


@pytest.mark.parametrize("provider", PROVIDERS)
def test_push(provider: Provider) -> None:
    event = parse(provider, PUSH_HEADERS[provider], _body(FIXTURES[provider]))
    assert event == WebhookEvent("push", pushes=(EXPECTED[provider],))


def test_github_tag_delete_and_create() -> None:
    tag = {**GITHUB_PUSH, "ref": "refs/tags/v1.4.0"}
    deleted = {**GITHUB_PUSH, "after": ZEROS, "deleted": True}
    created = {**GITHUB_PUSH, "before": ZEROS, "created": True, "ref": "refs/heads/feature/x"}
    identity = RepoIdentity("acme", "platform")
    assert parse("github", PUSH_HEADERS["github"], _body(tag)).pushes == (Push(identity, None, AFTER),)
    assert parse("github", PUSH_HEADERS["github"], _body(deleted)).pushes == (Push(identity, "main", None),)
    assert parse("github", PUSH_HEADERS["github"], _body(created)).pushes == (
        Push(identity, "feature/x", AFTER),
    )


def test_github_sha256_repository_and_uppercase_sha() -> None:
    sha256 = "ab" * 32
    event = parse("github", PUSH_HEADERS["github"], _body({**GITHUB_PUSH, "after": sha256.upper()}))
    assert event.pushes[0].after == sha256


def test_github_form_encoded() -> None:
    body = urlencode({"payload": json.dumps(GITHUB_PUSH)}).encode()
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded"}
    assert parse("github", headers, body).pushes == (EXPECTED["github"],)
    assert signature_valid("github", {**headers, **sign("github", body, SECRET)}, body, SECRET)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"payload=%7B", "not valid JSON"),
        (b"other=1", "exactly one 'payload'"),
        (b"payload=1&payload=2", "exactly one 'payload'"),
        (b"payload=%FF", "malformed"),
        (b"&".join([b"a=1"] * 200), "malformed"),
    ],
)
def test_github_form_encoded_refusals(body: bytes, says: str) -> None:
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded"}
    error = _refused("github", body, headers)
    assert error.status == 400
    assert says in error.message


def test_bitbucket_cloud_tag_delete_and_several_changes() -> None:
    change = BITBUCKET_CLOUD_PUSH["push"]["changes"][0]
    tag = {**change, "new": {**change["new"], "type": "tag", "name": "v1.4.0"}}
    deleted = {**change, "new": None, "closed": True}
    created = {**change, "old": None, "created": True, "new": {**change["new"], "name": "feature/x"}}
    payload = {**BITBUCKET_CLOUD_PUSH, "push": {"changes": [tag, deleted, created]}}
    identity = RepoIdentity("acme-ws", "platform")
    assert parse("bitbucket_cloud", PUSH_HEADERS["bitbucket_cloud"], _body(payload)).pushes == (
        Push(identity, None, AFTER),
        Push(identity, "main", None),
        Push(identity, "feature/x", AFTER),
    )


def test_bitbucket_data_center_tag_delete_and_add() -> None:
    update = BITBUCKET_DC_PUSH["changes"][0]
    tag = {**update, "ref": {"id": "refs/tags/v1.4.0", "displayId": "v1.4.0", "type": "TAG"}, "type": "ADD"}
    deleted = {**update, "fromHash": AFTER, "toHash": ZEROS, "type": "DELETE"}
    added = {
        **update,
        "ref": {"id": "refs/heads/feature/x", "displayId": "feature/x", "type": "BRANCH"},
        "fromHash": ZEROS,
        "type": "ADD",
    }
    payload = {**BITBUCKET_DC_PUSH, "changes": [tag, deleted, added]}
    identity = RepoIdentity("plat", "cluster-config")
    assert parse("bitbucket_data_center", PUSH_HEADERS["bitbucket_data_center"], _body(payload)).pushes == (
        Push(identity, None, AFTER),
        Push(identity, "main", None),
        Push(identity, "feature/x", AFTER),
    )


def test_bitbucket_data_center_personal_repository() -> None:
    repository = {**BITBUCKET_DC_PUSH["repository"], "project": {"key": "~ALICE", "type": "PERSONAL"}}
    payload = {**BITBUCKET_DC_PUSH, "repository": repository}
    event = parse("bitbucket_data_center", PUSH_HEADERS["bitbucket_data_center"], _body(payload))
    assert event.pushes[0].repository == RepoIdentity("~alice", "cluster-config")


def test_empty_change_list_is_a_push_of_nothing() -> None:
    payload = {**BITBUCKET_DC_PUSH, "changes": []}
    assert parse(
        "bitbucket_data_center", PUSH_HEADERS["bitbucket_data_center"], _body(payload)
    ) == WebhookEvent("push")


# --------------------------------------------------------------------------- pings, other events, headers


@pytest.mark.parametrize(
    ("provider", "headers", "delivery"),
    [
        (
            "github",
            {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "72d3162e-cc78-11e3"},
            "72d3162e-cc78-11e3",
        ),
        ("bitbucket_cloud", {"X-Event-Key": "diagnostics:ping", "X-Request-UUID": "9f2e7c5a"}, "9f2e7c5a"),
        (
            "bitbucket_data_center",
            {"X-Event-Key": "diagnostics:ping", "X-Request-Id": "3a1b2c3d"},
            "3a1b2c3d",
        ),
        ("bitbucket_data_center", {"X-Event-Key": "diagnostics:ping"}, None),
    ],
)
def test_ping(provider: Provider, headers: dict[str, str], delivery: str | None) -> None:
    event = parse(provider, headers, _body(GITHUB_PING) if provider == "github" else b"{}")
    assert event == WebhookEvent("ping", delivery=delivery)


@pytest.mark.parametrize(
    ("provider", "headers", "reason"),
    [
        ("github", {"X-GitHub-Event": "issues"}, "event 'issues' is not a push"),
        ("github", {"X-GitHub-Event": "pull_request"}, "event 'pull_request' is not a push"),
        (
            "bitbucket_cloud",
            {"X-Event-Key": "pullrequest:created"},
            "event 'pullrequest:created' is not a push",
        ),
        ("bitbucket_cloud", {"X-Event-Key": "repo:refs_changed"}, "event 'repo:refs_changed' is not a push"),
        ("bitbucket_data_center", {"X-Event-Key": "pr:opened"}, "event 'pr:opened' is not a push"),
        ("bitbucket_data_center", {"X-Event-Key": "repo:push"}, "event 'repo:push' is not a push"),
        ("github", {"X-GitHub-Event": "<script>alert(1)</script>"}, "event '?script?alert?1???script?' is"),
    ],
)
def test_other_events_are_ignored_without_reading_the_body(
    provider: Provider, headers: dict[str, str], reason: str
) -> None:
    event = parse(provider, headers, b"\xff not even json")
    assert event.kind == "ignored"
    assert reason in event.reason


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_event_header(provider: Provider) -> None:
    header = "X-GitHub-Event" if provider == "github" else "X-Event-Key"
    for headers in ({}, {"Content-Type": "application/json"}, {header: "  "}):
        error = _refused(provider, FIXTURES[provider], headers)
        assert error.status == 400
        assert error.message == f"missing {header} header"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_headers_are_case_insensitive(provider: Provider) -> None:
    body = _body(FIXTURES[provider])
    for transform in (str.lower, str.upper, str.title):
        headers = {transform(k): v for k, v in PUSH_HEADERS[provider].items()}
        headers.update({transform(k): v for k, v in sign(provider, body, SECRET).items()})
        headers[transform("X-Request-Id")] = "abc-123"
        event = parse(provider, headers, body)
        assert event.pushes == (EXPECTED[provider],)
        assert event.delivery == "abc-123"
        assert signature_valid(provider, headers, body, SECRET)


def test_odd_delivery_ids_are_dropped() -> None:
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "a b\x00" + "x" * 300}
    assert parse("github", headers, b"{}").delivery is None


def test_unknown_provider() -> None:
    with pytest.raises(WebhookError) as caught:
        parse("gitlab", {"X-Gitlab-Event": "Push Hook"}, b"{}")  # type: ignore[arg-type]
    assert caught.value.status == 404


# --------------------------------------------------------------------------- refusals


def _without(payload: dict[str, Any], *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return changed


def _with(payload: dict[str, Any], value: object, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node: Any = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


G, C, D = GITHUB_PUSH, BITBUCKET_CLOUD_PUSH, BITBUCKET_DC_PUSH


@pytest.mark.parametrize(
    ("provider", "payload", "says"),
    [
        ("github", b"not json", "the payload is not valid JSON"),
        ("github", b"\xff\xfe{}", "the payload is not UTF-8"),
        ("github", b"", "not valid JSON"),
        ("github", b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        ("github", b"1" * 5000, "not valid JSON"),
        ("github", [], "the payload must be a JSON object"),
        ("bitbucket_cloud", "push", "the payload must be a JSON object"),
        ("bitbucket_data_center", None, "the payload must be a JSON object"),
        ("github", _without(G, "ref"), "missing field 'ref'"),
        ("github", _with(G, 7, "ref"), "field 'ref' must be a non-empty string"),
        ("github", _with(G, "", "ref"), "field 'ref' must be a non-empty string"),
        ("github", _with(G, "refs/heads/" + "x" * 1024, "ref"), "field 'ref' is longer than 1024"),
        ("github", _with(G, "refs/heads/a\nb", "ref"), "field 'ref' contains control characters"),
        ("github", _without(G, "after"), "missing field 'after'"),
        ("github", _with(G, "HEAD", "after"), "field 'after' must be a commit SHA"),
        ("github", _with(G, AFTER[:12], "after"), "field 'after' must be a commit SHA"),
        ("github", _with(G, None, "after"), "field 'after' must be a commit SHA"),
        ("github", _with(G, "yes", "deleted"), "field 'deleted' must be true or false"),
        ("github", _without(G, "repository"), "missing field 'repository'"),
        ("github", _with(G, "Acme/Platform", "repository"), "field 'repository' must be a JSON object"),
        ("github", _without(G, "repository", "full_name"), "missing field 'repository.full_name'"),
        ("github", _with(G, "Platform", "repository", "full_name"), "'repository.full_name' does not name"),
        ("github", _with(G, "a/b/c", "repository", "full_name"), "'repository.full_name' does not name"),
        ("github", _with(G, ["Acme/Platform"], "repository", "full_name"), "'repository.full_name' must be"),
        ("bitbucket_cloud", _without(C, "push"), "missing field 'push'"),
        ("bitbucket_cloud", _with(C, {}, "push"), "missing field 'push.changes'"),
        ("bitbucket_cloud", _with(C, {"a": 1}, "push", "changes"), "field 'push.changes' must be a list"),
        ("bitbucket_cloud", _with(C, [{}] * 1001, "push", "changes"), "more than 1000 entries"),
        ("bitbucket_cloud", _with(C, ["main"], "push", "changes"), "field 'push.changes[0]' must be a JSON"),
        (
            "bitbucket_cloud",
            _with(C, [{"new": None, "old": None}], "push", "changes"),
            "neither 'new' nor 'old'",
        ),
        ("bitbucket_cloud", _with(C, "main", "push", "changes", 0, "new"), "'push.changes[0].new' must be"),
        (
            "bitbucket_cloud",
            _without(C, "push", "changes", 0, "new", "target"),
            "'push.changes[0].new.target'",
        ),
        (
            "bitbucket_cloud",
            _with(C, 1, "push", "changes", 0, "new", "target", "hash"),
            ".new.target.hash' must",
        ),
        (
            "bitbucket_cloud",
            _without(C, "push", "changes", 0, "new", "name"),
            "missing field 'push.changes[0].new.name'",
        ),
        (
            "bitbucket_cloud",
            _with(C, "acme-ws", "repository", "full_name"),
            "'repository.full_name' does not name",
        ),
        (
            "bitbucket_cloud",
            _with(C, "a b/c", "repository", "full_name"),
            "'repository.full_name' does not name",
        ),
        ("bitbucket_data_center", _without(D, "changes"), "missing field 'changes'"),
        (
            "bitbucket_data_center",
            _with(D, [{}] * 1001, "changes"),
            "field 'changes' has more than 1000 entries",
        ),
        ("bitbucket_data_center", _without(D, "changes", 0, "ref"), "missing field 'changes[0].ref'"),
        ("bitbucket_data_center", _with(D, 5, "changes", 0, "ref", "id"), "'changes[0].ref.id' must be"),
        (
            "bitbucket_data_center",
            _with(D, "x" * 39, "changes", 0, "toHash"),
            "'changes[0].toHash' must be a commit",
        ),
        ("bitbucket_data_center", _without(D, "changes", 0, "type"), "missing field 'changes[0].type'"),
        ("bitbucket_data_center", _without(D, "repository", "project"), "missing field 'repository.project'"),
        (
            "bitbucket_data_center",
            _with(D, "", "repository", "project", "key"),
            "'repository.project.key' must",
        ),
        ("bitbucket_data_center", _with(D, "a/b", "repository", "slug"), "field 'repository' does not name"),
    ],
)
def test_malformed_payloads_are_400(provider: Provider, payload: object, says: str) -> None:
    error = _refused(provider, payload)
    assert error.status == 400
    assert says in error.message


def test_oversized_body_is_413() -> None:
    error = _refused("github", b" " * (MAX_BODY_BYTES + 1))
    assert error.status == 413


def test_messages_do_not_repeat_the_payload() -> None:
    marker = "leaked-value-" + "z" * 30
    for payload in (_with(G, marker, "after"), _with(G, marker, "repository", "full_name")):
        assert marker not in _refused("github", payload).message


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("provider", PROVIDERS)
def test_signature_valid_and_invalid(provider: Provider) -> None:
    body = _body(FIXTURES[provider])
    signed = {**PUSH_HEADERS[provider], **sign(provider, body, SECRET)}
    assert signature_valid(provider, signed, body, SECRET)
    assert not signature_valid(provider, signed, body, b"another-secret")
    assert not signature_valid(provider, signed, body + b" ", SECRET)
    assert not signature_valid(provider, PUSH_HEADERS[provider], body, SECRET)
    assert not signature_valid(provider, signed, body, b"")


def test_signature_headers_per_provider() -> None:
    body = b"{}"
    github = sign("github", body, SECRET)
    assert list(github) == ["X-Hub-Signature-256"]
    assert github["X-Hub-Signature-256"].startswith("sha256=")
    assert list(sign("bitbucket_cloud", body, SECRET)) == ["X-Hub-Signature"]
    assert list(sign("bitbucket_data_center", body, SECRET)) == ["X-Hub-Signature"]
    # GitHub's legacy header name carries SHA-1; it never authenticates a GitHub delivery here
    assert not signature_valid("github", {"X-Hub-Signature": github["X-Hub-Signature-256"]}, body, SECRET)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256=",
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "SHA256={hex}",
        "sha512={hex}",
        "{hex}",
        "sha256={hex}00",
        "sha256={hex_short}",
        "sha256=zz{hex_tail}",
        "sha256=\u00e9{hex_tail}",
    ],
)
def test_malformed_signature_headers(value: str) -> None:
    body = _body(GITHUB_PUSH)
    good = sign("github", body, SECRET)["X-Hub-Signature-256"].removeprefix("sha256=")
    header = value.format(hex=good, hex_short=good[:-2], hex_tail=good[2:])
    assert not signature_valid("github", {"X-Hub-Signature-256": header}, body, SECRET)


def test_signature_accepts_uppercase_hex_and_surrounding_space() -> None:
    body = b"{}"
    good = sign("bitbucket_cloud", body, SECRET)["X-Hub-Signature"]
    header = " sha256=" + good.removeprefix("sha256=").upper() + " "
    assert signature_valid("bitbucket_cloud", {"x-hub-signature": header}, body, SECRET)


def test_signature_of_unknown_provider_is_invalid() -> None:
    assert not signature_valid("gitlab", {"X-Hub-Signature": "sha256=00"}, b"", SECRET)  # type: ignore[arg-type]


@settings(max_examples=max(200, int(os.environ.get("MOORAGE_FUZZ_EXAMPLES", "0"))), deadline=None)
@given(
    st.sampled_from(PROVIDERS),
    st.binary(max_size=512),
    st.binary(min_size=1, max_size=64),
    st.binary(max_size=512),
)
def test_signature_round_trips_and_any_change_breaks_it(
    provider: Provider, body: bytes, secret: bytes, other: bytes
) -> None:
    headers = sign(provider, body, secret)
    assert signature_valid(provider, headers, body, secret)
    if other != body:
        assert not signature_valid(provider, headers, other, secret)


# --------------------------------------------------------------------------- fuzzing

_KEYS = [
    "ref",
    "after",
    "deleted",
    "repository",
    "full_name",
    "push",
    "changes",
    "new",
    "old",
    "type",
    "name",
    "target",
    "hash",
    "slug",
    "project",
    "key",
    "id",
    "toHash",
]
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from([AFTER, ZEROS, "refs/heads/main", "refs/tags/v1", "a/b", "branch", "BRANCH", "DELETE"]),
)
JSON = st.recursive(
    _LEAVES,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
_CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "", "text/plain"])


def _outcome(provider: Provider, headers: dict[str, str], body: bytes) -> WebhookEvent | WebhookError:
    """What parse returns or raises (anything but a WebhookError propagates and fails the test)."""
    try:
        return parse(provider, headers, body)
    except WebhookError as error:
        return error


def _assert_only_webhook_errors(provider: Provider, headers: dict[str, str], body: bytes) -> None:
    outcome = _outcome(provider, headers, body)
    if isinstance(outcome, WebhookError):
        assert outcome.status in (400, 413)
        assert outcome.message
    else:
        assert outcome.kind == "push"
        for push in outcome.pushes:
            assert push.after is None or len(push.after) in (40, 64)


def _push_headers(provider: Provider, content_type: str) -> dict[str, str]:
    return {**PUSH_HEADERS[provider], "Content-Type": content_type}


@settings(max_examples=max(200, int(os.environ.get("MOORAGE_FUZZ_EXAMPLES", "0"))), deadline=None)
@given(st.sampled_from(PROVIDERS), _CONTENT_TYPES, st.binary(max_size=300))
def test_parse_arbitrary_bytes(provider: Provider, content_type: str, body: bytes) -> None:
    _assert_only_webhook_errors(provider, _push_headers(provider, content_type), body)


@settings(max_examples=max(200, int(os.environ.get("MOORAGE_FUZZ_EXAMPLES", "0"))), deadline=None)
@given(st.sampled_from(PROVIDERS), _CONTENT_TYPES, JSON)
def test_parse_arbitrary_json(provider: Provider, content_type: str, value: object) -> None:
    body = _body(value)
    if content_type == "application/x-www-form-urlencoded":
        body = urlencode({"payload": body}).encode()
    _assert_only_webhook_errors(provider, _push_headers(provider, content_type), body)


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


@settings(max_examples=max(200, int(os.environ.get("MOORAGE_FUZZ_EXAMPLES", "0"))), deadline=None)
@given(st.data())
def test_parse_realistic_payloads_with_one_field_changed(data: st.DataObject) -> None:
    provider: Provider = data.draw(st.sampled_from(PROVIDERS))
    payload = FIXTURES[provider]
    path = data.draw(st.sampled_from(_paths(payload)))
    delete = data.draw(st.booleans())
    changed = _without(payload, *path) if delete else _with(payload, data.draw(JSON), *path)
    _assert_only_webhook_errors(provider, PUSH_HEADERS[provider], _body(changed))
