"""The Stack Builder page (`/clusters/{name}/stacks`): the stacks at the branch tip, "Add add-on"
from the chart catalog with a values editor beside the chart's defaults and schema, the SOPS button,
preview and save. The page itself is static; static/stacks.js reads and writes through the API
(`/api/v1/clusters/{name}/stacks…`, `/api/v1/charts…`), so what it can do is what the API allows."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from moorage.server.api.schemas import ClusterOut
from moorage.server.ui.routes import Ctx, User, _cluster, _page

router = APIRouter(include_in_schema=False)


@router.get("/clusters/{name}/stacks")
async def stacks_page(name: str, ctx: Ctx, viewer: User) -> HTMLResponse:
    cluster = await ctx.db(lambda s: ClusterOut.of(_cluster(s, name), ctx.clock()))
    return _page("stacks.html", viewer, section="clusters", cluster=cluster)
