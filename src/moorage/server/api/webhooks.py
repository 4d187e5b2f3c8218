"""/api/v1/webhooks/{provider}: push webhooks from GitHub, Bitbucket Cloud and Bitbucket Data Center.

No API token: a delivery is authentic when its HMAC-SHA256 signature matches the webhook secret of a
cluster connected to the pushed repository. The payload is untrusted and only decides which
clusters get a sync request; the sync itself fetches from Git. Oversized bodies are refused by the
body-limit middleware before they are read."""

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.orm import Session

from moorage.server.api.deps import Ctx
from moorage.server.api.gitops_schemas import WebhookAccepted
from moorage.server.gitops import store, webhooks
from moorage.server.gitops.repourl import Provider

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

PROVIDERS: dict[str, Provider] = {
    "github": "github",
    "bitbucket-cloud": "bitbucket_cloud",
    "bitbucket-data-center": "bitbucket_data_center",
}


@router.post("/{provider}", status_code=202)
async def receive(provider: str, request: Request, ctx: Ctx) -> WebhookAccepted:
    kind = PROVIDERS.get(provider)
    if kind is None:
        raise HTTPException(404, detail=f"unknown webhook provider {provider!r}; use {', '.join(PROVIDERS)}")
    body = await request.body()
    try:
        event = webhooks.parse(kind, request.headers, body)
    except webhooks.WebhookError as e:
        raise HTTPException(e.status, detail=e.message) from None
    if event.kind != "push":
        return WebhookAccepted(event=event.kind, ignored=[event.reason] if event.reason else [])

    def work(session: Session) -> WebhookAccepted:
        out = WebhookAccepted(event="push")
        known = False
        for push in event.pushes:
            candidates = store.webhook_candidates(session, push.repository, kind)
            known = known or bool(candidates)
            authentic = [
                repo
                for repo in candidates
                if webhooks.signature_valid(kind, request.headers, body, store.webhook_secret(ctx.box, repo))
            ]
            if candidates and not authentic:
                raise HTTPException(
                    401,
                    detail=f"the signature does not match the webhook secret of any cluster connected to "
                    f"{push.repository}; check the secret configured at the Git provider",
                )
            for repo in authentic:
                cluster = repo.cluster.name
                if push.branch != repo.branch:
                    out.ignored.append(
                        f"{cluster}: push to {push.branch or 'a tag'}, not branch {repo.branch}"
                    )
                elif push.after is None:
                    # a deleted branch never means "delete everything": the last sync stays applied
                    out.ignored.append(f"{cluster}: branch {repo.branch} was deleted; nothing synced")
                else:
                    store.request_sync(
                        session,
                        repo,
                        "webhook",
                        f"{provider} push {push.after[:12]}"
                        + (f" ({event.delivery})" if event.delivery else ""),
                        pending_sha=push.after,
                        now=ctx.clock(),
                    )
                    out.enqueued.append(cluster)
        if not known:
            names = ", ".join(sorted({str(p.repository) for p in event.pushes})) or "the pushed repository"
            raise HTTPException(404, detail=f"no cluster is connected to {names} ({provider})")
        return out

    accepted = await ctx.db(work)
    if accepted.enqueued:
        ctx.gitops.wake()
    return accepted
