"""Kubernetes objects as the engine handles them: identity keys, parsing of rendered manifests, and
fetching the live counterparts of many objects at once."""

import asyncio
import copy
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from moorage.kube import errors
from moorage.kube.client import KubeClient, split_api_version

# One cluster-wide LIST of a kind instead of a GET per object, when the kind's collection is at most
# this many times the objects wanted of it: a listed object costs the API server ~1/60 of a GET
# (bench/sweep.py on the devcluster: a LIST of 500 ConfigMaps ~15 ms, 500 GETs ~1 s), and one
# request instead of many keeps an idle agent quiet. A kind not listed yet is listed once to learn
# its size; a single object is always fetched by a GET.
LIST_RATIO = 50
_GET_CONCURRENCY = 32
# Helm's release records: the largest Secrets of a cluster and never a chart's object
_HELM_RELEASE_SECRETS = "type!=helm.sh/release.v1"
# how many objects each kind had at its last cluster-wide LIST, per client (forgotten with the client)
_NEVER_LIST = 1 << 62  # the size remembered of a kind the client may not list
_KIND_SIZES: "weakref.WeakKeyDictionary[KubeClient, dict[tuple[str, str], int]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, order=True)
class ObjectKey:
    group: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


def key_of(obj: Mapping[str, Any], default_namespace: str = "") -> ObjectKey:
    meta = obj.get("metadata") or {}
    group, _ = split_api_version(str(obj.get("apiVersion", "")))
    return ObjectKey(
        group, str(obj.get("kind", "")), meta.get("namespace") or default_namespace, meta.get("name", "")
    )


# Parsed release manifests, by their text: a sweep parses every release's manifest (and those of its
# earlier revisions) again each time, and YAML costs ~8x a copy (docs/performance.md). Bounded by
# the manifests' text size, least recently used first out.
_PARSED: "OrderedDict[str, list[dict[str, Any]]]" = OrderedDict()
_PARSED_MAX_CHARS = 2 << 20
_parsed_chars = 0


def parse_manifest(text: str) -> list[dict[str, Any]]:
    """The objects of a rendered multi-document manifest (Helm's release manifest); the caller's own
    copy, whatever it does to it."""
    global _parsed_chars
    cached = _PARSED.get(text)
    if cached is not None:
        _PARSED.move_to_end(text)
        return copy.deepcopy(cached)
    objects = _parse_manifest(text)
    if len(text) <= _PARSED_MAX_CHARS:
        _PARSED[text] = copy.deepcopy(objects)
        _parsed_chars += len(text)
        while _parsed_chars > _PARSED_MAX_CHARS:
            evicted, _ = _PARSED.popitem(last=False)
            _parsed_chars -= len(evicted)
    return objects


def _parse_manifest(text: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
        if isinstance(doc, dict) and doc.get("kind"):
            if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
                objects.extend(i for i in doc["items"] if isinstance(i, dict))
            else:
                objects.append(doc)
    return objects


async def with_namespaces(
    kube: KubeClient, objects: Iterable[Mapping[str, Any]], default_namespace: str
) -> list[dict[str, Any]]:
    """Objects with metadata.namespace filled in for namespaced kinds (as `helm` and `kubectl` do)."""
    result = []
    for obj in objects:
        res = await kube.resource(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        copy = dict(obj)
        meta = dict(copy.get("metadata") or {})
        if res.namespaced:
            meta.setdefault("namespace", default_namespace)
            if not meta["namespace"]:
                meta["namespace"] = default_namespace
        else:
            meta.pop("namespace", None)
        copy["metadata"] = meta
        result.append(copy)
    return result


def should_list(wanted: int, kind_size: int | None) -> bool:
    """One LIST rather than `wanted` GETs, given how many objects the kind had when last listed."""
    if wanted < 2:
        return False
    return kind_size is None or kind_size <= LIST_RATIO * wanted


def list_selector(api_version: str, kind: str, wanted: Iterable[Mapping[str, Any]]) -> str | None:
    """The field selector of a kind's LIST: Secrets leave out Helm's release records unless wanted."""
    if (api_version, kind) != ("v1", "Secret"):
        return None
    if any(o.get("type") == "helm.sh/release.v1" for o in wanted):
        return None
    return _HELM_RELEASE_SECRETS


async def fetch_live(
    kube: KubeClient, desired: Sequence[Mapping[str, Any]]
) -> dict[ObjectKey, dict[str, Any] | None]:
    """The live object for each desired one (None when missing): one LIST per kind where that is
    cheaper (`should_list`), GETs for the rest."""
    by_kind: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for obj in desired:
        by_kind[(str(obj["apiVersion"]), str(obj["kind"]))].append(obj)
    live: dict[ObjectKey, dict[str, Any] | None] = {key_of(o): None for o in desired}
    semaphore = asyncio.Semaphore(_GET_CONCURRENCY)
    sizes = _KIND_SIZES.setdefault(kube, {})

    async def one(obj: Mapping[str, Any]) -> None:
        meta = obj["metadata"]
        async with semaphore:
            try:
                found = await kube.get(
                    str(obj["apiVersion"]), str(obj["kind"]), meta["name"], meta.get("namespace")
                )
            except errors.UnknownKind:
                return  # its CRD is gone: the object is missing
        if found is not None:
            live[key_of(obj)] = found

    async def listed(api_version: str, kind: str, objs: list[Mapping[str, Any]]) -> None:
        try:
            items = await kube.list(api_version, kind, field_selector=list_selector(api_version, kind, objs))
        except errors.UnknownKind:
            return
        except errors.Forbidden:
            # allowed to read these objects but not to list the kind cluster-wide: GETs, from now on
            sizes[(api_version, kind)] = _NEVER_LIST
            await asyncio.gather(*(one(o) for o in objs))
            return
        sizes[(api_version, kind)] = len(items)
        for item in items:
            key = key_of(item)
            if key in live:
                live[key] = item

    tasks = []
    for (api_version, kind), objs in by_kind.items():
        if should_list(len(objs), sizes.get((api_version, kind))):
            tasks.append(listed(api_version, kind, objs))
        else:
            tasks.extend(one(o) for o in objs)
    await asyncio.gather(*tasks)
    return live
