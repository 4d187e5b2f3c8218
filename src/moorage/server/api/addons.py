"""/api/v1/clusters/{name}/addons…: the live state of every add-on (from the agents' reports), its
drift and transitions, its Helm history, values and manifest (read through the agent), rollback,
resume and manual sync; /clusters/{name}/releases (every Helm release, managed or not); and
/api/v1/events, the stream of state changes as server-sent events."""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.server import addon_state, service
from moorage.server.api import operations
from moorage.server.api.addon_schemas import (
    AddonAction,
    AddonDetail,
    AddonDrift,
    AddonList,
    AddonSummary,
    RollbackRequest,
    TransitionOut,
)
from moorage.server.api.deps import Admin, Ctx, Reader, WaitSeconds, Writer
from moorage.server.api.resources import read_through_agent
from moorage.server.api.schemas import ApplyRequest, Page, page_of
from moorage.server.db.models import AddonState
from moorage.server.gitops import store
from moorage.server.migration import to_native
from moorage.spec.lifecycle import AddonState as State
from moorage.spec.lifecycle import Cause
from moorage.spec.protocol import JobAction, JobMessage

log = logging.getLogger("moorage.server.api")

router = APIRouter(tags=["addons"])

POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0

StateFilter = Annotated[State | None, Query(description="Only add-ons in this lifecycle state.")]
Search = Annotated[str | None, Query(max_length=253, description="Part of the add-on's name or namespace.")]


def _row(session: Session, cluster_name: str, addon: str) -> tuple[Any, AddonState]:
    cluster = service.get_cluster(session, cluster_name)
    row = addon_state.get_addon(session, cluster, addon)
    if row is None:
        raise service.NotFound(
            f"cluster {cluster_name!r} has no add-on {addon!r} in its agent's reports "
            "(see `moorage addons list -c CLUSTER`)"
        )
    return cluster, row


