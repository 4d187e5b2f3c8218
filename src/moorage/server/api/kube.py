"""The kubectl proxy: `/api/v1/clusters/{name}/kube/{path}` forwards a Kubernetes API request (any
method) over NATS to the cluster's agent, which makes it to its API server as the Moorage user
(impersonated), and the answer streams back (watch, logs -f, large lists). Also kubectl tokens
(`/api/v1/kube-tokens`), Service forwarding, and the audit trail (`/api/v1/audit`)."""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, WebSocket, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from moorage.server import kube_service, service
from moorage.server.api.deps import Admin, Ctx, Reader
from moorage.server.api.schemas import Request as Body
from moorage.server.auth import Principal
from moorage.server.db.kube_models import KubeAudit, KubeToken
from moorage.server.kube_service import KubeIdentity
from moorage.server.kubeproxy import (
    KubeProxySettings,
    Limiter,
    LimitReached,
    NotTaken,
    StreamBroken,
    open_stream,
)
from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import KubeRequest, Mode, RequestInfo

log = logging.getLogger("moorage.server.kube")
router = APIRouter(tags=["kubectl"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
STREAM_MAX_SECONDS = 24 * 3600


AUDIT_FLUSH_SECONDS = 0.2


class _State:
    """Per app: the settings, the concurrency counters, and audit rows waiting to be written (in one
    transaction every AUDIT_FLUSH_SECONDS, so 64 requests at once do not queue 64 writes)."""

    def __init__(self) -> None:
        self.settings = KubeProxySettings.from_env()
        self.limiter = Limiter(self.settings)
        self.rows: list[KubeAudit] = []
        self.flusher: asyncio.Task[None] | None = None
        # keyed hash of a kubectl token -> (monotonic time, cluster name, identity): at 64 requests at
        # once, looking each token up again made the database the proxy's bottleneck
        self.identities: dict[str, tuple[float, str, KubeIdentity]] = {}

    def cached(self, key: str, cluster: str) -> KubeIdentity | None:
        hit = self.identities.get(key)
        if hit is None or hit[1] != cluster or time.monotonic() - hit[0] >= self.settings.auth_cache_seconds:
            return None
        return hit[2]

    def remember(self, key: str, cluster: str, who: KubeIdentity) -> None:
        if self.settings.auth_cache_seconds <= 0:
            return
        if len(self.identities) >= 10_000:
            self.identities.clear()
        self.identities[key] = (time.monotonic(), cluster, who)

    def audit(self, ctx: Any, row: KubeAudit) -> None:
        self.rows.append(row)
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush(ctx))

    async def _flush(self, ctx: Any) -> None:
        while self.rows:
            await asyncio.sleep(AUDIT_FLUSH_SECONDS)
            rows, self.rows = self.rows, []
            try:
                await ctx.db(functools.partial(kube_service.record, rows=rows))
            except Exception:
                log.exception("recording %d audit entries failed", len(rows))


def _state(request: HTTPConnection) -> _State:
    app = request.app
    state: _State | None = getattr(app.state, "kube_proxy", None)
    if state is None:
        state = app.state.kube_proxy = _State()
    return state


def _status(code: int, message: str, reason: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        kp.status_body(code, message, reason),
        status_code=code,
        media_type="application/json",
        headers=headers,
    )


async def kube_caller(request: HTTPConnection, ctx: Any, name: str) -> KubeIdentity | Response:
    """The kubectl token's identity, or a 401 Status naming why (kubectl prints its message)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        found: KubeIdentity | str = (
            "missing bearer token; make a kubeconfig with `moorage kubeconfig CLUSTER`"
        )
    else:
        state = _state(request)
        key = ctx.token_hasher.hash(token.strip())
        hit = state.cached(key, name)
        if hit is not None:
            return hit
        found = await ctx.db(
            lambda s: kube_service.authenticate_kube_token(
                s, ctx.token_hasher, token.strip(), name, ctx.clock()
            )
        )
        if not isinstance(found, str):
            state.remember(key, name, found)
    if isinstance(found, str):
        return _status(401, found, "Unauthorized", {"WWW-Authenticate": "Bearer"})
    return found


# -- kubectl tokens ----------------------------------------------------------------------------------


class KubeTokenCreate(Body):
    cluster: str = Field(min_length=1, max_length=63)
    ttl_seconds: int | None = Field(default=None, ge=60, description="Default 7 days, at most 90 days.")


class KubeTokenOut(BaseModel):
    id: str
    principal: str
    cluster_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: KubeToken) -> "KubeTokenOut":
        return cls(
            id=row.id,
            principal=row.principal,
            cluster_id=row.cluster_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


class KubeTokenCreated(KubeTokenOut):
    token: str
    cluster: str
    kube_user: str
    kube_groups: list[str]


@router.post("/kube-tokens", status_code=status.HTTP_201_CREATED)
async def create_kube_token(
    body: KubeTokenCreate, request: Request, ctx: Ctx, who: Reader
) -> KubeTokenCreated:
    """A kubectl token of the caller for one cluster (shown once): what `moorage kubeconfig` writes."""
    settings = _state(request).settings
    ttl = body.ttl_seconds or settings.token_ttl_seconds
    if ttl > settings.token_max_ttl_seconds:
        raise HTTPException(422, detail=f"ttl_seconds must be at most {settings.token_max_ttl_seconds}")

    def work(session: Session) -> KubeTokenCreated:
        row, plaintext, identity = kube_service.create_kube_token(
            session, ctx.token_hasher, who, body.cluster, timedelta(seconds=ttl), ctx.clock()
        )
        return KubeTokenCreated(
            **KubeTokenOut.of(row).model_dump(),
            token=plaintext,
            cluster=identity.cluster_name,
            kube_user=identity.user,
            kube_groups=list(identity.groups),
        )

    return await ctx.db(work)


@router.get("/kube-tokens")
async def list_kube_tokens(ctx: Ctx, who: Reader) -> list[KubeTokenOut]:
    """The caller's kubectl tokens (an admin sees everyone's)."""
    return await ctx.db(lambda s: [KubeTokenOut.of(r) for r in kube_service.list_kube_tokens(s, who)])


@router.delete("/kube-tokens/{token_id}")
async def revoke_kube_token(token_id: str, request: Request, ctx: Ctx, who: Reader) -> KubeTokenOut:
    """Revoke one of the caller's kubectl tokens (an admin: anyone's); refused at its next request."""
    out = await ctx.db(
        lambda s: KubeTokenOut.of(kube_service.revoke_kube_token(s, who, token_id, ctx.clock()))
    )
    _state(request).identities.clear()  # no identity of a revoked token is reused
    return out


# -- the audit trail -----------------------------------------------------------------------------------


class AuditOut(BaseModel):
    at: datetime
    principal: str
    kube_user: str
    cluster: str
    method: str
    verb: str
    resource: str
    namespace: str
    name: str
    path: str
    status: int
    duration_ms: int
    mode: str
    error: str | None

    @classmethod
    def of(cls, row: KubeAudit) -> "AuditOut":
        resource = f"{row.resource}.{row.api_group}" if row.api_group and row.resource else row.resource
        if row.subresource:
            resource += f"/{row.subresource}"
        return cls(
            at=row.at,
            principal=row.principal,
            kube_user=row.kube_user,
            cluster=row.cluster,
            method=row.method,
            verb=row.verb,
            resource=resource,
            namespace=row.namespace,
            name=row.name,
            path=row.path,
            status=row.status,
            duration_ms=row.duration_ms,
            mode=row.mode,
            error=row.error,
        )


@router.get("/audit")
async def list_audit(
    ctx: Ctx,
    _who: Admin,
    cluster: Annotated[str | None, Query(max_length=63)] = None,
    principal: Annotated[str | None, Query(max_length=200)] = None,
    verb: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Proxied Kubernetes API requests, newest first (request bodies are never recorded)."""
    return await ctx.db(
        lambda s: [
            AuditOut.of(r)
            for r in kube_service.list_audit(
                s, cluster=cluster, principal=principal, verb=verb, since=since, limit=limit
            )
        ]
    )


