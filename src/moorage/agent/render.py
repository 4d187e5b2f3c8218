"""The Stack Builder's preview of chart objects, in the agent (read job `render_objects`): for each
release an edit creates or changes, render the chart with the edited definition's values the way a
deploy would (the same chart fetch with the job's registry credentials, the values as the loader
resolves and SOPS-decrypts them here, `helm upgrade --install --dry-run=server`) and compare it with
the manifest of the release as it is (engine/objectdiff.py); for a release removed, its objects.

The job carries the definition as it would be committed (SOPS ciphertext only); plaintext exists in
this process's memory only. The answer holds kinds, names and field paths, never a value, and is
bounded: releases per job, rendered bytes per release, objects and paths (trimmed to fit a result
message, with what was left out counted)."""

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from moorage.agent.jobs import BundleError, Outcome, load_bundle
from moorage.engine import argocd, objectdiff, objects
from moorage.engine.addons import Desired, chart_ref
from moorage.engine.context import PRUNE_LABEL, EngineContext
from moorage.engine.removed import current_release
from moorage.helm.cli import HelmError
from moorage.helm.storage import latest, read_releases
from moorage.kube import errors as kube_errors
from moorage.kube.client import KubeClient
from moorage.spec.content import ResolvedCluster
from moorage.spec.protocol import MAX_MESSAGE_BYTES, JobMessage, JobState

MAX_RELEASES = 20  # rendered per job; the others are answered as not rendered
MAX_RENDERED_BYTES = 4 << 20  # of one release's rendered manifest
RESULT_BYTES = MAX_MESSAGE_BYTES // 2  # the answer, trimmed to fit one result message with room
CONCURRENCY = 2  # helm renders at once (each is a process using most of a core)
MARGIN_SECONDS = 2.0  # the answer goes out this long before the job's timeout
# helm's words when objects exist that the release does not own (as engine/addons.py reads them)
ADOPTABLE = "cannot be imported into the current release"


async def run(ctx: EngineContext, job: JobMessage) -> Outcome:
    started = time.monotonic()
    try:
        # SOPS decryption runs processes: off the event loop, which serves heartbeats and kubectl
        cluster, _, _ = await asyncio.to_thread(load_bundle, job.payload)
    except BundleError as e:
        return JobState.FAILED, [f"the edited definition cannot be loaded in the agent: {e}"], {}
    asked = [r for r in job.payload.get("releases") or [] if isinstance(r, Mapping)]
    deadline = started + max(1.0, job.timeout_seconds - MARGIN_SECONDS)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(entry: Mapping[str, Any]) -> dict[str, Any]:
        name, namespace = str(entry.get("release") or ""), str(entry.get("namespace") or "")
        head = {"release": name, "namespace": namespace}
        async with gate:
            left = deadline - time.monotonic()
            if left <= 0:
                return {**head, "rendered": False, "reason": "the agent ran out of time before this release"}
            try:
                found = await asyncio.wait_for(_release(ctx, cluster, entry, left), left)
            except TimeoutError:
                return {**head, "rendered": False, "reason": f"rendering took longer than {left:.0f}s"}
            except (HelmError, kube_errors.KubeError) as e:
                return {**head, "rendered": False, "reason": str(e)}
        return {**head, **found}

    answers = list(await asyncio.gather(*(one(e) for e in asked[:MAX_RELEASES])))
    answers += [
        {
            "release": str(e.get("release") or ""),
            "namespace": str(e.get("namespace") or ""),
            "rendered": False,
            "reason": f"only {MAX_RELEASES} releases are rendered per preview",
        }
        for e in asked[MAX_RELEASES:]
    ]
    result = {"releases": fit(answers, RESULT_BYTES), "seconds": round(time.monotonic() - started, 3)}
    return JobState.SUCCESS, [], result


