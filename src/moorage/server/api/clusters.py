"""/api/v1/clusters: register, list, get, change, delete clusters; agent tokens; Upgrade Agent (add-ons:
api/addons.py)."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from moorage.server import service
from moorage.server.api.addons import _queue_and_wait
from moorage.server.api.deps import Ctx, Reader, WaitSeconds, Writer
from moorage.server.api.schemas import (
    AgentTokenOut,
    AgentUpgradeOut,
    AgentUpgradeRequest,
    ClusterCreate,
    ClusterCreated,
    ClusterOut,
    ClusterUpdate,
    Page,
    page_of,
)
from moorage.spec.protocol import JobAction

router = APIRouter(prefix="/clusters", tags=["clusters"])

PageNo = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def register_cluster(body: ClusterCreate, ctx: Ctx, _who: Writer) -> ClusterCreated:
    def work(session: Session) -> ClusterCreated:
        cluster, plaintext = service.register_cluster(session, ctx.token_hasher, body.name, body.description)
        return ClusterCreated(**ClusterOut.of(cluster, ctx.clock()).model_dump(), agent_token=plaintext)

    created = await ctx.db(work)
    await ctx.agents_changed(f"cluster {body.name!r}")
    return created


@router.get("")
async def list_clusters(
    ctx: Ctx, _who: Reader, page: PageNo = 1, page_size: PageSize = 25
) -> Page[ClusterOut]:
    def work(session: Session) -> Page[ClusterOut]:
        rows, total = service.list_clusters(session, offset=(page - 1) * page_size, limit=page_size)
        return page_of([ClusterOut.of(r, ctx.clock()) for r in rows], total, page, page_size)

    return await ctx.db(work)


@router.get("/{name}")
async def get_cluster(name: str, ctx: Ctx, _who: Reader) -> ClusterOut:
    return await ctx.db(lambda s: ClusterOut.of(service.get_cluster(s, name), ctx.clock()))


@router.patch("/{name}")
async def update_cluster(name: str, body: ClusterUpdate, ctx: Ctx, _who: Writer) -> ClusterOut:
    """Change a cluster's settings: `agent_roll_forward` (false opts it out of the fleet roll-forward)."""

    def work(session: Session) -> ClusterOut:
        cluster = service.get_cluster(session, name)
        if body.agent_roll_forward is not None:
            cluster.agent_roll_forward = body.agent_roll_forward
        return ClusterOut.of(cluster, ctx.clock())

    return await ctx.db(work)


@router.delete("/{name}")
async def delete_cluster(name: str, ctx: Ctx, _who: Writer) -> ClusterOut:
    deleted = await ctx.db(lambda s: ClusterOut.of(service.delete_cluster(s, name), ctx.clock()))
    await ctx.agents_changed(f"deleting cluster {name!r}")
    return deleted


@router.post("/{name}/agent-token/revoke")
async def revoke_agent_token(name: str, ctx: Ctx, _who: Writer) -> ClusterOut:
    def work(session: Session) -> ClusterOut:
        cluster = service.get_cluster(session, name)
        service.revoke_agent_token(cluster, ctx.clock())
        return ClusterOut.of(cluster, ctx.clock())

    out = await ctx.db(work)
    await ctx.agents_changed(f"revoking the agent token of {name!r}")
    return out


@router.post("/{name}/agent-token/rotate")
async def rotate_agent_token(name: str, ctx: Ctx, _who: Writer) -> AgentTokenOut:
    def work(session: Session) -> AgentTokenOut:
        cluster = service.get_cluster(session, name)
        plaintext = service.rotate_agent_token(session, ctx.token_hasher, cluster)
        return AgentTokenOut(cluster_id=cluster.id, cluster_name=cluster.name, agent_token=plaintext)

    out = await ctx.db(work)
    await ctx.agents_changed(f"the new agent token of {name!r}")
    return out


@router.post("/{name}/agent/upgrade")
async def upgrade_agent(
    name: str, body: AgentUpgradeRequest, ctx: Ctx, who: Writer, wait: WaitSeconds = 300
) -> AgentUpgradeOut:
    """Upgrade Agent: the cluster's agent runs `helm upgrade --reuse-values` of its own release to
    `version` of the chart at `chart`. The job ends when helm has applied it; the new agent then
    reports the version (`chart_version` of the cluster). A failed upgrade leaves the old agent
    running, and the job's messages say why."""
    payload = {"chart": body.chart, "version": body.version}
    operation_id, state, messages, result = await _queue_and_wait(
        ctx, name, JobAction.UPGRADE_AGENT, payload, "upgrade_agent", who.name, wait
    )
    return AgentUpgradeOut(operation_id=operation_id, operation_state=state, messages=messages, result=result)