# -- the proxy -------------------------------------------------------------------------------------------


def _audit(
    request: HTTPConnection,
    who: KubeIdentity,
    info: RequestInfo,
    path: str,
    code: int,
    started: float,
    error: str | None,
) -> None:
    ctx = request.app.state.moorage
    row = KubeAudit(
        at=ctx.clock(),
        principal=who.principal[:200],
        kube_user=who.user[:253],
        token_id=who.token_id,
        cluster=who.cluster_name,
        method=(request.method if isinstance(request, Request) else "GET")[:8],
        verb=info.verb[:32],
        api_group=info.api_group[:253],
        resource=info.resource[:253],
        subresource=info.subresource[:63],
        namespace=info.namespace[:253],
        name=info.name[:253],
        path="" if info.resource else path[:512],
        status=code,
        duration_ms=int((time.monotonic() - started) * 1000),
        mode=info.mode.value,
        error=error[:500] if error else None,
    )
    _state(request).audit(ctx, row)


def _guard(conn: HTTPConnection, ctx: Any, who: KubeIdentity, stream: Any) -> "asyncio.Task[str | None]":
    """While a stream lasts, check its kubectl token again every revalidate_seconds; once it no longer
    works (revoked, expired, user disabled), end the stream at the agent. The reason, if it ended it."""
    seconds = _state(conn).settings.revalidate_seconds

    async def watch() -> str | None:
        if not who.kube_token or who.token_id is None:
            return None
        token_id = who.token_id
        while True:
            await asyncio.sleep(seconds)
            why = await ctx.db(lambda s: kube_service.still_valid(s, token_id, ctx.clock()))
            if why:
                with contextlib.suppress(Exception):
                    await stream.send(kp.Frame.CANCEL)
                return str(why)

    return asyncio.get_running_loop().create_task(watch())


