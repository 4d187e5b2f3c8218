"""An async Kubernetes API client on httpx2 that speaks plain dicts: discovery per group-version,
get / list / server-side apply / delete. The only module that sends requests to the API server."""

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx2 as httpx

from moorage.kube import errors
from moorage.kube.config import ClusterConfig

_LIST_PAGE = 500


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def describe(kind: str, name: str | None, namespace: str | None) -> str:
    """`Deployment apps/web` or `Namespace web`: how errors and reports name an object."""
    if namespace:
        return f"{kind} {namespace}/{name}"
    return f"{kind} {name}"


class KubeClient:
    def __init__(
        self,
        config: ClusterConfig,
        *,
        max_connections: int = 32,
        timeout: float = 30.0,
        read_attempts: int = 1,
    ) -> None:
        self.config = config
        # tries of a GET whose connection broke (not a timeout): GETs change nothing, so a retry is safe
        self.read_attempts = max(1, read_attempts)
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,
        )
        # at most as many requests in flight as connections: the rest wait here, not in the pool's queue
        self._inflight = asyncio.Semaphore(max_connections)
        self._discovered: dict[str, dict[str, ApiResource]] = {}  # group-version -> kind -> resource
        self._discovery_lock = asyncio.Lock()

    async def __aenter__(self) -> "KubeClient":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # -- transport -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        headers = {"Accept": "application/json"}
        if token := self.config.bearer():
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        attempts = self.read_attempts if method == "GET" else 1
        try:
            for attempt in range(1, attempts + 1):
                try:
                    async with self._inflight:
                        response = await self._http.request(
                            method, path, params=params, content=content, headers=headers
                        )
                    break
                except httpx.TimeoutException:
                    raise
                except httpx.TransportError:
                    if attempt == attempts:
                        raise
                    await asyncio.sleep(0.2 * attempt)
        except httpx.TimeoutException as e:
            raise errors.Unavailable(
                f"{what}: the API server did not answer in time ({type(e).__name__})"
            ) from None
        except httpx.TransportError as e:
            raise errors.Unavailable(
                f"{what}: cannot reach the API server {self.config.server}: {e}"
            ) from None
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise errors.from_status(response.status_code, payload, what)
        return payload

    # -- discovery ------------------------------------------------------------------------------

    async def _group_version(self, api_version: str, refresh: bool = False) -> dict[str, ApiResource]:
        async with self._discovery_lock:
            if not refresh and api_version in self._discovered:
                return self._discovered[api_version]
            group, version = split_api_version(api_version)
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = await self.request("GET", path, what=f"discovery of {api_version}")
            except errors.NotFound:
                doc = {"resources": []}
            kinds: dict[str, ApiResource] = {}
            for r in doc.get("resources", []):
                if "/" in r["name"]:  # subresources such as deployments/status
                    continue
                kinds.setdefault(
                    r["kind"], ApiResource(group, version, r["kind"], r["name"], r["namespaced"])
                )
            self._discovered[api_version] = kinds
            return kinds

    async def stream_lines(
        self, path: str, params: Mapping[str, str], *, what: str, timeout: float | None = None
    ) -> AsyncIterator[str]:
        """Lines of a streaming response (pod logs with follow), until the server ends it."""
        headers = {}
        if token := self.config.bearer():
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=httpx.Timeout(10.0, read=timeout)
            ) as response:
                if response.status_code >= 400:
                    body = await response.aread()
                    try:
                        payload = json.loads(body)
                    except ValueError:
                        payload = None
                    raise errors.from_status(response.status_code, payload, what)
                async for line in response.aiter_lines():
                    yield line
        except httpx.TransportError as e:
            raise errors.Unavailable(f"{what}: {e}") from None

    async def kinds(self, api_version: str) -> list[ApiResource]:
        """Every resource kind served in `api_version` (empty when the group-version is not served)."""
        return list((await self._group_version(api_version)).values())

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        """The API resource serving `kind`; re-discovers once, for a CRD that was just created."""
        found = (await self._group_version(api_version)).get(kind)
        if found is None:
            found = (await self._group_version(api_version, refresh=True)).get(kind)
        if found is None:
            raise errors.UnknownKind(
                f"no API resource serves {kind} in {api_version} (is its CustomResourceDefinition installed?)"
            )
        return found

    # -- objects --------------------------------------------------------------------------------

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        res = await self.resource(api_version, kind)
        try:
            obj: dict[str, Any] = await self.request(
                "GET", res.path(namespace, name), what=f"get {describe(kind, name, namespace)}"
            )
        except errors.NotFound:
            return None
        return obj

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every object of `kind` (in `namespace`, or cluster-wide), paging through large lists."""
        res = await self.resource(api_version, kind)
        params: dict[str, str] = {"limit": str(_LIST_PAGE)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[dict[str, Any]] = []
        while True:
            page = await self.request(
                "GET",
                res.path(namespace),
                params=params,
                what=f"list {kind} in {namespace or 'all namespaces'}",
            )
            for item in page.get("items", []):
                # list items omit apiVersion/kind; put them back so every object describes itself
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    async def list_version(self, api_version: str, kind: str, label_selector: str | None = None) -> str:
        """The resourceVersion of `kind`'s collection now (cluster-wide): where a watch starts."""
        res = await self.resource(api_version, kind)
        params = {"limit": "1", **({"labelSelector": label_selector} if label_selector else {})}
        page = await self.request("GET", res.path(None), params=params, what=f"list {kind}")
        return str((page or {}).get("metadata", {}).get("resourceVersion") or "")

    async def watch(
        self,
        api_version: str,
        kind: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events (`{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`) of `kind`
        cluster-wide after `resource_version`, until the server ends the watch (`timeout_seconds`)."""
        res = await self.resource(api_version, kind)
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        async for line in self.stream_lines(
            res.path(None), params, what=f"watch {kind}", timeout=timeout_seconds + 30
        ):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                raise errors.Unavailable(
                    f"watch {kind}: the API server sent a line that is not JSON"
                ) from None
            if isinstance(event, dict):
                yield event

    async def apply(
        self,
        obj: Mapping[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply `obj`; a namespaced object without a namespace goes into `namespace`."""
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        name = (obj.get("metadata") or {}).get("name")
        if not api_version or not kind or not name:
            raise errors.Invalid("an object needs apiVersion, kind and metadata.name to be applied")
        res = await self.resource(api_version, kind)
        body = dict(obj)
        ns: str | None = None
        if res.namespaced:
            ns = (obj.get("metadata") or {}).get("namespace") or namespace or self.config.namespace
            body["metadata"] = {**obj["metadata"], "namespace": ns}
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            params["dryRun"] = "All"
        applied: dict[str, Any] = await self.request(
            "PATCH",
            res.path(ns, name),
            params=params,
            body=body,
            content_type="application/apply-patch+yaml",  # JSON is valid YAML
            what=f"apply {describe(kind, name, ns)}",
        )
        return applied

    async def json_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Apply an RFC 6902 JSON patch (with `test` operations as guards against concurrent edits)."""
        res = await self.resource(api_version, kind)
        patched: dict[str, Any] = await self.request(
            "PATCH",
            res.path(namespace, name),
            body=list(operations),
            content_type="application/json-patch+json",
            what=f"patch {describe(kind, name, namespace)}",
        )
        return patched

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete; with `uid`, only that very object (a precondition). False when already gone."""
        res = await self.resource(api_version, kind)
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request(
                "DELETE",
                res.path(namespace, name),
                body=body,
                what=f"delete {describe(kind, name, namespace)}",
            )
        except errors.NotFound:
            return False
        return True
