"""The web UI: server-rendered pages (Jinja2) on the same data and the same domain functions as the
API, plus one small script (static/app.js) that calls the JSON API for actions, reads through the
agent (history, values, events, resources, logs) and follows /api/v1/events for live updates.

Every page needs a signed-in user (a session cookie); without one it redirects to /login. What a
reader may not do is not shown (no Sync Now or rollback buttons); the API refuses it anyway."""

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.server import addon_state, service
from moorage.server.api.addon_schemas import AddonDetail, AddonSummary, TransitionOut
from moorage.server.api.deps import AppContext, context
from moorage.server.api.gitops_schemas import GitOpsStatus, SyncOut
from moorage.server.api.resources import read_through_agent
from moorage.server.api.schemas import ClusterOut, OperationOut
from moorage.server.db.models import AddonState
from moorage.server.gitops import store
from moorage.server.ui import maplayout
from moorage.server.ui.viewer import Viewer, viewer_of
from moorage.spec.lifecycle import AddonState as State
from moorage.spec.protocol import JobAction

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSET_VERSION = "1"
HISTORY_PAGE = 10
SYNC_SORTS = tuple(store.HISTORY_COLUMNS)

# everything from this server only: no inline script or style, no other origin, no framing
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'3 min ago' (a <time> element carries the exact instant for the script to keep it fresh)."""
    if value is None:
        return "never"
    seconds = int(((now or datetime.now(value.tzinfo)) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


templates.filters["ago"] = ago
templates.globals["STATES"] = [s.value for s in State]


def mount_static(app: Any) -> None:
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


def _page(name: str, viewer: Viewer | None, **data: Any) -> HTMLResponse:
    html = templates.get_template(name).render(viewer=viewer, asset_version=ASSET_VERSION, **data)
    return HTMLResponse(
        html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


class SignInRequired(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


async def signed_in(request: Request, ctx: Annotated[AppContext, Depends(context)]) -> Viewer:
    viewer = await ctx.db(lambda s: viewer_of(s, request))
    if viewer is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return viewer


def install(app: Any) -> None:
    """Routes, static files, and the redirect to /login for pages opened without a session."""

    async def to_login(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(f"/login?next={quote(exc.path, safe='')}", status_code=303)

    from moorage.server.ui import stacks_page

    app.add_exception_handler(SignInRequired, to_login)
    mount_static(app)
    app.include_router(router)
    app.include_router(stacks_page.router)


Ctx = Annotated[AppContext, Depends(context)]
User = Annotated[Viewer, Depends(signed_in)]


def _safe_next(path: str | None) -> str:
    """Only a path of this site (never another origin) after signing in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/clusters"
    return path


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/clusters", status_code=303)


