"""What the agent does for each job action. Write jobs go through the native engine; read jobs
through the Kubernetes client. Each returns (state, messages, result)."""

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from moorage.agent import browse
from moorage.engine import argocd
from moorage.engine.addons import Desired, in_sync, waiting_reason
from moorage.engine.context import EngineContext
from moorage.engine.executor import sync
from moorage.engine.observe import masked_values
from moorage.engine.outcome import EntryOutcome
from moorage.engine.removed import current_release
from moorage.engine.sweep import AddonReport, sweep
from moorage.helm.cli import HelmError
from moorage.helm.storage import latest, read_releases
from moorage.kube.client import describe
from moorage.spec.content import ResolvedCluster
from moorage.spec.loader import LoadOptions, UsageError, load
from moorage.spec.protocol import JobAction, JobMessage, JobState

MAX_BUNDLE_FILES = 500
MAX_LIST_ITEMS = 500

Outcome = tuple[JobState, list[str], dict[str, Any]]


class BundleError(ValueError):
    pass


def write_bundle(files: Mapping[str, Any], root: Path) -> None:
    """Write a repository bundle (relative path -> text) under `root`, refusing any path that escapes."""
    if len(files) > MAX_BUNDLE_FILES:
        raise BundleError(f"the bundle has {len(files)} files; at most {MAX_BUNDLE_FILES} are accepted")
    for name, content in files.items():
        path = PurePosixPath(name)
        if not isinstance(content, str) or path.is_absolute() or ".." in path.parts or not path.parts:
            raise BundleError(f"bundle path {name!r} is not a relative path inside the repository")
        target = root.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def load_bundle(payload: Mapping[str, Any]) -> tuple[ResolvedCluster, Any, list[str]]:
    """The definition of a sync job, resolved and validated (SOPS decrypted here, in the agent)."""
    with tempfile.TemporaryDirectory(prefix="moorage-bundle-") as tmp:
        root = Path(tmp)
        write_bundle(payload.get("files") or {}, root)
        try:
            result = load(
                root / str(payload.get("root") or "import-cluster.yaml"),
                LoadOptions(decrypt=True),
                repo_root=root,
            )
        except UsageError as e:
            raise BundleError(str(e)) from None
    if not result.ok or result.resolved is None or result.plan is None:
        raise BundleError("the definition is invalid:\n" + result.report.to_text())
    warnings = [i.format() for i in result.report.warnings]
    return result.resolved, result.plan, warnings


def sync_options(ctx: EngineContext, payload: Mapping[str, Any]) -> EngineContext:
    """The engine context of one sync job: who asked (a GitOps trigger changes only automated
    add-ons), the add-ons held at a rollback, and the add-ons an add-on sync is limited to."""
    only = payload.get("only")
    options = dataclasses.replace(
        ctx.options,
        automated_only=payload.get("trigger") == "auto",
        held=frozenset(str(n) for n in payload.get("held") or []),
        only=frozenset(str(n) for n in only) if isinstance(only, list) else None,
    )
    return dataclasses.replace(ctx, options=options)


async def run_sync(
    ctx: EngineContext, job: JobMessage, progress: Callable[[str], None] | None = None
) -> tuple[Outcome, ResolvedCluster | None, dict[str, str]]:
    """Deploy the job's definition. Also returns the definition and, per add-on, the message of an
    entry that failed (for the state report)."""
    try:
        cluster, plan, warnings = load_bundle(job.payload)
    except BundleError as e:
        return (JobState.FAILED, [str(e)], {}), None, {}
    messages = list(warnings)
    failed: dict[str, str] = {}

    def on_outcome(o: EntryOutcome) -> None:
        messages.append(f"{o.ref}: {o.status}: {o.message}")
        if o.ref.startswith("addon/") and not o.ok:
            failed[o.ref.removeprefix("addon/")] = o.message
        if progress is not None and o.ref.startswith("addon/"):
            progress(o.ref.removeprefix("addon/"))

    result = await sync(sync_options(ctx, job.payload), cluster, plan, progress=on_outcome)
    entries = {ref: o.to_dict() for ref, o in result.outcomes.items()}
    state = JobState.SUCCESS if result.ok else JobState.FAILED
    outcome = (state, messages, {"outcomes": entries, "seconds": round(result.seconds, 3)})
    return outcome, cluster, failed


