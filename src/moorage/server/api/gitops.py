"""/api/v1/clusters/{name}/gitops: connect a cluster to its Git repository, see the sync status and
history, and Sync Now (optionally a given commit of the branch)."""

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from moorage.server import egress, service
from moorage.server.api.deps import Ctx, Reader, WaitSeconds, Writer
from moorage.server.api.gitops_schemas import (
    Connected,
    ConnectRequest,
    GitOpsStatus,
    SettingsUpdate,
    SyncOut,
    SyncRequest,
    SyncRequested,
)
from moorage.server.api.resources import read_through_agent
from moorage.server.api.schemas import Page, page_of
from moorage.server.db.models import GitSync
from moorage.server.gitops import repourl, store
from moorage.spec.protocol import JobAction

router = APIRouter(prefix="/clusters/{name}/gitops", tags=["gitops"])
log = logging.getLogger("moorage.server.gitops")

WAIT_POLL_SECONDS = 0.2


def webhook_base(ctx: Ctx) -> str:
    return ctx.settings.base_url() + "/api/v1/webhooks"


@router.get("/status")
async def gitops_status(name: str, ctx: Ctx, _who: Reader) -> GitOpsStatus:
    base = webhook_base(ctx)

    def work(session: Session) -> GitOpsStatus:
        cluster = service.get_cluster(session, name)
        return GitOpsStatus.of(cluster, store.get_repository(session, cluster), base)

    return await ctx.db(work)


async def _pvc_count(ctx: Ctx, name: str, who: str) -> int:
    """PersistentVolumeClaims in the cluster, asked of its agent (the server never reaches in)."""
    try:
        result = await read_through_agent(
            ctx,
            name,
            who,
            JobAction.LIST_RESOURCES,
            {"api_version": "v1", "kind": "PersistentVolumeClaim", "limit": 1},
        )
    except HTTPException as e:
        raise HTTPException(
            409,
            detail=f"repointing needs to know whether cluster {name!r} holds PersistentVolumeClaims, "
            f"and its agent could not tell ({e.detail}); pass allow_repoint_destroying_data "
            "(--allow-repoint-destroying-data) to repoint anyway",
        ) from None
    return int(result.get("total") or 0)


async def _check_egress(ctx: Ctx, url: str) -> None:
    """A repository on a loopback, private or link-local address is refused at once (each fetch
    checks again: a name may resolve elsewhere later)."""
    found = repourl.endpoint(url)
    if found is None:
        return
    try:
        await egress.vet(found[1], found[2], ctx.settings.egress_policy())
    except egress.EgressRefused as e:
        if not e.temporary:  # a name that does not resolve yet is the sync's to report
            raise HTTPException(422, detail=f"the repository URL is refused: {e.message}") from None


@router.put("")
async def connect(name: str, body: ConnectRequest, ctx: Ctx, who: Writer) -> Connected:
    """Connect (or repoint) the cluster. Repointing to another URL, branch or path prunes whatever the
    new source does not define (ankra-spec §2.2), so it needs `allow_repoint`, and also
    `allow_repoint_destroying_data` when the cluster holds PVCs."""
    source = store.checked_source(
        provider=body.provider or ("bitbucket_cloud" if "bitbucket.org" in body.url.lower() else "github"),
        url=body.url,
        branch=body.branch,
        path=body.path or store.default_path(name),
        allow_file=ctx.settings.git_allow_file,
        credential_name=body.credential_name,
        poll_interval_seconds=body.poll_interval_seconds,
        workspace=body.workspace,
        repo_slug=body.repo_slug,
        project_key=body.project_key,
        instance_url=body.instance_url,
        repository=body.repository,
    )
    secret = body.webhook_secret.get_secret_value() if body.webhook_secret is not None else None
    if secret is not None:
        store.check_webhook_secret(secret)
    await _check_egress(ctx, source.url)

    def repoint(session: Session) -> list[str]:
        cluster = service.get_cluster(session, name)
        if source.credential_name:
            credential = store.get_credential(session, source.credential_name)  # 404 before any other check
            why = store.credential_refusal(
                credential,
                source.url,
                loopback_http=store.loopback_http(ctx.settings.egress_policy()),
                git=True,
            )
            if why is not None:
                raise store.CredentialRefused(why)
        return store.repoint_of(store.previous_source(session, cluster), source)

    changes = await ctx.db(repoint)
    if changes:
        what = "; ".join(changes)
        if not body.allow_repoint:
            raise HTTPException(
                409,
                detail=f"this repoints cluster {name!r} ({what}): everything the new source does not "
                "define will be pruned. Compare both sources first (git diff), then pass allow_repoint "
                "(--allow-repoint)",
            )
        if not body.allow_repoint_destroying_data:
            pvcs = await _pvc_count(ctx, name, who.name)
            if pvcs:
                raise HTTPException(
                    409,
                    detail=f"cluster {name!r} holds {pvcs}+ PersistentVolumeClaim(s); repointing ({what}) "
                    "may destroy their data. Pass allow_repoint_destroying_data "
                    "(--allow-repoint-destroying-data) as well",
                )
    base = webhook_base(ctx)

    def work(session: Session) -> Connected:
        cluster = service.get_cluster(session, name)
        repo, generated = store.connect(
            session,
            ctx.box,
            cluster,
            source,
            default_poll_seconds=ctx.settings.git_poll_seconds,
            webhook_secret=secret,
            triggered_by=f"connect by {who.name}",
            now=ctx.clock(),
            loopback_http=store.loopback_http(ctx.settings.egress_policy()),
            edit_mode=body.edit_mode,
        )
        status = GitOpsStatus.of(cluster, repo, base)
        return Connected(**status.model_dump(), webhook_secret=generated)

    out = await ctx.db(work)
    ctx.gitops.wake()
    return out


