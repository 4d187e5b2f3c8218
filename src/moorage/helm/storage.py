"""Helm's release storage read directly: one LIST of the `owner=helm` Secrets instead of a `helm`
process per release. Each Secret's `data.release` is base64(gzip(JSON)) inside the Secret's own
base64, as Helm's storage driver writes it."""

import base64
import binascii
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moorage.kube.client import KubeClient

MAX_RELEASE_BYTES = 64 << 20  # a decompressed release larger than this is refused (gzip bomb)
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


class ReleaseDecodeError(Exception):
    pass


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    revision: int
    status: str
    chart_name: str
    chart_version: str
    app_version: str
    last_deployed: datetime | None
    values: dict[str, Any]  # the user-supplied values (Helm's `config`); may hold secrets
    manifest: str
    secret_name: str
    labels: dict[str, str]  # the storage Secret's labels, custom release labels included
    description: str = ""  # helm's `info.description` ("Install complete", "Rollback to 1", …)

    def __repr__(self) -> str:  # values may hold decrypted secrets
        return (
            f"Release({self.namespace}/{self.name} rev {self.revision} {self.status} "
            f"{self.chart_name}-{self.chart_version})"
        )

    @property
    def pending(self) -> bool:
        return self.status in PENDING


def values_digest(values: Any) -> str:
    """A digest of values that does not depend on key order or on int/float spelling of numbers."""

    def canonical(node: Any) -> Any:
        if isinstance(node, dict):
            return {str(k): canonical(v) for k, v in node.items()}
        if isinstance(node, list):
            return [canonical(v) for v in node]
        if isinstance(node, float) and node.is_integer():
            return int(node)  # Helm stores every number as float64
        return node

    text = json.dumps(canonical(values or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_GO_TIME = re.compile(r"^(?P<head>[^.]+?)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})?$")


def _parse_time(value: Any) -> datetime | None:
    """Go's RFC 3339 with up to nanoseconds, as Helm writes `last_deployed` (Python takes microseconds)."""
    if not isinstance(value, str) or not (match := _GO_TIME.match(value)):
        return None
    fraction = (match["fraction"] or "")[:6]
    zone = match["zone"] or ""
    text = (
        match["head"]
        + (f".{fraction.ljust(6, '0')}" if fraction else "")
        + ("+00:00" if zone == "Z" else zone)
    )
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decode_release(secret: dict[str, Any]) -> Release:
    """A release from its storage Secret (as the API returns it)."""
    name = secret.get("metadata", {}).get("name", "?")
    encoded = (secret.get("data") or {}).get("release")
    if not encoded:
        raise ReleaseDecodeError(f"Secret {name} has no data.release")
    try:
        inner = base64.b64decode(base64.b64decode(encoded, validate=True), validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseDecodeError(f"Secret {name}: data.release is not base64") from None
    if inner[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(inner)) as f:
                inner = f.read(MAX_RELEASE_BYTES + 1)
        except (OSError, EOFError, zlib.error):
            raise ReleaseDecodeError(f"Secret {name}: data.release is not valid gzip") from None
        if len(inner) > MAX_RELEASE_BYTES:
            raise ReleaseDecodeError(f"Secret {name}: release is larger than {MAX_RELEASE_BYTES >> 20} MiB")
    try:
        doc = json.loads(inner)
    except ValueError:
        raise ReleaseDecodeError(f"Secret {name}: release is not JSON") from None
    if not isinstance(doc, dict):
        raise ReleaseDecodeError(f"Secret {name}: release is not a JSON object")
    info, chart = doc.get("info") or {}, (doc.get("chart") or {}).get("metadata") or {}
    return Release(
        name=doc.get("name", ""),
        namespace=doc.get("namespace", ""),
        revision=int(doc.get("version", 0)),
        status=info.get("status", "unknown"),
        chart_name=chart.get("name", ""),
        chart_version=chart.get("version", ""),
        app_version=chart.get("appVersion", ""),
        last_deployed=_parse_time(info.get("last_deployed")),
        values=doc.get("config") or {},
        manifest=doc.get("manifest", ""),
        secret_name=name,
        labels=dict(secret.get("metadata", {}).get("labels") or {}),
        description=str(info.get("description") or ""),
    )


def latest(releases: Iterable[Release]) -> dict[tuple[str, str], Release]:
    """The newest revision of each (namespace, name)."""
    newest: dict[tuple[str, str], Release] = {}
    for r in releases:
        key = (r.namespace, r.name)
        if key not in newest or r.revision > newest[key].revision:
            newest[key] = r
    return newest


async def read_releases(
    kube: KubeClient, namespace: str | None = None, name: str | None = None
) -> tuple[list[Release], list[str]]:
    """Every stored revision (in `namespace`, of release `name`), plus a message per unreadable Secret."""
    selector = "owner=helm" + (f",name={name}" if name else "")
    secrets = await kube.list("v1", "Secret", namespace, label_selector=selector)
    releases, problems = [], []
    for secret in secrets:
        if secret.get("type") != "helm.sh/release.v1":
            continue
        try:
            releases.append(decode_release(secret))
        except ReleaseDecodeError as e:
            problems.append(str(e))
    return releases, problems


async def mark_failed(kube: KubeClient, release: Release, description: str) -> None:
    """Unlock a release stuck in pending-*: rewrite its stored revision as `failed`, as `helm` itself
    would have had it not been killed. `helm` refuses every operation on a pending release and has no
    command to unlock one, so this is the one write to release storage that bypasses the helm CLI."""
    secret = await kube.get("v1", "Secret", release.secret_name, release.namespace)
    if secret is None:
        return
    inner = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    if inner[:2] == b"\x1f\x8b":
        inner = gzip.decompress(inner)
    doc = json.loads(inner)
    doc.setdefault("info", {})["status"] = "failed"
    doc["info"]["description"] = description
    packed = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(doc).encode()))).decode()
    labels = dict(secret["metadata"].get("labels") or {})
    labels["status"] = "failed"
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{release.namespace}/secrets/{release.secret_name}",
        body={"metadata": {"labels": labels}, "data": {"release": packed}},
        content_type="application/merge-patch+json",
        what=f"unlock release {release.namespace}/{release.name}",
    )