async def forward(
    request: Request,
    ctx: Any,
    who: KubeIdentity,
    path: str,
    query: str,
    info: RequestInfo,
    *,
    timeout_seconds: float,
) -> Response:
    """Send one request through the agent and answer with what the API server answered."""
    state = _state(request)
    started = time.monotonic()
    if who.offline:
        _audit(request, who, info, path, 503, started, who.offline)
        return _status(503, who.offline, "ServiceUnavailable")
    client = getattr(ctx.bus, "nats_client", None)
    nc = client() if client is not None else None
    if nc is None:
        return _status(503, "the server is not connected to NATS", "ServiceUnavailable")
    limiter = state.limiter
    try:
        release = limiter.acquire(who.cluster_id, who.cluster_name, info.mode)
    except LimitReached as e:
        _audit(request, who, info, path, 429, started, str(e))
        return _status(429, str(e), "TooManyRequests", {"Retry-After": "1"})
    headers = [(k, v) for k, v in request.headers.items() if k.lower() in kp.FORWARDED_REQUEST_HEADERS]
    method = request.method.upper()
    try:
        body = await request.body()
    except Exception:
        release()
        raise

    def request_of(stream_id: str, body_frames: int) -> KubeRequest:
        return KubeRequest(
            stream_id=stream_id,
            mode=info.mode,
            method=method,  # type: ignore[arg-type]
            path=path,
            query=query,
            headers=headers[:32],
            user=who.user,
            groups=list(who.groups),
            body_frames=body_frames,
            timeout_seconds=timeout_seconds,
        )

    stream_cm = open_stream(nc, who.cluster_id, request_of, body)
    try:
        stream = await stream_cm.__aenter__()
    except Exception as e:
        release()
        _audit(request, who, info, path, 502, started, str(e))
        return _status(502, f"could not reach the agent over NATS: {e}", "ServiceUnavailable")
    try:
        head = await stream.head(min(timeout_seconds, kp.IDLE_SECONDS) + 5)
    except (StreamBroken, ValueError) as e:
        await stream_cm.__aexit__(None, None, None)
        release()
        code = 503 if isinstance(e, NotTaken) else 504 if "stopped answering" in str(e) else 502
        _audit(request, who, info, path, code, started, str(e))
        return _status(code, f"the agent of cluster {who.cluster_name}: {e}", "ServiceUnavailable")
    except BaseException:
        await stream_cm.__aexit__(None, None, None)
        release()
        raise

    guard = _guard(request, ctx, who, stream) if info.mode is not Mode.UNARY else None

    async def content() -> AsyncIterator[bytes]:
        error: str | None = None
        try:
            async for data, _, _ in stream.body():
                yield data
            error = stream.error
            if guard is not None and guard.done() and not guard.cancelled():
                error = guard.result() or error
        except StreamBroken as e:
            error = str(e)
        except BaseException as e:  # the client went away
            error = error or f"client disconnected ({type(e).__name__})"
            raise
        finally:
            if guard is not None:
                guard.cancel()
            with contextlib.suppress(BaseException):
                await stream_cm.__aexit__(None, None, None)
            release()
            _audit(request, who, info, path, head.status, started, error)

    response_headers: dict[str, str] = {}
    for k, v in head.headers:
        response_headers[k] = f"{response_headers[k]}, {v}" if k in response_headers else v
    response_headers["Cache-Control"] = response_headers.get("Cache-Control", "no-store")
    response_headers["X-Accel-Buffering"] = "no"
    return StreamingResponse(content(), status_code=head.status, headers=response_headers)


