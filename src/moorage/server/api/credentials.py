"""/api/v1/credentials: Git credentials (token or SSH key) and chart registry credentials (helm, oci),
stored encrypted, referenced by name, each bound to the hosts it was made for. The secret goes in
once and never comes out; rotating replaces it in place; binding to another host needs admin."""

from fastapi import APIRouter, status
from sqlalchemy.orm import Session

from moorage.server.api.deps import Admin, Ctx, Reader, Writer
from moorage.server.api.gitops_schemas import (
    CredentialCreate,
    CredentialHosts,
    CredentialOut,
    CredentialRotate,
)
from moorage.server.gitops import store

router = APIRouter(prefix="/credentials", tags=["credentials"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_credential(body: CredentialCreate, ctx: Ctx, _who: Writer) -> CredentialOut:
    def work(session: Session) -> CredentialOut:
        row = store.create_credential(
            session,
            ctx.box,
            body.name,
            body.kind,
            body.secret.get_secret_value(),
            body.username,
            hosts=body.hosts,
            ca_bundle=body.ca_bundle,
            client_cert=body.client_cert,
            client_key=body.client_key.get_secret_value() if body.client_key is not None else None,
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


@router.post("/{name}/hosts")
async def allow_credential_hosts(name: str, body: CredentialHosts, ctx: Ctx, _who: Admin) -> CredentialOut:
    """Bind the credential to more hosts or URL prefixes: it will be sent there (admin only)."""
    return await ctx.db(lambda s: CredentialOut.of(store.allow_hosts(s, name, body.hosts)))