@router.patch("")
async def update_settings(name: str, body: SettingsUpdate, ctx: Ctx, who: Writer) -> GitOpsStatus:
    """Change how the connection is used without repointing it or asking for a sync: where Stack
    Builder saves go (`edit_mode`)."""
    base = webhook_base(ctx)

    def work(session: Session) -> GitOpsStatus:
        cluster = service.get_cluster(session, name)
        repo = store.get_repository(session, cluster)
        if repo is None:
            raise service.NotFound(
                f"cluster {name!r} is not connected to a Git repository; connect it with "
                "`moorage cluster connect` first"
            )
        if repo.edit_mode != body.edit_mode:
            log.info("%s set the edit mode of cluster %s to %s", who.name, name, body.edit_mode)
        repo.edit_mode = body.edit_mode
        repo.updated_at = ctx.clock()
        return GitOpsStatus.of(cluster, repo, base)

    return await ctx.db(work)


@router.delete("")
async def disconnect(name: str, ctx: Ctx, _who: Writer) -> GitOpsStatus:
    """Stop syncing from Git; the cluster keeps what is deployed and the history stays."""
    base = webhook_base(ctx)

    def work(session: Session) -> GitOpsStatus:
        cluster = service.get_cluster(session, name)
        store.disconnect(session, cluster)
        return GitOpsStatus.of(cluster, None, base)

    return await ctx.db(work)


@router.post("/webhook-secret/rotate")
async def rotate_webhook_secret(name: str, ctx: Ctx, _who: Writer) -> Connected:
    base = webhook_base(ctx)

    def work(session: Session) -> Connected:
        cluster = service.get_cluster(session, name)
        repo = store.get_repository(session, cluster)
        if repo is None:
            raise service.NotFound(f"cluster {name!r} is not connected to a Git repository")
        secret = store.rotate_webhook_secret(session, ctx.box, repo)
        return Connected(**GitOpsStatus.of(cluster, repo, base).model_dump(), webhook_secret=secret)

    return await ctx.db(work)


@router.post(
    "/sync",
    status_code=202,
    responses={200: {"model": SyncRequested, "description": "the sync ended within `wait`"}},
)
async def sync_now(
    name: str, ctx: Ctx, who: Writer, body: SyncRequest | None = None, wait: WaitSeconds = 0
) -> JSONResponse:
    """Sync Now: fetch the branch and sync its tip, or `revision` (a commit of the branch)."""
    revision = None
    if body is not None and body.revision:
        try:
            revision = repourl.check_revision(body.revision)
        except repourl.RepoInputError as e:
            raise HTTPException(422, detail=e.message) from None

    def work(session: Session) -> datetime:
        cluster = service.get_cluster(session, name)
        repo = store.get_repository(session, cluster)
        if repo is None:
            raise service.NotFound(
                f"cluster {name!r} is not connected to a Git repository; "
                "connect it with `moorage cluster connect`"
            )
        now = ctx.clock()
        store.request_sync(session, repo, "manual", who.name, revision=revision, now=now)
        return now

    requested_at = await ctx.db(work)
    ctx.gitops.wake()
    out = SyncRequested(cluster_name=name, requested_at=requested_at, revision=revision)
    if wait > 0:
        out.sync = await ctx.db_until(
            lambda s: _finished_since(s, name, requested_at),
            lambda row: row is not None,
            wait,
            WAIT_POLL_SECONDS,
        )
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if out.sync is None else 200)


def _finished_since(session: Session, name: str, since: datetime) -> SyncOut | None:
    cluster = service.get_cluster(session, name)
    row = (
        session.query(GitSync)
        .filter(
            GitSync.cluster_id == cluster.id,
            GitSync.requested_at >= since,  # this request, or a later one it was coalesced into
            GitSync.status != "running",
        )
        .order_by(GitSync.started_at)
        .first()
    )
    return SyncOut.of(row, store.get_repository(session, cluster)) if row is not None else None


@router.get("/history")
async def history(
    name: str,
    ctx: Ctx,
    _who: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 10,
    sort: store.HistoryColumn = "started_at",
    order: Literal["asc", "desc"] = "desc",
) -> Page[SyncOut]:
    def work(session: Session) -> Page[SyncOut]:
        cluster = service.get_cluster(session, name)
        rows, total = store.history(session, cluster, page=page, page_size=page_size, sort=sort, order=order)
        repo = store.get_repository(session, cluster)
        return page_of([SyncOut.of(r, repo) for r in rows], total, page, page_size)

    return await ctx.db(work)


@router.get("/history/{sync_id}")
async def sync_detail(name: str, sync_id: str, ctx: Ctx, _who: Reader) -> SyncOut:
    def work(session: Session) -> SyncOut:
        cluster = service.get_cluster(session, name)
        row = store.get_sync(session, sync_id)
        if row.cluster_id != cluster.id:
            raise service.NotFound(f"no sync {sync_id} for cluster {name!r}")
        return SyncOut.of(row, store.get_repository(session, cluster))

    return await ctx.db(work)