@router.get("/login")
async def login(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    viewer = await ctx.db(lambda s: viewer_of(s, request))
    if viewer is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _page("login.html", None, next=_safe_next(next))


# --------------------------------------------------------------------------- clusters


def _cluster_rows(session: Session, now: datetime) -> list[dict[str, Any]]:
    clusters, _ = service.list_clusters(session)
    rows = []
    for cluster in clusters:
        out = ClusterOut.of(cluster, now)
        repo = store.get_repository(session, cluster)
        swept = (cluster.heartbeat or {}).get("last_sweep_at")
        lag = None
        if swept:
            lag = max(0, int((now - datetime.fromisoformat(swept)).total_seconds()))
        rows.append(
            {
                "cluster": out,
                "gitops": repo.sync_status if repo else store.NOT_CONFIGURED,
                "counts": addon_state.counts(session, cluster),
                "lag": lag,
            }
        )
    return rows


@router.get("/clusters")
async def clusters_page(ctx: Ctx, viewer: User) -> HTMLResponse:
    now = ctx.clock()
    rows = await ctx.db(lambda s: _cluster_rows(s, now))
    return _page("clusters.html", viewer, section="clusters", rows=rows, now=now)


def _cluster(session: Session, name: str) -> Any:
    try:
        return service.get_cluster(session, name)
    except service.NotFound as e:
        raise HTTPException(404, detail=e.message) from None


@router.get("/clusters/{name}")
async def addons_page(
    name: str,
    ctx: Ctx,
    viewer: User,
    state: Annotated[State | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=253)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    size = 500

    def work(session: Session) -> dict[str, Any]:
        cluster = _cluster(session, name)
        rows, total, counts = addon_state.list_addons(
            session,
            cluster,
            state=state.value if state else None,
            search=q,
            offset=(page - 1) * size,
            limit=size,
        )
        return {
            "cluster": ClusterOut.of(cluster, ctx.clock()),
            "addons": [AddonSummary.of(r) for r in rows],
            "total": total,
            "counts": counts,
        }

    data = await ctx.db(work)
    pages = max(1, -(-data["total"] // size))
    return _page(
        "addons.html", viewer, section="clusters", state=state.value if state else "", q=q or "", page=page,
        pages=pages, now=ctx.clock(), **data,
    )  # fmt: skip


TABS = ("overview", "map", "values", "events", "drift", "history")


@router.get("/clusters/{name}/addons/{addon}")
async def addon_page(
    name: str, addon: str, ctx: Ctx, viewer: User, tab: Annotated[str, Query(max_length=16)] = "overview"
) -> HTMLResponse:
    if tab not in TABS:
        tab = "overview"

    def work(session: Session) -> dict[str, Any]:
        cluster = _cluster(session, name)
        row = addon_state.get_addon(session, cluster, addon)
        if row is None:
            raise HTTPException(404, detail=f"cluster {name!r} has no add-on {addon!r}")
        rows, _ = addon_state.transitions(session, cluster, row.name, limit=20)
        return {
            "cluster": ClusterOut.of(cluster, ctx.clock()),
            "addon": AddonDetail.of(row, store.repository_of(session, cluster.id)),
            "drift": row.observation.get("drift") or [],
            "omitted": int(row.observation.get("drift_omitted") or 0),
            "transitions": [TransitionOut.of(t) for t in rows],
        }

    data = await ctx.db(work)
    return _page("addon.html", viewer, section="clusters", tab=tab, tabs=TABS, now=ctx.clock(), **data)


@router.get("/clusters/{name}/addons/{addon}/map")
async def addon_map(name: str, addon: str, ctx: Ctx, viewer: User) -> HTMLResponse:
    """The resource map as an SVG fragment (loaded into the Resource Map tab by the script)."""
    row = await ctx.db(lambda s: addon_state.get_addon(s, _cluster(s, name), addon))
    if row is None:
        raise HTTPException(404, detail=f"cluster {name!r} has no add-on {addon!r}")
    tree = await read_through_agent(
        ctx, name, viewer.name, JobAction.RESOURCE_MAP, {"release": row.name, "namespace": row.namespace}
    )
    laid = maplayout.layout(tree.get("resources") or [])
    return _page("map.html", viewer, layout=laid, m=maplayout, cluster=name)


# --------------------------------------------------------------------------- GitOps


@router.get("/clusters/{name}/gitops")
async def gitops_page(
    name: str,
    ctx: Ctx,
    viewer: User,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    sort: Annotated[str, Query(max_length=32)] = "started_at",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> HTMLResponse:
    if sort not in SYNC_SORTS:
        sort = "started_at"
    base = ctx.settings.base_url() + "/api/v1/webhooks"

    def work(session: Session) -> dict[str, Any]:
        cluster = _cluster(session, name)
        repo = store.get_repository(session, cluster)
        rows, total = store.history(
            session,
            cluster,
            page=page,
            page_size=HISTORY_PAGE,
            sort=sort,
            order=order,  # type: ignore[arg-type]
        )
        return {
            "cluster": ClusterOut.of(cluster, ctx.clock()),
            "status": GitOpsStatus.of(cluster, repo, base),
            "syncs": [SyncOut.of(r, repo) for r in rows],
            "total": total,
        }

    data = await ctx.db(work)
    pages = max(1, -(-data["total"] // HISTORY_PAGE))
    return _page(
        "gitops.html", viewer, section="clusters", page=page, pages=pages, sort=sort, order=order,
        sorts=SYNC_SORTS, now=ctx.clock(), **data,
    )  # fmt: skip


# --------------------------------------------------------------------------- resources, operations, settings


@router.get("/clusters/{name}/resources")
async def resources_page(name: str, ctx: Ctx, viewer: User) -> HTMLResponse:
    cluster = await ctx.db(lambda s: ClusterOut.of(_cluster(s, name), ctx.clock()))
    return _page("resources.html", viewer, section="clusters", cluster=cluster)


@router.get("/clusters/{name}/settings")
async def settings_page(name: str, ctx: Ctx, viewer: User) -> HTMLResponse:
    base = ctx.settings.base_url()

    def work(session: Session) -> dict[str, Any]:
        cluster = _cluster(session, name)
        repo = store.get_repository(session, cluster)
        rows = session.scalars(select(AddonState).where(AddonState.cluster_id == cluster.id)).all()
        engines = Counter(str((r.observation or {}).get("engine") or "native") for r in rows)
        return {
            "cluster": ClusterOut.of(cluster, ctx.clock()),
            "status": GitOpsStatus.of(cluster, repo, base + "/api/v1/webhooks"),
            "engines": dict(sorted(engines.items())),
            "argocd_decommissioned_at": cluster.argocd_decommissioned_at,
        }

    data = await ctx.db(work)
    return _page(
        "settings.html", viewer, section="clusters", server_url=base, now=ctx.clock(),
        agent_chart=ctx.settings.agent_chart or "", **data,
    )  # fmt: skip


@router.get("/operations")
async def operations_page(
    ctx: Ctx, viewer: User, cluster: Annotated[str | None, Query(max_length=63)] = None
) -> HTMLResponse:
    def work(session: Session) -> dict[str, Any]:
        clusters, _ = service.list_clusters(session)
        chosen = [c for c in clusters if cluster is None or c.name == cluster]
        ops: list[tuple[str, OperationOut]] = []
        for c in chosen:
            rows, _ = service.list_operations(session, c, limit=50)
            ops += [(c.name, OperationOut.of(r)) for r in rows]
        ops.sort(key=lambda o: o[1].created_at, reverse=True)
        return {"operations": ops[:100], "clusters": [c.name for c in clusters]}

    data = await ctx.db(work)
    return _page(
        "operations.html", viewer, section="operations", cluster=cluster or "", now=ctx.clock(), **data
    )


@router.get("/operations/{operation_id}")
async def operation_page(operation_id: str, ctx: Ctx, viewer: User) -> HTMLResponse:
    def work(session: Session) -> OperationOut:
        try:
            return OperationOut.of(service.get_operation(session, operation_id))
        except service.NotFound as e:
            raise HTTPException(404, detail=e.message) from None

    op = await ctx.db(work)
    return _page("operation.html", viewer, section="operations", op=op, now=ctx.clock())


Renderer = Callable[..., HTMLResponse]