async def _release(
    ctx: EngineContext, cluster: ResolvedCluster, entry: Mapping[str, Any], timeout: float
) -> dict[str, Any]:
    name, namespace = str(entry.get("release") or ""), str(entry.get("namespace") or "")
    if entry.get("change") == "removed":
        stored, _ = await read_releases(ctx.kube, namespace, name)
        gone = latest(stored).get((namespace, name))
        if gone is None:
            return {"rendered": True, "objects": objectdiff.diff([], []).to_dict(), "note": "no such release"}
        if gone.labels.get(PRUNE_LABEL) != "true":
            return {
                "rendered": True,
                "objects": objectdiff.diff([], []).to_dict(),
                "note": "the release is kept (auto_prune was off when it was deployed): nothing is removed",
            }
        before = await namespaced(ctx.kube, objects.parse_manifest(gone.manifest), namespace)
        return {"rendered": True, "objects": objectdiff.diff(before, []).to_dict()}
    addon = cluster.addons.get(name)
    if addon is None:
        return {"rendered": False, "reason": f"add-on {name} is not in the edited definition"}
    if argocd.uses_argocd(addon, cluster.default_engine):
        return {"rendered": False, "reason": "deployed by Argo CD (engine argo_cd): Argo CD renders it"}
    stored, _ = await read_releases(ctx.kube, None, name)
    current = current_release(latest(stored), addon, cluster.name)
    desired = Desired.of(addon)
    note = ""
    try:
        manifest = await ctx.helm.render(
            name,
            addon.namespace,
            chart_ref(addon),
            desired.values,
            secrets=desired.secrets,
            timeout_seconds=int(timeout),
        )
    except HelmError as e:
        if ADOPTABLE not in str(e):
            raise
        manifest = await ctx.helm.render(
            name,
            addon.namespace,
            chart_ref(addon),
            desired.values,
            secrets=desired.secrets,
            take_ownership=True,
            timeout_seconds=int(timeout),
        )
        note = (
            "some objects exist outside the release: the sync adopts those no one owns and refuses "
            "those of another owner unless settings.take_ownership"
        )
    size = len(manifest.encode())
    if size > MAX_RENDERED_BYTES:
        return {
            "rendered": False,
            "reason": f"the rendered manifest is {size} bytes; at most {MAX_RENDERED_BYTES} are compared",
        }
    after = await namespaced(ctx.kube, objects.parse_manifest(manifest), addon.namespace)
    before = (
        await namespaced(ctx.kube, objects.parse_manifest(current.manifest), current.namespace)
        if current is not None
        else []
    )
    out: dict[str, Any] = {"rendered": True, "objects": objectdiff.diff(before, after).to_dict()}
    return {**out, "note": note} if note else out


async def namespaced(
    kube: KubeClient, found: Sequence[Mapping[str, Any]], namespace: str
) -> list[dict[str, Any]]:
    """The objects with metadata.namespace as the API server will have it (cluster-scoped kinds
    have none); a kind the cluster does not serve yet (its CRD comes with the chart) keeps its own,
    else gets the release's."""
    out: list[dict[str, Any]] = []
    for obj in found:
        try:
            out.extend(await objects.with_namespaces(kube, [obj], namespace))
        except kube_errors.UnknownKind:
            meta = dict(obj.get("metadata") or {})
            meta["namespace"] = meta.get("namespace") or namespace
            out.append({**obj, "metadata": meta})
    return out


# how hard each step trims: (paths per changed object, objects per release)
_STEPS = ((objectdiff.MAX_PATHS, objectdiff.MAX_OBJECTS), (10, 200), (3, 100), (0, 50), (0, 10), (0, 0))


def fit(releases: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """`releases` trimmed until their JSON has at most `max_bytes`: field paths first, then objects;
    each cut is counted (`paths_omitted`, `omitted`), so nothing disappears silently."""
    trimmed = releases
    for paths, count in _STEPS:
        trimmed = [_trim(r, paths, count) for r in releases]
        if len(json.dumps(trimmed).encode()) <= max_bytes:
            break
    return trimmed


def _trim(release: dict[str, Any], paths: int, count: int) -> dict[str, Any]:
    found = release.get("objects")
    if not isinstance(found, dict):
        return release
    kept, omitted = 0, int(found.get("omitted") or 0)
    out: dict[str, Any] = {**found}
    for change in ("created", "changed", "removed"):
        items: list[dict[str, Any]] = []
        for item in found.get(change) or []:
            if kept >= count:
                omitted += 1
                continue
            kept += 1
            if "paths" in item and len(item["paths"]) > paths:
                more = len(item["paths"]) - paths + int(item.get("paths_omitted") or 0)
                item = {**item, "paths": item["paths"][:paths], "paths_omitted": more}
            items.append(item)
        out[change] = items
    out["omitted"] = omitted
    return {**release, "objects": out}
