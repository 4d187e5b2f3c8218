"""/api/v1/webhooks/{provider}: push webhooks from GitHub, Bitbucket Cloud and Bitbucket Data Center.

No API token: a delivery is authentic when its HMAC-SHA256 signature matches the webhook secret of a
cluster connected to the pushed repository. The payload is untrusted and only decides which
clusters get a sync request; the sync itself fetches from Git. Oversized bodies are refused by the
body-limit middleware before they are read. A signed delivery's id (X-GitHub-Delivery,
X-Request-UUID, X-Request-Id) is remembered, so a replay of it is enqueued once; the id is not
covered by the signature, so a replay under a new id is enqueued again: that costs a fetch of the
branch tip, coalesced with any other request, and deploys nothing that is not on the branch."""

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from moorage.server.api.deps import Ctx
from moorage.server.api.gitops_schemas import WebhookAccepted
from moorage.server.db.models import GitRepository
from moorage.server.gitops import store, webhooks
from moorage.server.gitops.repourl import Provider

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

PROVIDERS: dict[str, Provider] = {
    "github": "github",
    "bitbucket-cloud": "bitbucket_cloud",
    "bitbucket-data-center": "bitbucket_data_center",
}


# One answer for every delivery that no connected cluster accepts, whether the repository is
# connected (bad or missing signature) or not (nothing to check it against): a different status or
# text would tell anyone which repositories are connected.
REFUSED = (
    "no cluster connected to the pushed repository accepts this delivery: check the repository URL "
    "the cluster was connected with and the webhook secret configured at the Git provider"
)


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
        accepted: list[tuple[webhooks.Push, list[GitRepository]]] = []
        for push in event.pushes:
            authentic = [
                repo
                for repo in store.webhook_candidates(session, push.repository, kind)
                if webhooks.signature_valid(kind, request.headers, body, store.webhook_secret(ctx.box, repo))
            ]
            if not authentic:
                raise HTTPException(401, detail=REFUSED)
            accepted.append((push, authentic))
        if not accepted:
            raise HTTPException(401, detail=REFUSED)
        # only a signed delivery is remembered: an unsigned one cannot claim a delivery id
        if event.delivery is not None and not store.remember_delivery(
            session, kind, event.delivery, ctx.clock()
        ):
            out.ignored.append(_replayed(event.delivery))
            return out
        for push, repos in accepted:
            for repo in repos:
                _enqueue(session, ctx, provider, event, push, repo, out)
        return out

    try:
        accepted = await ctx.db(work)
    except IntegrityError:  # the same delivery at the same moment: the other request enqueued it
        return WebhookAccepted(event="push", ignored=[_replayed(event.delivery or "")])
    if accepted.enqueued:
        ctx.gitops.wake()
    return accepted


def _replayed(delivery: str) -> str:
    return (
        f"delivery {delivery} was received before; nothing enqueued again "
        "(to sync once more, use Sync Now: `moorage cluster sync`)"
    )


def _enqueue(
    session: Session,
    ctx: Ctx,
    provider: str,
    event: webhooks.WebhookEvent,
    push: webhooks.Push,
    repo: GitRepository,
    out: WebhookAccepted,
) -> None:
    cluster = repo.cluster.name
    if push.branch != repo.branch:
        out.ignored.append(f"{cluster}: push to {push.branch or 'a tag'}, not branch {repo.branch}")
    elif push.after is None:
        # a deleted branch never means "delete everything": the last sync stays applied
        out.ignored.append(f"{cluster}: branch {repo.branch} was deleted; nothing synced")
    else:
        store.request_sync(
            session,
            repo,
            "webhook",
            f"{provider} push {push.after[:12]}" + (f" ({event.delivery})" if event.delivery else ""),
            pending_sha=push.after,
            now=ctx.clock(),
        )
        out.enqueued.append(cluster)