async def changing(ctx: EngineContext, cluster: ResolvedCluster, payload: Mapping[str, Any]) -> list[str]:
    """The add-ons a sync job is about to change (for "Deploying" before it starts)."""
    job_ctx = sync_options(ctx, payload)
    stored, _ = await read_releases(ctx.kube)
    releases = latest(stored)
    names = []
    for name, addon in cluster.addons.items():
        if job_ctx.options.only is not None and name not in job_ctx.options.only:
            continue
        if waiting_reason(job_ctx.options, addon) is not None:
            continue
        if not in_sync(current_release(releases, addon, cluster.name), Desired.of(addon)):
            names.append(name)
    return names


def define(job: JobMessage) -> tuple[Outcome, ResolvedCluster | None]:
    """Take the job's definition as this agent's own, deploying nothing (after an agent restart)."""
    try:
        cluster, _, warnings = load_bundle(job.payload)
    except BundleError as e:
        return (JobState.FAILED, [str(e)], {}), None
    return (JobState.SUCCESS, warnings, {"addons": len(cluster.addons)}), cluster


async def run_sweep(ctx: EngineContext, cluster: ResolvedCluster | None) -> tuple[Outcome, list[AddonReport]]:
    if cluster is None:
        return (JobState.FAILED, ["no definition has been synced by this agent yet"], {}), []
    beat, reports = await sweep(ctx, cluster)
    drift = {r.name: [d.to_dict() for d in r.drift] for r in reports if r.drift}
    return (JobState.SUCCESS, beat.errors, {"heartbeat": beat.to_dict(), "drift": drift}), reports


async def run_rollback(ctx: EngineContext, cluster: ResolvedCluster | None, job: JobMessage) -> Outcome:
    p = job.payload
    name, revision = str(p.get("addon", "")), p.get("revision")
    addon = cluster.addons.get(name) if cluster is not None else None
    namespace = addon.namespace if addon is not None else str(p.get("namespace", ""))
    if not isinstance(revision, int) or revision < 1:
        return JobState.FAILED, ["a rollback needs a revision number of 1 or more"], {}
    target = await browse.release_revision(ctx.kube, name, namespace, revision)
    if target is None:
        return (
            JobState.FAILED,
            [f"release {namespace}/{name} has no revision {revision} (see its history)"],
            {},
        )
    try:
        await ctx.helm.rollback(name, namespace, revision, timeout_seconds=ctx.options.timeout_seconds or 300)
    except HelmError as e:
        return JobState.FAILED, [str(e)], {}
    now = await browse.release_revision(ctx.kube, name, namespace, None)
    return (
        JobState.SUCCESS,
        [f"rolled {namespace}/{name} back to revision {revision}"],
        {
            "addon": name,
            "namespace": namespace,
            "revision": revision,
            "new_revision": now.revision if now else None,
        },
    )


