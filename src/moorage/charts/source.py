"""Read a Helm repository (index.yaml, chart archives) or an OCI registry (tags, manifests, chart
layers) with an optional credential. Credentials stay in memory: basic auth headers, an OCI bearer
token exchanged for them, and a client key loaded through an in-memory file (memfd). Every answer
is bounded in size; a failure is a ChartSourceError naming the registry and the reason (authentication
failed, not found, unreachable, invalid answer), never the credential.

An OCI registry on a loopback address is spoken to over plain HTTP (as `helm --plain-http` does for
the test and demo registries); everything else over HTTPS unless the URL says http://."""

import asyncio
import base64
import functools
import hashlib
import ipaddress
import json
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import yaml

MAX_INDEX_BYTES = 64 << 20
MAX_ARCHIVE_BYTES = 20 << 20
MAX_MANIFEST_BYTES = 4 << 20
MAX_TAGS = 10_000
TIMEOUT_SECONDS = 30.0
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
Reason = Literal["auth", "not_found", "unreachable", "invalid"]
# checks that a connection to (host, port) is allowed (the server's egress policy) and answers the
# addresses it checked, which the connection then uses (so a name cannot resolve elsewhere a moment
# later); raises to refuse
Vet = Callable[[str, int], Awaitable[list[str]]]
REASONS: dict[str, str] = {
    "auth": "authentication failed",
    "not_found": "not found",
    "unreachable": "unreachable",
    "invalid": "invalid answer",
}
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_NEXT = re.compile(r'<([^>]+)>;\s*rel="?next"?')
MAX_CATALOG_PAGES = 50


class ChartSourceError(Exception):
    """`message` names the registry and the reason; safe to show (no credential, no URL userinfo)."""

    def __init__(self, registry: str, reason: Reason, detail: str = "") -> None:
        self.registry = registry
        self.reason = reason
        self.message = f"registry {registry}: {REASONS[reason]}" + (f" ({detail})" if detail else "")
        super().__init__(self.message)

    @property
    def temporary(self) -> bool:
        return self.reason == "unreachable"


@dataclass(frozen=True, repr=False)
class RegistryAuth:
    """A registry login: user and password or token, optional CA bundle and client certificate."""

    username: str
    password: str
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None

    def __repr__(self) -> str:
        return f"RegistryAuth(username={self.username!r}, password hidden)"

    __str__ = __repr__

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.client_key) if s]

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RegistryAuth":
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            username=str(data.get("username") or ""),
            password=str(data.get("password") or ""),
            ca_bundle=text("ca_bundle"),
            client_cert=text("client_cert"),
            client_key=text("client_key"),
        )


@dataclass
class ChartVersion:
    name: str
    version: str
    created: str | None = None
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    app_version: str | None = None
    digest: str | None = None  # sha256 of the archive (HTTP index) or of the chart layer (OCI)
    urls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "created": self.created,
            "app_version": self.app_version,
            "description": self.description,
            "digest": self.digest,
        }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def kind_of(url: str) -> Literal["http", "oci"]:
    return "oci" if url.startswith("oci://") else "http"