@router.get("/clusters/{name}/addons")
async def list_addons(
    name: str,
    ctx: Ctx,
    _who: Reader,
    state: StateFilter = None,
    search: Search = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AddonList:
    """The cluster's add-ons with their lifecycle state and its reason, by name."""

    def work(session: Session) -> AddonList:
        cluster = service.get_cluster(session, name)
        rows, total, counts = addon_state.list_addons(
            session,
            cluster,
            state=state.value if state else None,
            search=search,
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        return AddonList(
            cluster=cluster.name,
            agent=service.cluster_state(cluster, ctx.clock()),
            counts=counts,
            result=[AddonSummary.of(r) for r in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    return await ctx.db(work)


@router.get("/clusters/{name}/addons/{addon}")
async def get_addon(name: str, addon: str, ctx: Ctx, _who: Reader) -> AddonDetail:
    def work(session: Session) -> AddonDetail:
        cluster, row = _row(session, name, addon)
        return AddonDetail.of(row, store.repository_of(session, cluster.id))

    return await ctx.db(work)


@router.get("/clusters/{name}/addons/{addon}/drift")
async def addon_drift(name: str, addon: str, ctx: Ctx, _who: Reader) -> AddonDrift:
    """Each drifted resource and field (want vs live; Secret values masked by the agent)."""

    def work(session: Session) -> AddonDrift:
        row = _row(session, name, addon)[1]
        obs = row.observation
        return AddonDrift(
            addon=row.name,
            state=row.state,
            resources=list(obs.get("drift") or []),
            omitted=int(obs.get("drift_omitted") or 0),
            conflicts=list(obs.get("conflicts") or []),
            definition_diff=list(obs.get("definition_diff") or []),
        )

    return await ctx.db(work)


@router.get("/clusters/{name}/addons/{addon}/transitions")
async def addon_transitions(
    name: str,
    addon: str,
    ctx: Ctx,
    _who: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[TransitionOut]:
    """When the add-on changed state, to what, and why (newest first)."""

    def work(session: Session) -> Page[TransitionOut]:
        cluster, row = _row(session, name, addon)
        rows, total = addon_state.transitions(
            session, cluster, row.name, offset=(page - 1) * page_size, limit=page_size
        )
        return page_of([TransitionOut.of(r) for r in rows], total, page, page_size)

    return await ctx.db(work)


async def _read(ctx: Ctx, name: str, addon: str, who: str, action: JobAction, **extra: Any) -> dict[str, Any]:
    row = await ctx.db(lambda s: _row(s, name, addon)[1])
    payload = {"addon": row.name, "namespace": row.namespace, **extra}
    return await read_through_agent(ctx, name, who, action, payload)


@router.get("/clusters/{name}/addons/{addon}/values")
async def addon_values(name: str, addon: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """The deployed values; secret values are masked by the agent (their plaintext never leaves it)."""
    return await _read(ctx, name, addon, who.name, JobAction.RELEASE_VALUES)


@router.get("/clusters/{name}/addons/{addon}/manifest")
async def addon_manifest(
    name: str,
    addon: str,
    ctx: Ctx,
    who: Reader,
    revision: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> dict[str, Any]:
    """The rendered manifest of a revision (default: the current one), Secret data masked."""
    return await _read(ctx, name, addon, who.name, JobAction.RELEASE_MANIFEST, revision=revision)


@router.get("/clusters/{name}/addons/{addon}/history")
async def addon_history(name: str, addon: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """Helm revisions, newest first: revision, chart version, status, updated, description."""
    return await _read(ctx, name, addon, who.name, JobAction.RELEASE_HISTORY)


@router.get("/clusters/{name}/addons/{addon}/events")
async def addon_events(name: str, addon: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """Kubernetes events of the add-on's resources (and their pods), oldest first."""
    return await _read(ctx, name, addon, who.name, JobAction.ADDON_EVENTS)


@router.get("/clusters/{name}/releases")
async def helm_releases(name: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """Every Helm release in the cluster, `managed` when Moorage deployed it for this cluster."""
    found = await read_through_agent(ctx, name, who.name, JobAction.HELM_RELEASES, {})
    for release in found.get("releases") or []:
        release["managed"] = release.get("cluster_label") == name
    return found


MAX_PREVIEW_APPLICATIONS = 10_000  # a bound on what one preview reads through the agent


@router.get("/clusters/{name}/argocd/migration")
async def argocd_migration(name: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """The migration preview: every Argo CD Application in the cluster with whether it can move to
    the native engine and why not, and the kinds it tracks that no health rule judges
    (spec/migration.py, evaluated by the agent, which knows the rules and the user's checks in force).
    Read through the agent, a page at a time; changes nothing. The migration itself is declarative:
    an add-on whose engine becomes ankra_native migrates at the next sync (docs/architecture.md)."""
    found: list[dict[str, Any]] = []
    offset, total = 0, None
    while (total is None or offset < total) and offset < MAX_PREVIEW_APPLICATIONS:
        page = await read_through_agent(
            ctx, name, who.name, JobAction.ARGOCD_MIGRATION, {"offset": offset, "limit": 500}
        )
        items = [a for a in page.get("applications") or [] if isinstance(a, dict)]
        found.extend(items)
        total, offset = int(page.get("total") or 0), offset + max(1, len(items))
    return {
        "cluster": name,
        "applications": found,
        "eligible": sum(1 for f in found if f.get("eligible") is True),
        "moorage_applications": sum(1 for f in found if f.get("addon")),
        "truncated": bool(total and total > len(found)),
        "how": "set deployment_engine (or the add-on's settings.engine) to ankra_native in the "
        "definition; each eligible add-on migrates at the next sync, resuming after any restart",
    }


@router.post("/clusters/{name}/argocd/migration", status_code=202)
async def confirm_argocd_migration(name: str, ctx: Ctx, who: Writer, wait: WaitSeconds = 0) -> JSONResponse:
    """Confirm the migration (`moorage cluster migrate NAME --confirm`): the cluster's last applied
    definition is applied again with the ArgoCD engine switched to the native one
    (server/migration.py), so each eligible add-on migrates in that sync; the answer is that apply's,
    with the changes made. A definition kept in Git is changed there instead (409 says so)."""

    def last(session: Session) -> dict[str, Any] | None:
        cluster = service.get_cluster(session, name)
        if store.get_repository(session, cluster) is not None:
            raise HTTPException(
                409,
                detail=f"cluster {name!r} is synced from Git, which holds its definition: set "
                "deployment_engine (and any add-on's settings.engine) to ankra_native there, in a commit or "
                "with `moorage stacks`; the next sync migrates each eligible add-on",
            )
        return addon_state.last_definition(session, cluster)

    found = await ctx.db(last)
    if found is None or not isinstance(found.get("files"), dict):
        raise HTTPException(409, detail=f"cluster {name!r} has no applied definition to migrate yet")
    root = str(found.get("root") or "import-cluster.yaml")
    files, changes = to_native(found["files"], root)
    if not changes:
        raise HTTPException(
            409, detail=f"the last definition of cluster {name!r} uses no argo_cd engine: nothing to migrate"
        )
    answer = await operations.apply(name, ApplyRequest(files=files, root=root), ctx, who, wait)
    if answer.status_code >= 400:
        return answer
    body = json.loads(bytes(answer.body))
    return JSONResponse({**body, "changes": changes}, status_code=answer.status_code)


@router.post("/clusters/{name}/argocd/decommission")
async def decommission_argocd(name: str, ctx: Ctx, _who: Admin) -> dict[str, Any]:
    """Decommission Argo CD on the cluster, a one-way step: refused while an add-on still runs on
    the ArgoCD engine (as the agent last reported); afterwards definitions that use engine argo_cd
    are refused. Moorage holds nothing for Argo CD to forget (it drives Argo CD through the agent's
    ServiceAccount, with no Argo CD credentials); the Argo CD installation and every Application
    Moorage does not own stay as they are."""

    def work(session: Session) -> dict[str, Any]:
        cluster = service.get_cluster(session, name)
        rows = session.scalars(select(AddonState).where(AddonState.cluster_id == cluster.id)).all()
        if cluster.argocd_decommissioned_at is None:
            still = sorted(r.name for r in rows if (r.observation or {}).get("engine") == "argo_cd")
            if still:
                shown = ", ".join(still[:10]) + (f" and {len(still) - 10} more" if len(still) > 10 else "")
                raise HTTPException(
                    409,
                    detail=f"{len(still)} add-on(s) of cluster {name!r} still run on Argo CD ({shown}); "
                    "set their engine to ankra_native in the definition and sync (`moorage cluster migrate "
                    f"{name}` shows which can move), then decommission",
                )
            cluster.argocd_decommissioned_at = ctx.clock()
        not_synced = sorted(r.name for r in rows if r.state != State.SYNCED.value)
        return {
            "cluster": name,
            "decommissioned_at": cluster.argocd_decommissioned_at.isoformat(),
            "not_synced": not_synced,
            "forgotten": [],
            "untouched": "the Argo CD installation and every Application Moorage does not own",
        }

    return await ctx.db(work)


# --------------------------------------------------------------------------- actions


async def _queue_and_wait(
    ctx: Ctx, name: str, action: JobAction, payload: dict[str, Any], kind: str, who: str, wait: float
) -> tuple[str, str, list[str], dict[str, Any]]:
    """Queue one job for the cluster's agent; wait up to `wait` seconds for its end."""

    def create(session: Session) -> tuple[str, JobMessage]:
        cluster = service.get_cluster(session, name)
        operation, message = service.create_operation_with_job(
            session,
            cluster,
            action=action,
            payload=payload,
            timeout_seconds=600,
            operation_kind=kind,
            created_by=who,
            now=ctx.clock(),
        )
        return operation.id, message

    operation_id, message = await ctx.db(create)
    try:
        await ctx.bus.publish_job(message)
    except Exception as e:
        reason = f"could not be queued for the agent: {e}"
        await ctx.db(lambda s: service.fail_job(s, message.job_id, reason, ctx.clock()))
        raise HTTPException(503, detail=f"the job {reason}; retry") from None
    await ctx.db(lambda s: service.mark_dispatched(s, message.job_id, ctx.clock()))

    def view(session: Session) -> tuple[str, list[str], dict[str, Any]]:
        operation = service.get_operation(session, operation_id)
        (job,) = operation.jobs
        return operation.state, list(job.messages or []), dict(job.result or {})

    state, messages, result = await ctx.db_until(
        view, lambda v: v[0] in service.FINAL_OPERATION_STATES, wait, POLL_SECONDS
    )
    return operation_id, state, messages, result


def _definition(session: Session, name: str, addon: str) -> tuple[dict[str, Any], AddonState]:
    cluster, row = _row(session, name, addon)
    payload = addon_state.last_definition(session, cluster)
    if payload is None:
        raise service.Conflict(
            f"cluster {name!r} has no definition yet: apply one (`moorage cluster apply`) or connect Git"
        )
    return payload, row


def _publish(ctx: Ctx, change: addon_state.Change | None) -> None:
    if change is not None:
        ctx.events.publish([change.to_dict()])


async def _detail(ctx: Ctx, name: str, addon: str) -> AddonDetail | None:
    def work(session: Session) -> AddonDetail | None:
        cluster = service.get_cluster(session, name)
        row = addon_state.get_addon(session, cluster, addon)
        return AddonDetail.of(row, store.repository_of(session, cluster.id)) if row else None

    return await ctx.db(work)


@router.post("/clusters/{name}/addons/{addon}/rollback")
async def rollback(
    name: str, addon: str, body: RollbackRequest, ctx: Ctx, who: Writer, wait: WaitSeconds = 300
) -> AddonAction:
    """`helm rollback` through the agent. The add-on is then held at that revision: syncs (and so
    self-heal toward Git) leave it until `resume` or the next commit that changes it."""
    row = await ctx.db(lambda s: _row(s, name, addon)[1])
    payload = {"addon": row.name, "namespace": row.namespace, "revision": body.revision}
    operation_id, state, messages, _ = await _queue_and_wait(
        ctx, name, JobAction.ROLLBACK, payload, "rollback", who.name, wait
    )
    if state == service.OperationState.SUCCESS:

        def held(session: Session) -> addon_state.Change | None:
            cluster, current = _row(session, name, addon)
            return addon_state.hold(session, cluster, current, body.revision, Cause.ROLLBACK, ctx.clock())

        _publish(ctx, await ctx.db(held))
    return AddonAction(
        operation_id=operation_id,
        operation_state=state,
        messages=messages,
        addon=await _detail(ctx, name, addon),
    )


async def _sync_one(ctx: Ctx, name: str, addon: str, who: str, wait: float, kind: str) -> AddonAction:
    def work(session: Session) -> dict[str, Any]:
        payload, row = _definition(session, name, addon)
        cluster = service.get_cluster(session, name)
        held = [n for n in addon_state.held_addons(session, cluster) if n != row.name]
        return {**payload, "only": [row.name], "held": held, "trigger": "manual"}

    payload = await ctx.db(work)
    operation_id, state, messages, _ = await _queue_and_wait(
        ctx, name, JobAction.SYNC, payload, kind, who, wait
    )
    return AddonAction(
        operation_id=operation_id,
        operation_state=state,
        messages=messages,
        addon=await _detail(ctx, name, addon),
    )


@router.post("/clusters/{name}/addons/{addon}/resume")
async def resume(name: str, addon: str, ctx: Ctx, who: Writer, wait: WaitSeconds = 300) -> AddonAction:
    """End a rollback hold and deploy what the definition says for this add-on."""

    def release(session: Session) -> addon_state.Change | None:
        cluster, row = _row(session, name, addon)
        return addon_state.release_hold(session, cluster, row, Cause.RESUME, ctx.clock())

    _publish(ctx, await ctx.db(release))
    return await _sync_one(ctx, name, addon, who.name, wait, "resume")


@router.post("/clusters/{name}/addons/{addon}/sync")
async def sync_addon(name: str, addon: str, ctx: Ctx, who: Writer, wait: WaitSeconds = 300) -> AddonAction:
    """Deploy this add-on as the definition says, now (the manual sync of `automated: false`)."""
    return await _sync_one(ctx, name, addon, who.name, wait, "addon_sync")


# --------------------------------------------------------------------------- live events


@router.get("/events", tags=["events"])
async def events(
    request: Request,
    ctx: Ctx,
    _who: Reader,
    cluster: Annotated[str | None, Query(max_length=63, description="Only this cluster's changes.")] = None,
) -> StreamingResponse:
    """Server-sent events: one `addon` event per lifecycle state change, as it happens."""

    async def stream() -> AsyncIterator[str]:
        async with ctx.events.subscribe() as queue:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if event is None:
                    yield "event: overflow\ndata: {}\n\n"
                    return
                if cluster is not None and event.get("cluster") != cluster:
                    continue
                yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