async def _release_read(ctx: EngineContext, cluster: ResolvedCluster | None, job: JobMessage) -> Outcome:
    p = job.payload
    name = str(p.get("addon", ""))
    addon = cluster.addons.get(name) if cluster is not None else None
    namespace = addon.namespace if addon is not None else str(p.get("namespace", ""))
    if job.action is JobAction.RELEASE_HISTORY:
        rows = await browse.release_history(ctx.kube, name, namespace)
        if not rows:
            return JobState.FAILED, [f"release {namespace}/{name} not found"], {}
        return JobState.SUCCESS, [], {"addon": name, "namespace": namespace, "revisions": rows}
    revision = p.get("revision")
    release = await browse.release_revision(ctx.kube, name, namespace, int(revision) if revision else None)
    if release is None:
        which = f"revision {revision} of " if revision else ""
        return JobState.FAILED, [f"{which}release {namespace}/{name} not found"], {}
    if job.action is JobAction.RELEASE_VALUES:
        values = masked_values(release.values, addon)
        return (
            JobState.SUCCESS,
            [],
            {"addon": name, "revision": release.revision, "values": values, "masked_all": addon is None},
        )
    if job.action is JobAction.RELEASE_MANIFEST:
        return (
            JobState.SUCCESS,
            [],
            {"addon": name, "revision": release.revision, "manifest": browse.manifest_of(release)},
        )
    return JobState.SUCCESS, [], {"addon": name, "events": await browse.addon_events(ctx.kube, release)}


_RELEASE_READS = frozenset(
    {JobAction.RELEASE_HISTORY, JobAction.RELEASE_VALUES, JobAction.RELEASE_MANIFEST, JobAction.ADDON_EVENTS}
)


async def run_read(ctx: EngineContext, job: JobMessage, cluster: ResolvedCluster | None = None) -> Outcome:
    p = job.payload
    kube = ctx.kube
    if job.action in _RELEASE_READS:
        return await _release_read(ctx, cluster, job)
    if job.action is JobAction.HELM_RELEASES:
        return JobState.SUCCESS, [], {"releases": await browse.helm_releases(kube)}
    if job.action is JobAction.ARGOCD_MIGRATION:
        offset, limit = int(p.get("offset", 0)), min(int(p.get("limit", 100)), MAX_LIST_ITEMS)
        return JobState.SUCCESS, [], await argocd.migration_preview(ctx, offset, limit)
    if job.action is JobAction.LIST_KINDS:
        kinds = []
        for api_version in p.get("api_versions") or ["v1", "apps/v1", "batch/v1", "networking.k8s.io/v1"]:
            for res in await kube.kinds(str(api_version)):
                kinds.append({"api_version": res.api_version, "kind": res.kind, "namespaced": res.namespaced})
        return JobState.SUCCESS, [], {"kinds": kinds}
    if job.action is JobAction.RESOURCE_MAP:
        tree = await browse.resource_map(kube, str(p.get("release", "")), str(p.get("namespace", "")))
        if tree["release"] is None:
            return JobState.FAILED, [f"release {p.get('namespace')}/{p.get('release')} not found"], {}
        return JobState.SUCCESS, [], tree
    api_version, kind = str(p.get("api_version", "v1")), str(p.get("kind", ""))
    namespace = p.get("namespace") or None
    if job.action is JobAction.EVENTS:
        return (
            JobState.SUCCESS,
            [],
            {"events": await browse.events(kube, kind, str(p.get("name", "")), namespace)},
        )
    if job.action is JobAction.GET_RESOURCE:
        obj = await kube.get(api_version, kind, str(p.get("name", "")), namespace)
        if obj is None:
            return JobState.FAILED, [f"{describe(kind, p.get('name'), namespace)} not found"], {}
        return JobState.SUCCESS, [], {"object": _redacted(obj)}
    items = await kube.list(
        api_version,
        kind,
        namespace,
        label_selector=p.get("label_selector") or None,
        field_selector=p.get("field_selector") or None,
    )
    offset, limit = int(p.get("offset", 0)), min(int(p.get("limit", 100)), MAX_LIST_ITEMS)
    page = [_redacted(o) for o in items[offset : offset + limit]]
    return JobState.SUCCESS, [], {"items": page, "total": len(items), "offset": offset, "limit": limit}


def _redacted(obj: dict[str, Any]) -> dict[str, Any]:
    """Secret values never leave the cluster through resource browsing."""
    if obj.get("kind") != "Secret":
        return obj
    masked = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(masked.get(field), dict):
            masked[field] = dict.fromkeys(masked[field], "********")
    return masked