async def kube_proxy(name: str, path: str, request: Request, ctx: Ctx) -> Response:
    """A Kubernetes API request to cluster `name` (kubectl and helm through `moorage kubeconfig`):
    made by the agent as the caller (Impersonate-User/Group), so the cluster's RBAC decides. Takes
    only a kubectl token (bound to this cluster)."""
    who = await kube_caller(request, ctx, name)
    if isinstance(who, Response):
        return who
    full = "/" + path
    if problem := kp.path_problem(full):
        return _status(400, problem, "BadRequest")
    query = request.url.query
    if len(query) > kp.MAX_QUERY_CHARS:
        return _status(414, "the query string is too long", "RequestURITooLong")
    upgrade = request.headers.get("upgrade", "").lower() == "websocket"
    if upgrade:
        return _status(400, "WebSocket requests are answered on the WebSocket route", "BadRequest")
    info = kp.classify(request.method, full, query)
    settings = _state(request).settings
    timeout = settings.unary_timeout_seconds if info.mode is Mode.UNARY else STREAM_MAX_SECONDS
    return await forward(request, ctx, who, full, query, info, timeout_seconds=timeout)


# -- Service forwarding ----------------------------------------------------------------------------------

TIMEOUT_HEADER = "X-Moorage-Timeout"


async def service_proxy(
    name: str, namespace: str, service_port: str, path: str, request: Request, ctx: Ctx, who: Reader
) -> Response:
    """An HTTP request to a Service in the cluster (`name:port`), through the agent and the API
    server's service proxy, as the caller (RBAC: services/proxy). Its timeout is the header
    X-Moorage-Timeout (seconds, default 30), at most FORWARD_SERVICE_REQUEST_MAX_TIMEOUT_SECONDS."""
    settings = _state(request).settings
    raw = request.headers.get(TIMEOUT_HEADER)
    try:
        timeout = float(raw) if raw else 30.0
    except ValueError:
        return _status(400, f"{TIMEOUT_HEADER} must be a number of seconds", "BadRequest")
    if not 0 < timeout <= settings.service_max_timeout_seconds:
        return _status(
            400,
            f"{TIMEOUT_HEADER} must be more than 0 and at most {settings.service_max_timeout_seconds} s "
            "(MOORAGE_FORWARD_SERVICE_REQUEST_MAX_TIMEOUT_SECONDS)",
            "BadRequest",
        )
    identity = await ctx.db(lambda s: _principal_identity(s, who, name, ctx.clock()))
    full = f"/api/v1/namespaces/{namespace}/services/{service_port}/proxy/{path}"
    if problem := kp.path_problem(full):
        return _status(400, problem, "BadRequest")
    info = kp.classify(request.method, full, request.url.query)
    return await forward(request, ctx, identity, full, request.url.query, info, timeout_seconds=timeout)


