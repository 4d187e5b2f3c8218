"""/api/v1/tokens: API tokens for people and automation (admin only)."""

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from moorage.server import service
from moorage.server.api.deps import Admin, Ctx
from moorage.server.api.schemas import TokenCreate, TokenCreated, TokenOut

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, ctx: Ctx, _who: Admin) -> TokenCreated:
    def work(session: Session) -> TokenCreated:
        row, plaintext = service.create_token(
            session, ctx.token_hasher, body.name, [s.value for s in body.scopes]
        )
        return TokenCreated(**TokenOut.of(row).model_dump(), token=plaintext)

    return await ctx.db(work)


@router.get("")
async def list_tokens(ctx: Ctx, _who: Admin) -> list[TokenOut]:
    return await ctx.db(lambda s: [TokenOut.of(r) for r in service.list_tokens(s)])


@router.delete("/{token_id}")
async def revoke_token(token_id: str, ctx: Ctx, _who: Admin) -> TokenOut:
    return await ctx.db(lambda s: TokenOut.of(service.revoke_token(s, token_id, ctx.clock())))
