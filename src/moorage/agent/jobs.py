"""What the agent does for each job action. Write jobs go through the native engine; read jobs
through the Kubernetes client. Each returns (state, messages, result)."""

import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from moorage.agent import browse
from moorage.engine.context import EngineContext
from moorage.engine.executor import sync
from moorage.engine.sweep import sweep
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
            result = load(root / str(payload.get("root") or "import-cluster.yaml"), LoadOptions(decrypt=True))
        except UsageError as e:
            raise BundleError(str(e)) from None
    if not result.ok or result.resolved is None or result.plan is None:
        raise BundleError("the definition is invalid:\n" + result.report.to_text())
    warnings = [i.format() for i in result.report.warnings]
    return result.resolved, result.plan, warnings


async def run_sync(ctx: EngineContext, job: JobMessage) -> tuple[Outcome, ResolvedCluster | None]:
    try:
        cluster, plan, warnings = load_bundle(job.payload)
    except BundleError as e:
        return (JobState.FAILED, [str(e)], {}), None
    messages = list(warnings)
    result = await sync(
        ctx, cluster, plan, progress=lambda o: messages.append(f"{o.ref}: {o.status}: {o.message}")
    )
    entries = {ref: o.to_dict() for ref, o in result.outcomes.items()}
    state = JobState.SUCCESS if result.ok else JobState.FAILED
    return (state, messages, {"outcomes": entries, "seconds": round(result.seconds, 3)}), cluster


async def run_sweep(ctx: EngineContext, cluster: ResolvedCluster | None) -> Outcome:
    if cluster is None:
        return JobState.FAILED, ["no definition has been synced by this agent yet"], {}
    beat, reports = await sweep(ctx, cluster)
    drift = {r.name: [d.to_dict() for d in r.drift] for r in reports if r.drift}
    return JobState.SUCCESS, beat.errors, {"heartbeat": beat.to_dict(), "drift": drift}


async def run_read(ctx: EngineContext, job: JobMessage) -> Outcome:
    p = job.payload
    kube = ctx.kube
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
