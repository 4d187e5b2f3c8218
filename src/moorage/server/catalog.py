"""The chart catalog (issue 16, item 4): search the connected registries by name and keyword, list a
chart's versions with their dates, and show one version's default values, values.schema.json,
README, dependencies and what its default values change against another version.

Connected registries are the server-wide "global registries" (MOORAGE_GLOBAL_REGISTRIES: a YAML
file, format in docs/charts.md), each optionally naming a stored helm/oci credential. Lookups are
cached: a Helm repository's index.yaml is asked again with If-None-Match (a 304 downloads nothing),
an OCI manifest likewise; chart archives are kept by digest (bounded by bytes), so a repeated look-up
of a version costs no download. An OCI registry's chart list and tags are kept for LISTING_TTL."""

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from moorage.charts.archive import ArchiveError, ChartFiles, read_chart
from moorage.charts.source import ChartSource, ChartSourceError, ChartVersion, RegistryAuth, Vet, chart_layer
from moorage.server.stacks.completion import completion_tree

LISTING_TTL_SECONDS = 60.0
MAX_ARCHIVE_CACHE_BYTES = 64 << 20
MAX_RESULTS = 200
MAX_DIFF_ENTRIES = 500


class GlobalRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    url: str = Field(pattern=r"^(https?|oci)://", max_length=2048)
    credential_name: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=1000)
    exclude_charts: list[str] = Field(default_factory=list)


class GlobalRegistries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registries: list[GlobalRegistry] = Field(default_factory=list, max_length=200)


class CatalogError(Exception):
    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def load_registries(path: Path | None) -> list[GlobalRegistry]:
    """The global registries file; a bad file is an error at start-up naming the problem."""
    if path is None:
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        registries = GlobalRegistries.model_validate(data).registries
    except OSError as e:
        raise ValueError(f"global registries file {path}: {e.strerror or e}") from None
    except (yaml.YAMLError, ValidationError) as e:
        raise ValueError(f"global registries file {path} is invalid: {e}") from None
    names = [r.name for r in registries]
    if len(set(names)) != len(names):
        raise ValueError(f"global registries file {path}: registry names must be unique")
    return registries


@dataclass
class _Index:
    etag: str | None
    charts: dict[str, list[ChartVersion]]


@dataclass
class _Listing:
    at: float
    charts: dict[str, list[ChartVersion]]


@dataclass
class Stats:
    downloads: int = 0  # bodies downloaded (index, manifests, archives)
    not_modified: int = 0  # conditional requests answered 304
    archive_hits: int = 0


