"""Fetch each add-on's chart and check its values against the chart's values.schema.json
(moorage.spec.chartschema), for `moorage validate --charts`, `cluster apply` and the GitOps Validating
phase. A chart that cannot be fetched is reported naming the registry and the reason; `unreachable`
can be made a warning (the server may not reach a registry its agents do). Chart versions are
immutable, so what a version holds (schema, default values) is cached by (registry, chart, version),
bounded by bytes: a repeated check downloads nothing."""

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moorage.charts.archive import ArchiveError, read_chart
from moorage.charts.source import ChartSource, ChartSourceError, RegistryAuth, Vet, display
from moorage.spec.chartschema import check_values
from moorage.spec.content import ResolvedAddon, ResolvedCluster
from moorage.spec.report import Issue, Location, Severity

MAX_CACHE_BYTES = 32 << 20
CONCURRENCY = 4


@dataclass
class _Entry:
    schema: dict[str, Any] | None
    defaults: dict[str, Any]
    weight: int


@dataclass
class SchemaCache:
    max_bytes: int = MAX_CACHE_BYTES
    entries: "OrderedDict[tuple[str, str, str], _Entry]" = field(default_factory=OrderedDict)
    size: int = 0
    downloads: int = 0

    def get(self, key: tuple[str, str, str]) -> _Entry | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: tuple[str, str, str], entry: _Entry) -> None:
        if key in self.entries:
            self.size -= self.entries.pop(key).weight
        self.entries[key] = entry
        self.size += entry.weight
        while self.size > self.max_bytes and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.size -= old.weight


def addon_location(addon: ResolvedAddon) -> Location | None:
    file, _, line = addon.defined_at.rpartition(":")
    return Location(file, int(line)) if file and line.isdigit() else None


async def _chart(
    addon: ResolvedAddon,
    auth: RegistryAuth | None,
    cache: SchemaCache,
    vet: Vet | None,
) -> _Entry:
    url = str(addon.registry_url)
    key = (url, addon.chart_name, addon.chart_version)
    found = cache.get(key)
    if found is not None:
        return found
    async with ChartSource(url, auth, vet=vet) as source:
        data, _ = await source.fetch(addon.chart_name, addon.chart_version)
    cache.downloads += 1
    files = read_chart(data)
    weight = len(files.values_text) + len(json.dumps(files.schema or {}))
    entry = _Entry(files.schema, files.values, weight)
    cache.put(key, entry)
    return entry


async def check_charts(
    resolved: ResolvedCluster,
    *,
    auth_for: Callable[[str], RegistryAuth | None] = lambda _url: None,
    cache: SchemaCache | None = None,
    vet: Vet | None = None,
    unreachable_is_error: bool = True,
) -> list[Issue]:
    """Every add-on's schema violations, and the charts that could not be fetched."""
    cache = cache if cache is not None else SchemaCache()
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(addon: ResolvedAddon) -> list[Issue]:
        if not addon.registry_url:
            return []
        where = addon_location(addon)
        chart = f"{addon.chart_name} {addon.chart_version}"
        try:
            async with slots:
                entry = await _chart(addon, auth_for(addon.registry_url), cache, vet)
        except ChartSourceError as e:
            severity = Severity.ERROR if unreachable_is_error or not e.temporary else Severity.WARNING
            note = "" if severity is Severity.ERROR else "; its values were not checked"
            return [
                Issue(
                    severity,
                    f"chart-{e.reason.replace('_', '-')}",
                    f"add-on {addon.name}: chart {chart} cannot be fetched: {e.message}{note}",
                    where,
                    f"addons[{addon.name}]",
                    hint=_hint(e),
                )
            ]
        except ArchiveError as e:
            return [
                Issue(
                    Severity.ERROR,
                    "chart-invalid",
                    f"add-on {addon.name}: chart {chart} from {display(addon.registry_url)}: {e}",
                    where,
                    f"addons[{addon.name}]",
                )
            ]
        if entry.schema is None:
            return []
        locate = addon.value_locations or (lambda _p: None)
        # off the event loop: a schema's patterns run in Python's re
        return await asyncio.to_thread(check_values, addon, entry.schema, entry.defaults, locate, where)

    found = await asyncio.gather(*(one(a) for _, a in sorted(resolved.addons.items())))
    return [issue for issues in found for issue in issues]


def _hint(e: ChartSourceError) -> str:
    if e.reason == "auth":
        return "name the registry's credential (credential_name in spec.helm_registries) and check it"
    if e.reason == "not_found":
        return "check chart_name and chart_version against the registry (moorage charts search)"
    return "check that the registry is up and reachable from here"
