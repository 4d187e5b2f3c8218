"""/api/v1/agent: what an agent calls with its own token (never API tokens)."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from moorage.server import registries, service
from moorage.server.api.deps import Ctx
from moorage.server.api.schemas import AgentRegistration
from moorage.server.auth import AgentPrincipal, require_agent
from moorage.spec.protocol import agent_inbox

router = APIRouter(prefix="/agent", tags=["agent"])


@router.post("/register")
async def register_agent(
    ctx: Ctx, agent: Annotated[AgentPrincipal, Depends(require_agent)]
) -> AgentRegistration:
    """The agent learns where NATS is, the CA its certificate is from, and who it is there; it then
    connects as `nats_user` with its agent token as the password. The CA comes over this HTTPS
    connection, which the agent already trusts with its token (docs/decisions.md)."""
    if not ctx.agent_nats_url:
        raise HTTPException(503, detail="the server does not know the NATS URL for agents yet; retry")
    return AgentRegistration(
        cluster_id=agent.cluster_id,
        cluster_name=agent.cluster_name,
        nats_url=ctx.agent_nats_url,
        nats_user=service.agent_nats_user(agent.cluster_id),
        inbox_prefix=agent_inbox(agent.cluster_id),
        nats_ca=ctx.agent_nats_ca,
        seal_identity=await ctx.db(lambda s: _seal_identity(ctx, s, agent.cluster_id)),
    )


def _seal_identity(ctx: Ctx, session: Session, cluster_id: str) -> str | None:
    cluster = service.get_cluster_by_id(session, cluster_id)
    return registries.agent_identity(ctx.box, cluster) if cluster is not None else None