def display(url: str) -> str:
    """The registry URL without any userinfo (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


@contextmanager
def _memory_file(data: str) -> Iterator[str]:
    fd = os.memfd_create("moorage-registry", os.MFD_CLOEXEC)
    try:
        os.write(fd, data.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


@functools.cache
def _default_context() -> ssl.SSLContext:
    # the system's CAs, loaded once (~30 ms each time otherwise)
    return ssl.create_default_context()


def ssl_context(auth: RegistryAuth | None) -> ssl.SSLContext:
    if auth is None or not (auth.ca_bundle or (auth.client_cert and auth.client_key)):
        return _default_context()
    context = ssl.create_default_context()
    if auth is not None and auth.ca_bundle:
        context.load_verify_locations(cadata=auth.ca_bundle)
    if auth is not None and auth.client_cert and auth.client_key:
        with _memory_file(auth.client_cert) as cert, _memory_file(auth.client_key) as key:
            context.load_cert_chain(cert, key)
    return context


def _versions(name: str, entries: Any) -> list[ChartVersion]:
    out = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or not isinstance(e.get("version"), str | int | float):
            continue
        created = e.get("created")
        keywords = e.get("keywords")
        out.append(
            ChartVersion(
                name=name,
                version=str(e["version"]),
                created=str(created) if created is not None else None,
                description=str(e.get("description") or "")[:1000],
                keywords=[str(k) for k in keywords][:50] if isinstance(keywords, list) else [],
                app_version=str(e["appVersion"]) if e.get("appVersion") is not None else None,
                digest=str(e["digest"]) if isinstance(e.get("digest"), str) else None,
                urls=[str(u) for u in e.get("urls") or [] if isinstance(u, str)][:10],
            )
        )
    return out


def parse_index(data: bytes, registry: str) -> dict[str, list[ChartVersion]]:
    """index.yaml → chart name → versions (as listed). Untrusted: only ChartSourceError comes out."""
    try:
        doc = yaml.load(data, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        raise ChartSourceError(registry, "invalid", "index.yaml is not YAML") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
        raise ChartSourceError(registry, "invalid", "index.yaml has no entries")
    return {str(name): _versions(str(name), entries) for name, entries in doc["entries"].items()}


@dataclass
class Answer:
    status: int  # 200, or 304 when the ETag still matches
    body: bytes
    etag: str | None
    headers: httpx.Headers


class ChartSource:
    """One registry. Use as `async with ChartSource(url, auth) as source:`."""

    def __init__(
        self,
        url: str,
        auth: RegistryAuth | None = None,
        *,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        vet: Vet | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.auth = auth
        self.name = display(url)
        self.kind = kind_of(url)
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if self.kind == "oci":
            scheme = "http" if is_loopback(host) else "https"
            self._origin = f"{scheme}://{parts.netloc.rpartition('@')[2]}"
            self._repo = parts.path.strip("/")
        else:
            self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
            self._repo = ""
        plain = (self.kind == "oci" and is_loopback(host)) or parts.scheme == "http"
        if auth is not None and plain and not is_loopback(host):
            raise ChartSourceError(self.name, "auth", "a credential is never sent over plain HTTP")
        hooks: dict[str, list[Callable[[httpx.Request], Awaitable[None]]]] = {}
        if vet is not None:
            name = self.name

            async def check(request: httpx.Request) -> None:
                # every request, redirects and an index's archive URLs on other hosts included
                url = request.url
                port = url.port or (443 if url.scheme == "https" else 80)
                try:
                    addresses = await vet(url.host, port)
                except ChartSourceError:
                    raise
                except Exception as e:
                    raise ChartSourceError(name, "unreachable", str(e)[:200]) from None
                if addresses and addresses[0] != url.host:
                    # connect to the checked address; TLS still verifies the certificate for the
                    # name (SNI), and the Host header keeps the name
                    request.extensions["sni_hostname"] = url.host
                    request.url = url.copy_with(host=addresses[0])

            hooks["request"] = [check]
        self._client = httpx.AsyncClient(
            timeout=timeout,
            verify=ssl_context(auth),
            follow_redirects=True,  # httpx drops Authorization on a redirect to another origin
            transport=transport,
            headers={"User-Agent": "moorage"},
            event_hooks=hooks,
        )
        self._tokens: dict[str, str] = {}

    async def __aenter__(self) -> "ChartSource":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._client.aclose()

    # -- HTTP ------------------------------------------------------------------------------------

    def _same_origin(self, url: str) -> bool:
        p = urlsplit(url)
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}" == self._origin

    async def _get(
        self,
        url: str,
        *,
        max_bytes: int,
        accept: str | None = None,
        etag: str | None = None,
        scope: str | None = None,
    ) -> Answer:
        headers: dict[str, str] = {}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        if self.auth is not None and self._same_origin(url):
            token = self._tokens.get(scope or "")
            headers["Authorization"] = f"Bearer {token}" if token else self.auth.basic()
        try:
            answer = await self._request(url, headers, max_bytes)
            if answer.status == 401 and self.kind == "oci":
                challenge = answer.headers.get("WWW-Authenticate", "")
                if challenge.lower().startswith("bearer"):
                    token = await self._token(challenge, scope)
                    self._tokens[scope or ""] = token
                    headers["Authorization"] = f"Bearer {token}"
                    answer = await self._request(url, headers, max_bytes)
        except httpx.TimeoutException:
            raise ChartSourceError(self.name, "unreachable", "timed out") from None
        except (httpx.TransportError, ssl.SSLError) as e:
            raise ChartSourceError(self.name, "unreachable", _transport_reason(e)) from None
        if answer.status in (401, 403):
            why = "no credential is set" if self.auth is None else f"HTTP {answer.status}"
            raise ChartSourceError(self.name, "auth", why)
        if answer.status == 404:
            raise ChartSourceError(self.name, "not_found", urlsplit(url).path)
        if answer.status >= 500 or answer.status == 429:
            raise ChartSourceError(self.name, "unreachable", f"HTTP {answer.status}")
        if answer.status not in (200, 304):
            raise ChartSourceError(self.name, "invalid", f"HTTP {answer.status}")
        return answer

    async def _request(self, url: str, headers: dict[str, str], max_bytes: int) -> Answer:
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                await response.aclose()
                return Answer(response.status_code, b"", response.headers.get("ETag"), response.headers)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ChartSourceError(self.name, "invalid", f"answer larger than {max_bytes >> 20} MiB")
                chunks.append(chunk)
            return Answer(200, b"".join(chunks), response.headers.get("ETag"), response.headers)

    async def _token(self, challenge: str, scope: str | None) -> str:
        """The OCI token exchange: the realm named by the registry's challenge, asked with the
        credential (or anonymously), answers a bearer token for `scope`."""
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise ChartSourceError(self.name, "invalid", "the registry's auth challenge has no realm")
        if scope and "scope" not in params:
            params["scope"] = scope
        headers = {"Authorization": self.auth.basic()} if self.auth is not None else {}
        response = await self._client.get(realm, params=params, headers=headers)
        if response.status_code in (401, 403):
            why = (
                "no credential is set"
                if self.auth is None
                else f"HTTP {response.status_code} from the token service"
            )
            raise ChartSourceError(self.name, "auth", why)
        if response.status_code != 200 or len(response.content) > MAX_MANIFEST_BYTES:
            raise ChartSourceError(
                self.name, "invalid", f"token service answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ChartSourceError(self.name, "invalid", "the token service gave no token")
        return token

    # -- Helm repository -------------------------------------------------------------------------

    async def index(self, etag: str | None = None) -> tuple[dict[str, list[ChartVersion]] | None, str | None]:
        """The repository's charts; (None, etag) when `etag` still matches (nothing downloaded)."""
        answer = await self._get(f"{self.url}/index.yaml", max_bytes=MAX_INDEX_BYTES, etag=etag)
        if answer.status == 304:
            return None, etag
        # a big index takes a second of pure Python to compose: off the event loop
        return await asyncio.to_thread(parse_index, answer.body, self.name), answer.etag

    # -- OCI registry ----------------------------------------------------------------------------

    def _repository(self, chart: str) -> str:
        return f"{self._repo}/{chart}".strip("/")

    async def tags(self, chart: str) -> list[str]:
        repo = self._repository(chart)
        answer = await self._get(
            f"{self._origin}/v2/{repo}/tags/list",
            max_bytes=MAX_MANIFEST_BYTES,
            scope=f"repository:{repo}:pull",
        )
        try:
            tags = json.loads(answer.body).get("tags") or []
        except (ValueError, AttributeError):
            raise ChartSourceError(self.name, "invalid", "the tag list is not JSON") from None
        return [str(t) for t in tags[:MAX_TAGS]]

    async def catalog(self) -> list[str]:
        """The chart names under this registry's path (the registry's /v2/_catalog, 1,000 a page;
        some registries, GHCR among them, do not offer it: then an empty list)."""
        names: list[str] = []
        url: str | None = f"{self._origin}/v2/_catalog?n=1000"
        for _ in range(MAX_CATALOG_PAGES):
            if url is None:
                break
            try:
                answer = await self._get(url, max_bytes=MAX_MANIFEST_BYTES, scope="registry:catalog:*")
            except ChartSourceError as e:
                if e.reason in ("not_found", "auth", "invalid") and not names:
                    return []
                raise
            try:
                names += [str(n) for n in json.loads(answer.body).get("repositories") or []]
            except (ValueError, AttributeError):
                raise ChartSourceError(self.name, "invalid", "the catalog is not JSON") from None
            link = _NEXT.search(answer.headers.get("Link", ""))
            url = urljoin(self._origin, link.group(1)) if link else None
        prefix = f"{self._repo}/" if self._repo else ""
        return sorted(n[len(prefix) :] for n in names if n.startswith(prefix) and "/" not in n[len(prefix) :])

    async def manifest(
        self, chart: str, version: str, etag: str | None = None
    ) -> tuple[dict[str, Any] | None, str | None]:
        repo = self._repository(chart)
        answer = await self._get(
            f"{self._origin}/v2/{repo}/manifests/{version}",
            max_bytes=MAX_MANIFEST_BYTES,
            accept=_MANIFEST_TYPES,
            etag=etag,
            scope=f"repository:{repo}:pull",
        )
        if answer.status == 304:
            return None, etag
        try:
            manifest = json.loads(answer.body)
        except ValueError:
            raise ChartSourceError(self.name, "invalid", "the manifest is not JSON") from None
        if not isinstance(manifest, dict):
            raise ChartSourceError(self.name, "invalid", "the manifest is not an object")
        return manifest, answer.etag or answer.headers.get("Docker-Content-Digest")

    async def config(self, chart: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """The OCI config blob of a chart manifest: the chart's Chart.yaml as JSON."""
        digest = (manifest.get("config") or {}).get("digest")
        if not isinstance(digest, str):
            return {}
        data = await self.blob(chart, digest, MAX_MANIFEST_BYTES)
        try:
            value = json.loads(data)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    async def blob(self, chart: str, digest: str, max_bytes: int = MAX_ARCHIVE_BYTES) -> bytes:
        repo = self._repository(chart)
        answer = await self._get(
            f"{self._origin}/v2/{repo}/blobs/{digest}", max_bytes=max_bytes, scope=f"repository:{repo}:pull"
        )
        _check_digest(self.name, answer.body, digest)
        return answer.body

    # -- both ------------------------------------------------------------------------------------

    async def versions(self, chart: str) -> list[ChartVersion]:
        if self.kind == "oci":
            return [ChartVersion(name=chart, version=t) for t in await self.tags(chart)]
        charts, _ = await self.index()
        return list((charts or {}).get(chart, []))

    async def fetch(self, chart: str, version: str) -> tuple[bytes, str]:
        """The chart archive (.tgz) and its sha256 digest ("sha256:…")."""
        if self.kind == "oci":
            manifest, _ = await self.manifest(chart, version)
            layer = chart_layer(self.name, manifest or {})
            return await self.blob(chart, layer), layer
        charts, _ = await self.index()
        entry = next((v for v in (charts or {}).get(chart, []) if v.version == version), None)
        if entry is None:
            raise ChartSourceError(self.name, "not_found", f"chart {chart} version {version}")
        if not entry.urls:
            raise ChartSourceError(self.name, "invalid", f"chart {chart} {version} has no download URL")
        url = urljoin(self.url + "/", entry.urls[0])
        if urlsplit(url).scheme not in ("http", "https"):
            raise ChartSourceError(self.name, "invalid", f"chart {chart} {version} has a non-HTTP URL")
        answer = await self._get(url, max_bytes=MAX_ARCHIVE_BYTES)
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if entry.digest and f"sha256:{entry.digest.removeprefix('sha256:')}" != digest:
            raise ChartSourceError(self.name, "invalid", f"chart {chart} {version} does not match its digest")
        return answer.body, digest


def chart_layer(registry: str, manifest: dict[str, Any]) -> str:
    for layer in manifest.get("layers") or []:
        if (
            isinstance(layer, dict)
            and layer.get("mediaType") == HELM_LAYER
            and isinstance(layer.get("digest"), str)
        ):
            return str(layer["digest"])
    raise ChartSourceError(registry, "invalid", "the artifact is not a Helm chart (no chart layer)")


def _check_digest(registry: str, data: bytes, digest: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != expected:
        raise ChartSourceError(registry, "invalid", "a blob does not match its digest")


def _transport_reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(e, ssl.SSLError):
        return "TLS: " + text[:200]
    if "Connection refused" in text or "connection refused" in text.lower():
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve"
    return text[:200]