async def _deny(websocket: WebSocket, response: Response) -> None:
    """Refuse an upgrade with an HTTP answer (kubectl prints its Status), else close it (403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008)


@router.websocket("/clusters/{name}/kube/{path:path}")
async def kube_websocket(websocket: WebSocket, name: str, path: str) -> None:
    """`kubectl exec`, `attach` and `port-forward`: the client's WebSocket ends here, and its messages
    are relayed through the agent to a WebSocket the agent opens to its API server (same
    subprotocol, same messages), as the caller, so the cluster's RBAC decides (pods/exec …)."""
    ctx = websocket.app.state.moorage
    started = time.monotonic()
    who = await kube_caller(websocket, ctx, name)
    if isinstance(who, Response):
        await _deny(websocket, who)
        return
    full = "/" + path
    query = websocket.url.query
    if problem := kp.path_problem(full):
        await _deny(websocket, _status(400, problem, "BadRequest"))
        return
    info = kp.classify("GET", full, query, upgrade=True)
    client = getattr(ctx.bus, "nats_client", None)
    nc = client() if client is not None else None
    if who.offline or nc is None:
        message = who.offline or "the server is not connected to NATS"
        _audit(websocket, who, info, full, 503, started, message)
        await _deny(websocket, _status(503, message, "ServiceUnavailable"))
        return
    try:
        release = _state(websocket).limiter.acquire(who.cluster_id, who.cluster_name, Mode.UPGRADE)
    except LimitReached as e:
        _audit(websocket, who, info, full, 429, started, str(e))
        await _deny(websocket, _status(429, str(e), "TooManyRequests", {"Retry-After": "1"}))
        return
    subprotocols = list(websocket.scope.get("subprotocols") or [])[:8]
    headers = [(k, v) for k, v in websocket.headers.items() if k.lower() in kp.FORWARDED_REQUEST_HEADERS]

    def request_of(stream_id: str, body_frames: int) -> KubeRequest:
        return KubeRequest(
            stream_id=stream_id,
            mode=Mode.UPGRADE,
            method="GET",
            path=full,
            query=query,
            headers=headers[:32],
            user=who.user,
            groups=list(who.groups),
            body_frames=body_frames,
            timeout_seconds=STREAM_MAX_SECONDS,
            subprotocols=subprotocols,
        )

    code, error = 101, None
    try:
        async with open_stream(nc, who.cluster_id, request_of, b"") as stream:
            try:
                head = await stream.head(kp.IDLE_SECONDS)
            except (StreamBroken, ValueError) as e:
                code, error = 502, str(e)
                await _deny(
                    websocket, _status(502, f"the agent of cluster {who.cluster_name}: {e}", "BadGateway")
                )
                return
            if head.status != 101:
                body = b"".join([data async for data, _, _ in stream.body()])
                code, error = head.status, body.decode("utf-8", "replace")[:500]
                await _deny(websocket, Response(body, status_code=head.status, media_type="application/json"))
                return
            await websocket.accept(subprotocol=head.subprotocol)
            guard = _guard(websocket, ctx, who, stream)
            try:
                error = await _relay(websocket, stream)
            finally:
                guard.cancel()
            if guard.done() and not guard.cancelled() and guard.result():
                error = guard.result()
    finally:
        release()
        _audit(websocket, who, info, full, code, started, error)


async def _relay(websocket: WebSocket, stream: Any) -> str | None:
    """Client messages to the agent, the agent's to the client, until either side ends."""

    async def client_to_agent() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            data = text.encode() if text is not None else (message.get("bytes") or b"")
            parts = kp.chunks(data) or [b""]
            for i, part in enumerate(parts):
                extra = {kp.H_WS: "t" if text is not None else "b"}
                if i < len(parts) - 1:
                    extra[kp.H_MORE] = "1"
                await stream.send_ws(part, extra)

    async def agent_to_client() -> str | None:
        pending = b""
        async for data, text, more in stream.body():
            pending += data
            if more:
                continue
            message, pending = pending, b""
            if text:
                await websocket.send_text(message.decode("utf-8", "replace"))
            else:
                await websocket.send_bytes(message)
        error: str | None = stream.error
        return error

    tasks = [asyncio.create_task(client_to_agent()), asyncio.create_task(agent_to_client())]
    error: str | None = None
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, StreamBroken):
                error = str(exc)
            elif exc is None and task is tasks[1]:
                error = task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close()
    return error


for _method in METHODS:
    router.add_api_route(
        "/clusters/{name}/kube/{path:path}",
        kube_proxy,
        methods=[_method],
        operation_id=f"kube_proxy_{_method.lower()}",
        include_in_schema=_method not in ("HEAD", "OPTIONS"),
    )
for _method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/clusters/{name}/services/{namespace}/{service_port}/proxy/{path:path}",
        service_proxy,
        methods=[_method],
        operation_id=f"service_proxy_{_method.lower()}",
    )


def _principal_identity(session: Session, who: Principal, cluster_name: str, now: datetime) -> KubeIdentity:
    cluster = service.get_cluster(session, cluster_name)
    role = next((r for r in ("admin", "write", "read") if r in who.scopes), "read")
    if who.username is not None:
        user, groups = kp.impersonation("user", who.username, role)
    else:
        user, groups = kp.impersonation("token", who.name, role)
    offline = kube_service.offline_reason(cluster, now)
    return KubeIdentity(who.token_id, who.name, cluster.id, cluster.name, role, user, tuple(groups), offline)
