"""/healthz and /metrics (outside /api/v1: probes and Prometheus call them without a token)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from moorage.server.api.deps import Ctx

router = APIRouter(tags=["system"])


@router.get("/healthz")
async def healthz(ctx: Ctx) -> JSONResponse:
    def ping(session: Session) -> None:
        session.execute(text("SELECT 1"))

    try:
        await ctx.db(ping)
    except Exception as e:
        return JSONResponse({"status": "error", "detail": f"database unreachable: {type(e).__name__}"}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
