"""Browsing a cluster's resources through its agent: each request is a read job, answered by the
agent over NATS (the server never reaches into a cluster)."""

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from moorage.server import service
from moorage.server.api.deps import Ctx, Reader
from moorage.server.db.models import Cluster
from moorage.spec.protocol import JobAction, JobMessage

log = logging.getLogger("moorage.server.api")
router = APIRouter(tags=["resources"])

READ_TIMEOUT_SECONDS = int(os.environ.get("MOORAGE_READ_TIMEOUT_SECONDS", "30"))
SLOW_TICK_SECONDS = 1.0


def online_cluster(session: Session, name: str, now: datetime) -> Cluster:
    """The cluster, if its agent is connected; else 503 at once (a read queued for an offline agent
    would only run when it comes back, long after anyone waits for it)."""
    cluster = service.get_cluster(session, name)
    if service.cluster_state(cluster, now) != "online":
        seen = cluster.last_heartbeat_at.isoformat() if cluster.last_heartbeat_at else "never"
        raise HTTPException(
            503,
            detail=f"the agent of cluster {name} is not connected (last heartbeat: {seen}); reads go "
            "through the agent: start it (`moorage agent`), then retry",
        )
    return cluster


async def read_through_agent(
    ctx: Ctx,
    name: str,
    who: str,
    action: JobAction,
    payload: dict[str, Any],
    timeout_seconds: int = READ_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Queue one read job for the cluster's agent and wait for its answer (at most `timeout_seconds`).
    An offline agent is refused at once (nothing is queued to run a day later), and a read the caller
    gave up on is cancelled."""

    def create(session: Session) -> tuple[str, JobMessage]:
        cluster = online_cluster(session, name, ctx.clock())
        operation, message = service.create_operation_with_job(
            session,
            cluster,
            action=action,
            payload=payload,
            timeout_seconds=timeout_seconds,
            operation_kind=f"read:{action.value}",
            created_by=who,
            now=ctx.clock(),
        )
        return operation.id, message

    operation_id, message = await ctx.db(create)
    final = ("success", "failed", "timeout", "cancelled")
    with ctx.job_waiters.watch(message.job_id) as answered:
        await ctx.bus.publish_job(message)
        await ctx.db(lambda s: service.mark_dispatched(s, message.job_id, ctx.clock()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while True:
            job = await ctx.db(lambda s: _job_view(service.get_operation(s, operation_id)))
            left = deadline - loop.time()
            if job["state"] in final or left <= 0:
                break
            # woken by the result; the slow tick covers a result recorded by another replica
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), min(left, SLOW_TICK_SECONDS))
            answered.clear()
    if job["state"] not in final:
        await _give_up(ctx, operation_id, message)
    if job["state"] == "success":
        result: dict[str, Any] = job["result"]
        return result
    if job["state"] in ("failed", "timeout", "cancelled"):
        raise HTTPException(
            404 if "not found" in " ".join(job["messages"]) else 502, detail="; ".join(job["messages"])
        )
    raise HTTPException(504, detail=f"the agent of cluster {name} did not answer within {timeout_seconds}s")


async def _give_up(ctx: Ctx, operation_id: str, message: JobMessage) -> None:
    """Nobody waits for this read any more: cancel it, so the agent does not run it later."""
    try:
        await ctx.db(lambda s: service.cancel_operation(s, operation_id, ctx.clock()))
        await ctx.bus.cancel_jobs(message.cluster_id, [message.job_id])
    except Exception:  # the 504 stands whether or not the cancel reached the agent
        log.warning("cancelling the unanswered read %s failed", operation_id, exc_info=True)


def _job_view(operation: Any) -> dict[str, Any]:
    (job,) = operation.jobs
    return {"state": job.state, "result": job.result or {}, "messages": list(job.messages or [])}


@router.get("/clusters/{name}/kinds")
async def list_kinds(name: str, ctx: Ctx, who: Reader) -> dict[str, Any]:
    """Resource kinds the cluster serves (core, apps, batch, networking)."""
    return await read_through_agent(ctx, name, who.name, JobAction.LIST_KINDS, {})


@router.get("/clusters/{name}/resources")
async def list_resources(
    name: str,
    ctx: Ctx,
    who: Reader,
    kind: Annotated[str, Query(min_length=1, max_length=63)],
    api_version: Annotated[str, Query(max_length=253)] = "v1",
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    label_selector: Annotated[str | None, Query(max_length=1024)] = None,
    field_selector: Annotated[str | None, Query(max_length=1024)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Objects of one kind, with selectors and pagination; Secret values are masked by the agent."""
    payload = {
        "api_version": api_version,
        "kind": kind,
        "namespace": namespace,
        "label_selector": label_selector,
        "field_selector": field_selector,
        "offset": offset,
        "limit": limit,
    }
    return await read_through_agent(ctx, name, who.name, JobAction.LIST_RESOURCES, payload)


@router.get("/clusters/{name}/resources/{kind}/{object_name}")
async def get_resource(
    name: str,
    kind: str,
    object_name: str,
    ctx: Ctx,
    who: Reader,
    api_version: Annotated[str, Query(max_length=253)] = "v1",
    namespace: Annotated[str | None, Query(max_length=63)] = None,
) -> dict[str, Any]:
    payload = {"api_version": api_version, "kind": kind, "name": object_name, "namespace": namespace}
    return await read_through_agent(ctx, name, who.name, JobAction.GET_RESOURCE, payload)


@router.get("/clusters/{name}/resources/{kind}/{object_name}/events")
async def resource_events(
    name: str,
    kind: str,
    object_name: str,
    ctx: Ctx,
    who: Reader,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
) -> dict[str, Any]:
    """The events of one object, oldest first."""
    payload = {"kind": kind, "name": object_name, "namespace": namespace}
    return await read_through_agent(ctx, name, who.name, JobAction.EVENTS, payload)


@router.get("/clusters/{name}/addons/{addon}/map")
async def addon_map(
    name: str,
    addon: str,
    ctx: Ctx,
    who: Reader,
    namespace: Annotated[str, Query(min_length=1, max_length=63)],
) -> dict[str, Any]:
    """The add-on's release objects with what they own (Deployment → ReplicaSet → Pod, Service →
    EndpointSlice), each with its health."""
    return await read_through_agent(
        ctx, name, who.name, JobAction.RESOURCE_MAP, {"release": addon, "namespace": namespace}
    )


LOG_STREAM_MAX_SECONDS = 600


@router.get("/clusters/{name}/logs/{namespace}/{pod}")
async def pod_logs(
    name: str,
    namespace: str,
    pod: str,
    ctx: Ctx,
    who: Reader,
    container: Annotated[str | None, Query(max_length=63)] = None,
    follow: bool = False,
    tail: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> StreamingResponse:
    """A pod's log as server-sent events (`data: <line>`), streamed by the agent; `event: end` closes it."""
    stream_id = secrets.token_hex(8)
    payload = {
        "stream_id": stream_id,
        "namespace": namespace,
        "pod": pod,
        "container": container,
        "follow": follow,
        "tail_lines": tail,
    }

    def create(session: Session) -> tuple[str, JobMessage]:
        cluster = online_cluster(session, name, ctx.clock())
        _, message = service.create_operation_with_job(
            session,
            cluster,
            action=JobAction.LOGS,
            payload=payload,
            timeout_seconds=LOG_STREAM_MAX_SECONDS,
            operation_kind="read:logs",
            created_by=who.name,
            now=ctx.clock(),
        )
        return cluster.id, message

    cluster_id, message = await ctx.db(create)
    stream = ctx.bus.log_stream(cluster_id, stream_id)
    chunks = await stream.__aenter__()  # subscribed before the job is queued: no line is missed
    try:
        await ctx.bus.publish_job(message)
    except BaseException:
        await stream.__aexit__(None, None, None)
        raise

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                for line in chunk.lines:
                    yield f"data: {line}\n\n".encode()
                if chunk.end:
                    if chunk.error:
                        yield f"event: error\ndata: {chunk.error}\n\n".encode()
                    yield b"event: end\ndata: \n\n"
                    return
        finally:
            await stream.__aexit__(None, None, None)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
