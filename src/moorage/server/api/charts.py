"""/api/v1/charts: the chart catalog of the connected (global) registries (server/catalog.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.charts.source import RegistryAuth
from moorage.server.api.deps import AppContext, Ctx, Reader
from moorage.server.catalog import Catalog, CatalogError, GlobalRegistry, load_registries
from moorage.server.db.models import GitCredential
from moorage.server.gitops import store
from moorage.server.registries import vet_for

router = APIRouter(prefix="/charts", tags=["charts"])

Name = Annotated[str, Query(min_length=0, max_length=200)]


def catalog_of(request: Request, ctx: AppContext) -> Catalog:
    """One catalog (and cache) per app, made at the first look-up from the global registries file."""
    found: Catalog | None = getattr(request.app.state, "chart_catalog", None)
    if found is None:
        try:
            registries = load_registries(ctx.settings.global_registries_file)
        except ValueError as e:
            raise HTTPException(500, detail=str(e)) from None

        async def auth_of(registry: GlobalRegistry) -> RegistryAuth | None:
            return await _prepare(ctx, registry)

        found = Catalog(registries, auth_of, vet=vet_for(ctx.settings.egress_policy()))
        request.app.state.chart_catalog = found
    return found


async def _prepare(ctx: AppContext, registry: GlobalRegistry) -> RegistryAuth | None:
    if registry.credential_name is None:
        return None
    name = registry.credential_name

    def work(session: Session) -> RegistryAuth:
        row = session.scalar(select(GitCredential).where(GitCredential.name == name))
        if row is None:
            raise CatalogError(
                f"registry {registry.name} names credential {name!r}, which does not exist", 502
            )
        why = store.credential_refusal(
            row, registry.url, loopback_http=store.loopback_http(ctx.settings.egress_policy()), git=False
        )
        if why is not None:
            raise CatalogError(f"registry {registry.name}: {why}", 502)
        key = store.client_key_of(ctx.box, row)
        return RegistryAuth(
            username=row.username or "",
            password=store.secret_of(ctx.box, row).reveal(),
            ca_bundle=row.ca_bundle,
            client_cert=row.client_cert if key is not None else None,
            client_key=key.reveal() if key is not None else None,
        )

    return await ctx.db(work)


def _fail(e: CatalogError) -> HTTPException:
    return HTTPException(e.status, detail=e.message)


@router.get("")
async def search_charts(
    request: Request,
    ctx: Ctx,
    _who: Reader,
    q: Name = "",
    registry: Annotated[str | None, Query(max_length=63)] = None,
) -> dict[str, Any]:
    """Charts whose name, description or keywords contain `q`, with their versions and dates, across
    the connected registries (or one); registries that cannot answer are listed under `errors`."""
    try:
        return await catalog_of(request, ctx).search(q, registry)
    except CatalogError as e:
        raise _fail(e) from None


@router.get("/{registry}/{chart}")
async def chart_versions(
    registry: str, chart: str, request: Request, ctx: Ctx, _who: Reader
) -> dict[str, Any]:
    try:
        versions = await catalog_of(request, ctx).versions(registry, chart)
    except CatalogError as e:
        raise _fail(e) from None
    return {"registry": registry, "name": chart, "versions": [v.to_dict() for v in versions]}


@router.get("/{registry}/{chart}/{version}")
async def chart_version(
    registry: str,
    chart: str,
    version: str,
    request: Request,
    ctx: Ctx,
    _who: Reader,
    against: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """Default values, values.schema.json, README and dependencies of one version; with `against`,
    what the default values change from that version to this one."""
    try:
        return await catalog_of(request, ctx).show(registry, chart, version, against)
    except CatalogError as e:
        raise _fail(e) from None
