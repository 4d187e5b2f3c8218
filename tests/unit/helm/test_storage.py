"""Helm release storage read from Secrets built exactly as Helm's Secret driver stores them."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.helm import storage
from moorage.helm.storage import (
    Release,
    ReleaseDecodeError,
    _parse_time,
    decode_release,
    latest,
    values_digest,
)

MANIFEST = """---
# Source: podinfo/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: podinfo
"""
SECRET_VALUES = {"auth": {"password": "s3cr3t-hunter2"}, "replicaCount": 2.0, "image": {"tag": "6.7.0"}}


def release_doc(
    name: str = "podinfo",
    namespace: str = "apps",
    version: int = 3,
    status: str = "deployed",
    config: Any = None,
    last_deployed: str = "2026-05-01T10:11:12.123456789Z",
) -> dict[str, Any]:
    """The JSON Helm marshals for a release (chart templates and files elided)."""
    return {
        "name": name,
        "namespace": namespace,
        "version": version,
        "info": {
            "first_deployed": "2026-04-01T09:00:00.5Z",
            "last_deployed": last_deployed,
            "deleted": "",
            "description": "Upgrade complete",
            "status": status,
        },
        "chart": {
            "metadata": {"name": "podinfo", "version": "6.7.0", "appVersion": "6.7.0", "apiVersion": "v2"},
            "templates": [],
            "values": {"replicaCount": 1},
        },
        "config": SECRET_VALUES if config is None else config,
        "manifest": MANIFEST,
        "hooks": [],
    }


def helm_encode(payload: bytes, *, compress: bool = True) -> str:
    """Helm: base64(gzip(json)); the API server: base64 of that again in data.release."""
    helm_string = base64.b64encode(gzip.compress(payload) if compress else payload)
    return base64.b64encode(helm_string).decode()


def secret_of(doc: dict[str, Any] | None = None, *, release_data: str | None = None) -> dict[str, Any]:
    doc = release_doc() if doc is None else doc
    name, version = doc["name"], doc["version"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{version}",
            "namespace": doc["namespace"],
            "labels": {
                "owner": "helm",
                "name": name,
                "status": doc["info"]["status"],
                "version": str(version),
                "moorage.dev/addon": name,
            },
        },
        "data": {
            "release": release_data if release_data is not None else helm_encode(json.dumps(doc).encode())
        },
    }


# --------------------------------------------------------------------------- decode_release


def test_decode_release_fields() -> None:
    r = decode_release(secret_of())
    assert (r.name, r.namespace, r.revision, r.status) == ("podinfo", "apps", 3, "deployed")
    assert (r.chart_name, r.chart_version, r.app_version) == ("podinfo", "6.7.0", "6.7.0")
    assert r.last_deployed == datetime(2026, 5, 1, 10, 11, 12, 123456, tzinfo=UTC)
    assert r.values == SECRET_VALUES
    assert r.manifest == MANIFEST
    assert r.secret_name == "sh.helm.release.v1.podinfo.v3"
    assert r.labels == {
        "owner": "helm",
        "name": "podinfo",
        "status": "deployed",
        "version": "3",
        "moorage.dev/addon": "podinfo",
    }
    assert not r.pending


def test_decode_uncompressed_release() -> None:
    # Helm reads releases whose payload is not gzip (older writers); so does Moorage
    data = helm_encode(json.dumps(release_doc(version=1)).encode(), compress=False)
    assert decode_release(secret_of(release_doc(version=1), release_data=data)).revision == 1


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "pending-rollback"])
def test_pending_statuses(status: str) -> None:
    assert decode_release(secret_of(release_doc(status=status))).pending


def test_missing_optional_parts_get_defaults() -> None:
    doc = {"name": "bare", "namespace": "ns", "version": 1}
    r = decode_release(
        secret_of({**doc, "info": {"status": "failed"}}, release_data=helm_encode(json.dumps(doc).encode()))
    )
    assert (r.status, r.chart_name, r.values, r.manifest, r.last_deployed) == ("unknown", "", {}, "", None)


def test_repr_never_shows_values() -> None:
    r = decode_release(secret_of())
    text = repr(r)
    assert text == "Release(apps/podinfo rev 3 deployed podinfo-6.7.0)"
    assert str(r) == text
    assert "s3cr3t" not in text
    assert "hunter2" not in text
    assert "s3cr3t" not in str([r]) + str({"r": r})


@pytest.mark.parametrize("data", [None, {}, {"release": ""}, {"other": "eA=="}])
def test_missing_data_release(data: dict[str, str] | None) -> None:
    secret = secret_of()
    secret["data"] = data
    with pytest.raises(
        ReleaseDecodeError, match=r"^Secret sh\.helm\.release\.v1\.podinfo\.v3 has no data\.release$"
    ):
        decode_release(secret)


@pytest.mark.parametrize(
    "data",
    [
        "not base64!",
        base64.b64encode(b"not base64 inside either!").decode(),  # the Secret layer is fine, Helm's is not
        "QUJD",  # valid outer base64 of "ABC", which is not valid (unpadded) inner base64
    ],
)
def test_bad_base64(data: str) -> None:
    with pytest.raises(ReleaseDecodeError, match=r"data\.release is not base64"):
        decode_release(secret_of(release_data=data))


def test_single_base64_layer_is_refused() -> None:
    # someone stored Helm's string without the Secret's own encoding: the inner text is not base64
    once = base64.b64encode(gzip.compress(json.dumps(release_doc()).encode())).decode()
    with pytest.raises(ReleaseDecodeError):
        decode_release(secret_of(release_data=once))


def test_corrupt_gzip() -> None:
    packed = bytearray(gzip.compress(json.dumps(release_doc()).encode()))
    packed[-8] ^= 0xFF  # CRC32 of the trailer no longer matches
    data = base64.b64encode(base64.b64encode(bytes(packed))).decode()
    with pytest.raises(ReleaseDecodeError, match="is not valid gzip"):
        decode_release(secret_of(release_data=data))


def test_truncated_gzip() -> None:
    packed = gzip.compress(json.dumps(release_doc()).encode())[:40]
    data = base64.b64encode(base64.b64encode(packed)).decode()
    with pytest.raises(ReleaseDecodeError, match="is not valid gzip"):
        decode_release(secret_of(release_data=data))


@pytest.mark.parametrize("payload", [b"\x00\x01binary", b"{not json", b"name: podinfo\n"])
@pytest.mark.parametrize("compress", [True, False])
def test_not_json(payload: bytes, compress: bool) -> None:
    with pytest.raises(ReleaseDecodeError, match="release is not JSON"):
        decode_release(secret_of(release_data=helm_encode(payload, compress=compress)))


@pytest.mark.parametrize("payload", [b"null", b"[]", b'"release"'])
def test_json_that_is_not_an_object(payload: bytes) -> None:
    with pytest.raises(ReleaseDecodeError):
        decode_release(secret_of(release_data=helm_encode(payload)))


def test_gzip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "MAX_RELEASE_BYTES", 4096)
    doc = release_doc(config={"padding": "x" * 100_000})
    data = helm_encode(json.dumps(doc).encode())
    assert len(data) < 4096  # small on the wire, large once inflated
    with pytest.raises(ReleaseDecodeError, match="release is larger than"):
        decode_release(secret_of(doc, release_data=data))


def test_release_at_the_size_limit_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = json.dumps(release_doc()).encode()
    monkeypatch.setattr(storage, "MAX_RELEASE_BYTES", len(payload))
    assert decode_release(secret_of(release_data=helm_encode(payload))).revision == 3
    monkeypatch.setattr(storage, "MAX_RELEASE_BYTES", len(payload) - 1)
    with pytest.raises(ReleaseDecodeError, match="larger than"):
        decode_release(secret_of(release_data=helm_encode(payload)))


# --------------------------------------------------------------------------- values_digest


def test_values_digest_ignores_key_order_and_number_spelling() -> None:
    a = {"replicaCount": 2, "image": {"tag": "1.0", "pullPolicy": "IfNotPresent"}, "ports": [80, 443.0]}
    b = {"ports": [80.0, 443], "image": {"pullPolicy": "IfNotPresent", "tag": "1.0"}, "replicaCount": 2.0}
    assert values_digest(a) == values_digest(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"replicas": 2}, {"replicas": 3}),
        ({"replicas": 2}, {"replicas": 2.5}),
        ({"replicas": 2}, {"replicas": "2"}),
        ({"tag": "1.0"}, {"tag": 1.0}),
        ({"list": [1, 2]}, {"list": [2, 1]}),
        ({"a": None}, {}),
        ({"a": {"b": 1}}, {"a.b": 1}),
    ],
)
def test_values_digest_tells_different_values_apart(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert values_digest(a) != values_digest(b)


def test_values_digest_of_nothing() -> None:
    assert values_digest(None) == values_digest({})
    assert len(values_digest({})) == 64


def test_values_digest_survives_the_helm_round_trip() -> None:
    # what the user asked for (ints) vs what Helm stored (every number a float64)
    asked = {"replicaCount": 2, "resources": {"limits": {"cpu": 1}}, "ports": [8080]}
    stored = decode_release(
        secret_of(release_doc(config=json.loads(json.dumps(asked).replace("2", "2.0"))))
    ).values
    assert stored["replicaCount"] == 2.0
    assert isinstance(stored["replicaCount"], float)
    assert values_digest(stored) == values_digest(asked)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)


def floated(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: floated(v) for k, v in reversed(list(node.items()))}
    if isinstance(node, list):
        return [floated(v) for v in node]
    if isinstance(node, int) and not isinstance(node, bool):
        return float(node)
    return node


@settings(max_examples=60)
@given(st.dictionaries(st.text(max_size=5), json_values, max_size=4))
def test_values_digest_property(values: dict[str, Any]) -> None:
    assert values_digest(floated(values)) == values_digest(values)


# --------------------------------------------------------------------------- latest


def rel(name: str, namespace: str, revision: int) -> Release:
    return Release(
        name=name,
        namespace=namespace,
        revision=revision,
        status="superseded",
        chart_name="c",
        chart_version="1",
        app_version="1",
        last_deployed=None,
        values={},
        manifest="",
        secret_name=f"sh.helm.release.v1.{name}.v{revision}",
        labels={},
    )


def test_latest_picks_highest_revision_per_namespace_and_name() -> None:
    releases = [rel("web", "apps", 2), rel("web", "apps", 10), rel("web", "apps", 9), rel("web", "other", 1)]
    releases += [rel("db", "apps", 4), rel("db", "apps", 3)]
    found = latest(releases)
    assert {key: r.revision for key, r in found.items()} == {
        ("apps", "web"): 10,
        ("other", "web"): 1,
        ("apps", "db"): 4,
    }
    assert found[("apps", "web")].secret_name == "sh.helm.release.v1.web.v10"  # not "v9" by text order
    assert latest([]) == {}


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]), st.integers(1, 50)), max_size=12
    )
)
def test_latest_property(triples: list[tuple[str, str, int]]) -> None:
    found = latest(rel(n, ns, r) for n, ns, r in triples)
    expected: dict[tuple[str, str], int] = {}
    for n, ns, r in triples:
        expected[(ns, n)] = max(r, expected.get((ns, n), 0))
    assert {key: r.revision for key, r in found.items()} == expected


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-01T10:11:12.123456789Z", datetime(2026, 5, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2026-05-01T10:11:12.1Z", datetime(2026, 5, 1, 10, 11, 12, 100000, tzinfo=UTC)),
        ("2026-05-01T10:11:12.000001Z", datetime(2026, 5, 1, 10, 11, 12, 1, tzinfo=UTC)),
        ("2026-05-01T10:11:12Z", datetime(2026, 5, 1, 10, 11, 12, tzinfo=UTC)),
        ("2026-05-01T12:11:12+02:00", datetime(2026, 5, 1, 10, 11, 12, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
        (None, None),
        (1714557072, None),
    ],
)
def test_parse_go_time(text: Any, expected: datetime | None) -> None:
    parsed = _parse_time(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-05-01T12:11:12.123456789+02:00",
            datetime(2026, 5, 1, 12, 11, 12, 123456, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2026-05-01T03:11:12.5-07:00", datetime(2026, 5, 1, 10, 11, 12, 500000, tzinfo=UTC)),
    ],
)
def test_parse_go_time_with_offset_and_fraction(text: str, expected: datetime) -> None:
    parsed = _parse_time(text)
    assert parsed is not None
    assert parsed.tzinfo is not None
    assert parsed == expected
