"""/api/v1/credentials: Git credentials (token or SSH key), stored encrypted, referenced by name.
The secret goes in once and never comes out; rotating replaces it in place."""

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from moorage.server.api.deps import Ctx, Reader, Writer
from moorage.server.api.gitops_schemas import CredentialCreate, CredentialOut, CredentialRotate
from moorage.server.gitops import store

router = APIRouter(prefix="/credentials", tags=["credentials"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_credential(body: CredentialCreate, ctx: Ctx, _who: Writer) -> CredentialOut:
    def work(session: Session) -> CredentialOut:
        row = store.create_credential(
            session, ctx.box, body.name, body.kind, body.secret.get_secret_value(), body.username
        )
        return CredentialOut.of(row)

    return await ctx.db(work)


@router.get("")
async def list_credentials(ctx: Ctx, _who: Reader) -> list[CredentialOut]:
    return await ctx.db(lambda s: [CredentialOut.of(row, used) for row, used in store.list_credentials(s)])


@router.put("/{name}")
async def rotate_credential(name: str, body: CredentialRotate, ctx: Ctx, _who: Writer) -> CredentialOut:
    def work(session: Session) -> CredentialOut:
        row = store.rotate_credential(session, ctx.box, name, body.secret.get_secret_value(), body.username)
        return CredentialOut.of(row)

    out = await ctx.db(work)
    ctx.gitops.wake()  # clusters in backoff because of this credential try again now
    return out


@router.delete("/{name}")
async def delete_credential(name: str, ctx: Ctx, _who: Writer) -> CredentialOut:
    return await ctx.db(lambda s: CredentialOut.of(store.delete_credential(s, name)))
