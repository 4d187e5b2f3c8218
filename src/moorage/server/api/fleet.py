"""/api/v1/fleet/rollout: the fleet roll-forward's plan, progress and failure (server/rollout.py)."""

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from moorage.server import rollout
from moorage.server.api.deps import Ctx, Reader

router = APIRouter(prefix="/fleet", tags=["fleet"])


def roll_forward_of(request: Request) -> rollout.RollForward:
    """This replica's roll-forward (server/app.py makes it; its loop runs when MOORAGE_AGENT_CHART is set)."""
    found: rollout.RollForward = request.app.state.roll_forward
    return found


@router.get("/rollout")
async def rollout_status(request: Request, ctx: Ctx, _who: Reader) -> dict[str, Any]:
    """The roll-forward of the agents to the newest moorage-agent chart version at the source the
    server is configured with (MOORAGE_AGENT_CHART): the target, the state (up_to_date, rolling,
    paused, done, failed), each cluster's part (batch, status, why) and the failure that stopped it."""
    loop = roll_forward_of(request)
    settings = ctx.settings
    out: dict[str, Any] = {
        "enabled": loop.enabled,
        "chart": settings.agent_chart,
        "policy": {
            "batch_size": settings.roll_forward_batch_size,
            "pause_seconds": settings.roll_forward_pause_seconds,
            "report_seconds": settings.roll_forward_report_seconds,
            "poll_seconds": settings.roll_forward_poll_seconds,
            "prereleases": settings.roll_forward_prereleases,
        },
        "target": None,
        "state": "off",
        "checked_at": None,
        "source_error": None,
        "failure": None,
        "batch": None,
        "next_batch_at": None,
        "batches": [],
        "clusters": [],
        "progress": {"upgraded": 0, "total": 0},
    }
    if not loop.enabled:
        out["how"] = "set MOORAGE_AGENT_CHART to the agent chart's source (oci://HOST/PATH/moorage-agent)"
        return out
    if loop.checked_at is None:
        await loop.refresh()
    out.update(checked_at=loop.checked_at, source_error=loop.source_error, target=loop.target)
    target = loop.target
    if target is None:
        out["state"] = "unknown"
        return out
    plan = await ctx.db(lambda s: rollout.plan(s, target, rollout.policy_of(settings), ctx.clock()))
    entries = [asdict(e) for e in plan.entries]
    taking_part = [
        e for e in plan.entries if e.status in ("pending", "upgrading", "upgraded", "failed", "offline")
    ]
    out.update(
        state=plan.state,
        failure=plan.failure,
        batch=plan.batch,
        next_batch_at=plan.next_batch_at,
        batches=[list(b) for b in plan.batches],
        clusters=entries,
        progress={
            "upgraded": sum(e.status == "upgraded" for e in plan.entries),
            "total": len(taking_part),
        },
    )
    return out
