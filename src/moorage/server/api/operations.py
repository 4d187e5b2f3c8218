"""Applying a definition to a cluster, and the operations (with their jobs) that record it."""

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from moorage.server import addon_state, registries, service
from moorage.server.api.deps import Ctx, Reader, WaitSeconds, Writer
from moorage.server.api.schemas import ApplyRequest, OperationOut, Page, page_of
from moorage.server.bundle import validate_bundle
from moorage.spec.migration import decommissioned_issue
from moorage.spec.protocol import JobAction, JobMessage

log = logging.getLogger("moorage.server.api")

router = APIRouter(tags=["operations"])

POLL_SECONDS = 0.2


@router.post(
    "/clusters/{name}/apply",
    status_code=202,
    responses={200: {"model": OperationOut, "description": "the operation ended within `wait`"}},
)
async def apply(name: str, body: ApplyRequest, ctx: Ctx, who: Writer, wait: WaitSeconds = 0) -> JSONResponse:
    """Validate a repository bundle and queue one write job (sync) for the cluster's agent."""
    decommissioned = await ctx.db(lambda s: service.get_cluster(s, name).argocd_decommissioned_at)  # or 404
    check = await run_in_threadpool(validate_bundle, body.files, body.root)
    if decommissioned is not None and check.resolved is not None:
        refused = decommissioned_issue(check.resolved, decommissioned.isoformat())
        check.errors += [refused] if refused else []
    if not check.ok:
        n = len(check.errors)
        return JSONResponse(
            {
                "detail": f"the definition has {n} error{'s' if n != 1 else ''}",
                "errors": check.errors,
                "warnings": check.warnings,
            },
            status_code=422,
        )

    sealed, errors, warnings = await registries.prepare_job(
        ctx.db,
        ctx.box,
        lambda session: service.get_cluster(session, name),
        check.registries,
        check.resolved,
        policy=ctx.settings.egress_policy(),
        ghcr_fallback=ctx.settings.ghcr_git_token,
    )
    if errors:
        n = len(errors)
        return JSONResponse(
            {
                "detail": f"the definition has {n} error{'s' if n != 1 else ''}",
                "errors": errors,
                "warnings": [*check.warnings, *warnings],
            },
            status_code=422,
        )

    def create(session: Session) -> tuple[str, JobMessage]:
        cluster = service.get_cluster(session, name)
        operation, message = service.create_operation_with_job(
            session,
            cluster,
            action=JobAction.SYNC,
            # a new definition, like a commit: automated add-ons deploy, manual ones wait for
            # `addons sync`, rolled-back ones stay held
            payload={
                "files": body.files,
                "root": body.root,
                "trigger": "auto",
                "held": addon_state.held_addons(session, cluster),
                **sealed,
            },
            timeout_seconds=check.timeout_seconds,
            operation_kind="apply",
            created_by=who.name,
            now=ctx.clock(),
        )
        return operation.id, message

    operation_id, message = await ctx.db(create)
    try:
        await ctx.bus.publish_job(message)
    except Exception as e:
        log.warning("queueing job %s failed: %s", message.job_id, e)
        reason = f"could not be queued for the agent: {e}"
        await ctx.db(lambda s: service.fail_job(s, message.job_id, reason, ctx.clock()))
        raise HTTPException(
            503, detail=f"operation {operation_id} failed: the job could not be queued for the agent ({e})"
        ) from None
    await ctx.db(lambda s: service.mark_dispatched(s, message.job_id, ctx.clock()))

    out = await ctx.db_until(
        lambda s: OperationOut.of(service.get_operation(s, operation_id)),
        lambda o: o.state in service.FINAL_OPERATION_STATES,
        wait,
        POLL_SECONDS,
    )
    finished = out.state in service.FINAL_OPERATION_STATES
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if finished else 202)


@router.get("/clusters/{name}/operations")
async def list_operations(
    name: str,
    ctx: Ctx,
    _who: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 25,
    state: Annotated[str | None, Query(description="only operations in this state")] = None,
) -> Page[OperationOut]:
    if state is not None and state not in service.OPERATION_STATES:
        raise HTTPException(
            422, detail=f"unknown state {state!r}; use one of {', '.join(service.OPERATION_STATES)}"
        )

    def work(session: Session) -> Page[OperationOut]:
        cluster = service.get_cluster(session, name)
        rows, total = service.list_operations(
            session, cluster, offset=(page - 1) * page_size, limit=page_size, state=state
        )
        return page_of([OperationOut.of(r) for r in rows], total, page, page_size)

    return await ctx.db(work)


@router.get("/operations/{operation_id}")
async def get_operation(operation_id: str, ctx: Ctx, _who: Reader) -> OperationOut:
    return await ctx.db(lambda s: OperationOut.of(service.get_operation(s, operation_id)))


@router.post("/operations/{operation_id}/cancel")
async def cancel_operation(operation_id: str, ctx: Ctx, _who: Writer) -> OperationOut:
    """Pending jobs end as cancelled; running ones are told to stop (cancelling until the agent answers)."""
    out = await ctx.db(lambda s: OperationOut.of(service.cancel_operation(s, operation_id, ctx.clock())))
    stopping = [job.id for job in out.jobs if job.state == "cancelling"]
    queued = [job.id for job in out.jobs if job.state == "cancelled"]
    if stopping or queued:
        try:
            await ctx.bus.cancel_jobs(out.cluster_id, stopping + queued)
        except Exception as e:  # the agent may be offline: it skips cancelled jobs it is handed later
            log.warning("telling the agent to cancel failed: %s", e)
    return out