@dataclass
class Catalog:
    registries: list[GlobalRegistry]
    # checks that the server may connect there (egress) and opens the registry's credential (None:
    # anonymous; the credential's host binding is checked by the caller)
    auth_of: Callable[[GlobalRegistry], Awaitable[RegistryAuth | None]]
    # the egress check of every connection (None: none, as in the benchmark)
    vet: Vet | None = None
    clock: Callable[[], float] = time.monotonic
    stats: Stats = field(default_factory=Stats)
    _indexes: dict[str, _Index] = field(default_factory=dict)
    _listings: dict[str, _Listing] = field(default_factory=dict)
    # (url, chart, version) -> manifest etag, chart layer digest, creation date (annotation)
    _manifests: dict[tuple[str, str, str], tuple[str, str, str | None]] = field(default_factory=dict)
    _archives: "OrderedDict[str, tuple[int, ChartFiles]]" = field(default_factory=OrderedDict)
    _archive_bytes: int = 0

    def registry(self, name: str) -> GlobalRegistry:
        for r in self.registries:
            if r.name == name:
                return r
        raise CatalogError(
            f"no registry named {name!r}; the server knows {', '.join(self.names()) or 'none'}"
        )

    def names(self) -> list[str]:
        return [r.name for r in self.registries]

    def cache_bytes(self) -> int:
        return self._archive_bytes

    async def _source(self, registry: GlobalRegistry) -> ChartSource:
        auth = await self.auth_of(registry)
        return ChartSource(registry.url, auth, vet=self.vet)

    async def charts(self, registry: GlobalRegistry) -> dict[str, list[ChartVersion]]:
        """Every chart of the registry with its versions (excluded charts left out)."""
        async with await self._source(registry) as source:
            if source.kind == "http":
                cached = self._indexes.get(registry.url)
                charts, etag = await source.index(cached.etag if cached else None)
                if charts is None and cached is not None:
                    self.stats.not_modified += 1
                    charts = cached.charts
                else:
                    self.stats.downloads += 1
                    self._indexes[registry.url] = _Index(etag, charts or {})
            else:
                listing = self._listings.get(registry.url)
                if listing is not None and self.clock() - listing.at < LISTING_TTL_SECONDS:
                    charts = listing.charts
                else:
                    names = await source.catalog()
                    tags = await asyncio.gather(*(source.tags(n) for n in names))
                    self.stats.downloads += 1 + len(names)
                    charts = {
                        n: [ChartVersion(name=n, version=t) for t in _newest_first(ts)]
                        for n, ts in zip(names, tags, strict=True)
                    }
                    self._listings[registry.url] = _Listing(self.clock(), charts)
        return {n: v for n, v in (charts or {}).items() if n not in registry.exclude_charts}

    async def search(self, query: str, registry: str | None = None) -> dict[str, Any]:
        """Charts whose name, description or keywords contain `query` (case-insensitive), across the
        registries (or one); a registry that fails is reported, the others still answer."""
        wanted = [self.registry(registry)] if registry else list(self.registries)
        needle = query.strip().lower()
        results: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []

        async def one(reg: GlobalRegistry) -> None:
            try:
                charts = await self.charts(reg)
            except (ChartSourceError, CatalogError) as e:  # e.g. its credential is missing
                errors.append({"registry": reg.name, "message": e.message})
                return
            for name, versions in sorted(charts.items()):
                top = versions[0] if versions else None
                text = " ".join(
                    [name, top.description if top else "", *(top.keywords if top else [])]
                ).lower()
                if needle and needle not in text:
                    continue
                results.append(
                    {
                        "registry": reg.name,
                        "url": reg.url,
                        "name": name,
                        "description": top.description if top else "",
                        "keywords": top.keywords if top else [],
                        "versions": [v.to_dict() for v in versions],
                    }
                )

        await asyncio.gather(*(one(r) for r in wanted))
        results.sort(key=lambda c: (c["name"] != needle, c["name"], c["registry"]))
        return {"charts": results[:MAX_RESULTS], "total": len(results), "errors": errors}

    async def versions(self, registry: str, chart: str) -> list[ChartVersion]:
        reg = self.registry(registry)
        try:
            charts = await self.charts(reg)
        except ChartSourceError as e:
            raise CatalogError(e.message, 502) from None
        if chart not in charts:
            raise CatalogError(f"registry {registry} has no chart {chart!r}")
        versions = charts[chart]
        if reg.url.startswith("oci://"):  # dates are in each version's manifest (cached by ETag)
            async with await self._source(reg) as source:
                limit = asyncio.Semaphore(8)

                async def dated(v: ChartVersion) -> ChartVersion:
                    async with limit:
                        await self._digest(reg, source, chart, v.version)
                    known = self._manifests.get((reg.url, chart, v.version))
                    return ChartVersion(name=chart, version=v.version, created=known[2] if known else None)

                try:
                    versions = list(await asyncio.gather(*(dated(v) for v in versions[:100])))
                except ChartSourceError as e:
                    raise CatalogError(e.message, 502) from None
        return versions

    async def files(self, registry: str, chart: str, version: str) -> tuple[ChartFiles, str]:
        """The chart version's files and the archive's digest, from the cache when the digest is known."""
        reg = self.registry(registry)
        try:
            async with await self._source(reg) as source:
                digest = await self._digest(reg, source, chart, version)
                cached = self._archives.get(digest) if digest else None
                if cached is not None:
                    self._archives.move_to_end(digest or "")
                    self.stats.archive_hits += 1
                    return cached[1], digest or ""
                data, digest = await source.fetch(chart, version)
                self.stats.downloads += 1
        except ChartSourceError as e:
            raise CatalogError(e.message, 404 if e.reason == "not_found" else 502) from None
        try:
            files = read_chart(data)
        except ArchiveError as e:
            raise CatalogError(f"registry {registry}: chart {chart} {version}: {e}", 502) from None
        self._keep(digest, len(data), files)
        return files, digest

    async def _digest(self, reg: GlobalRegistry, source: ChartSource, chart: str, version: str) -> str | None:
        if source.kind == "http":
            for v in (await self.charts(reg)).get(chart, []):
                if v.version == version:
                    return f"sha256:{v.digest.removeprefix('sha256:')}" if v.digest else None
            raise CatalogError(f"registry {reg.name} has no chart {chart} version {version}")
        key = (reg.url, chart, version)
        known = self._manifests.get(key)
        manifest, etag = await source.manifest(chart, version, known[0] if known else None)
        if manifest is None and known is not None:
            self.stats.not_modified += 1
            return known[1]
        self.stats.downloads += 1
        layer = chart_layer(source.name, manifest or {})
        annotations = (manifest or {}).get("annotations")
        created = (
            annotations.get("org.opencontainers.image.created") if isinstance(annotations, dict) else None
        )
        if etag:
            self._manifests[key] = (etag, layer, str(created) if created else None)
        return layer

    def _keep(self, digest: str, size: int, files: ChartFiles) -> None:
        weight = size + len(files.values_text) + len(files.readme)
        self._archives[digest] = (weight, files)
        self._archive_bytes += weight
        while self._archive_bytes > MAX_ARCHIVE_CACHE_BYTES and len(self._archives) > 1:
            _, (old, _) = self._archives.popitem(last=False)
            self._archive_bytes -= old

    async def show(
        self, registry: str, chart: str, version: str, against: str | None = None
    ) -> dict[str, Any]:
        files, digest = await self.files(registry, chart, version)
        out: dict[str, Any] = {
            "registry": registry,
            "name": chart,
            "version": version,
            "digest": digest,
            "chart": files.chart,
            "values": files.values_text,
            "schema": files.schema,
            "completion": completion_tree(files.schema, files.values),  # for the values editor
            "readme": files.readme,
            "dependencies": files.dependencies,
        }
        if against:
            other, _ = await self.files(registry, chart, against)
            out["diff"] = {"against": against, "changes": diff_values(other.values, files.values)}
        return out


def _newest_first(tags: list[str]) -> list[str]:
    def key(tag: str) -> tuple[int, ...]:
        core = tag.split("-", 1)[0].split("+", 1)[0]
        return tuple(int(p) if p.isdigit() else -1 for p in core.split("."))

    return sorted(tags, key=key, reverse=True)


def diff_values(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """What changes from `old` to `new` default values: added, removed and changed leaves by path."""
    out: list[dict[str, Any]] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if len(out) >= MAX_DIFF_ENTRIES:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                sub = f"{where}.{k}" if where else str(k)
                if k not in a:
                    out.append({"path": sub, "change": "added", "to": b[k]})
                elif k not in b:
                    out.append({"path": sub, "change": "removed", "from": a[k]})
                else:
                    walk(a[k], b[k], sub)
        elif a != b:
            out.append({"path": where or ".", "change": "changed", "from": a, "to": b})

    walk(old, new, path)
    return out
