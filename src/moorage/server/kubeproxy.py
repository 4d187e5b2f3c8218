"""The server's side of the kubectl proxy: one stream per proxied request over core NATS to the
cluster's agent (`moorage.spec.kubeproxy`), with credit-based flow control, per-cluster concurrency
limits, and the settings of the seed (KUBE_PROXY_UNARY_CONCURRENCY, KUBE_PROXY_STREAM_CONCURRENCY,
FORWARD_SERVICE_REQUEST_MAX_TIMEOUT_SECONDS)."""

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import Frame, KubeEnd, KubeHead, KubeRequest, Mode


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"${name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"${name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class KubeProxySettings:
    """Per cluster: at most `unary` requests with one answer and `stream` lasting ones (watch, logs -f,
    exec, port-forward) at once; a unary request has `unary_timeout_seconds`; a forwarded Service
    request at most `service_max_timeout_seconds`. Kubeconfig tokens live `token_ttl_seconds` by default."""

    unary: int = 64
    stream: int = 128
    unary_timeout_seconds: int = 60
    service_max_timeout_seconds: int = 120
    token_ttl_seconds: int = 7 * 86400
    token_max_ttl_seconds: int = 90 * 86400
    revalidate_seconds: int = 15  # an open stream's kubectl token is checked again this often
    # a kubectl token's identity is reused this long (revoking through the API clears it at once;
    # a disabled user or a revoked API token is refused after at most this long); 0: every request
    auth_cache_seconds: float = 1.0

    @classmethod
    def from_env(cls) -> "KubeProxySettings":
        return cls(
            unary=_env_int("MOORAGE_KUBE_PROXY_UNARY_CONCURRENCY", 64, 1, 10_000),
            stream=_env_int("MOORAGE_KUBE_PROXY_STREAM_CONCURRENCY", 128, 1, 10_000),
            unary_timeout_seconds=_env_int("MOORAGE_KUBE_PROXY_UNARY_TIMEOUT_SECONDS", 60, 1, 3600),
            service_max_timeout_seconds=_env_int(
                "MOORAGE_FORWARD_SERVICE_REQUEST_MAX_TIMEOUT_SECONDS", 120, 1, 3600
            ),
            revalidate_seconds=_env_int("MOORAGE_KUBE_PROXY_REVALIDATE_SECONDS", 15, 1, 3600),
            auth_cache_seconds=_env_int("MOORAGE_KUBE_PROXY_AUTH_CACHE_MS", 1000, 0, 60_000) / 1000,
        )


class LimitReached(Exception):
    def __init__(self, mode: Mode, limit: int, cluster: str) -> None:
        kind = "unary" if mode is Mode.UNARY else "streaming"
        setting = "UNARY" if mode is Mode.UNARY else "STREAM"
        super().__init__(
            f"too many {kind} kubectl requests to cluster {cluster} at once (limit {limit}, "
            f"MOORAGE_KUBE_PROXY_{setting}_CONCURRENCY); retry shortly"
        )


@dataclass
class Limiter:
    """Non-blocking per-cluster counters: over the limit is refused at once (429 with Retry-After),
    so a burst never piles up in the server."""

    settings: KubeProxySettings
    _counts: dict[tuple[str, bool], int] = field(default_factory=dict)

    def acquire(self, cluster_id: str, cluster: str, mode: Mode) -> Callable[[], None]:
        """Take a slot (LimitReached when none is free); returns its release, which is idempotent."""
        streaming = mode is not Mode.UNARY
        limit = self.settings.stream if streaming else self.settings.unary
        key = (cluster_id, streaming)
        if self._counts.get(key, 0) >= limit:
            raise LimitReached(mode, limit, cluster)
        self._counts[key] = self._counts.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._counts[key] -= 1

        return release

    def in_use(self, cluster_id: str) -> tuple[int, int]:
        return self._counts.get((cluster_id, False), 0), self._counts.get((cluster_id, True), 0)


class StreamBroken(Exception):
    """The agent's answer ended early or out of order (agent gone, message lost)."""


class NotTaken(StreamBroken):
    """No agent took the request (not connected, or restarting)."""


class KubeStream:
    """One proxied request, seen from the server: the agent's HEAD, then DATA until END."""

    def __init__(self, nc: Client, cluster_id: str, stream_id: str) -> None:
        self._nc = nc
        self.cluster_id = cluster_id
        self.stream_id = stream_id
        self._frames: asyncio.Queue[Msg] = asyncio.Queue()
        self._seq = 0
        self._consumed = 0
        # WS frames the server may still send to the agent before it grants more (upgraded connections)
        self.send_credit = kp.WINDOW
        self._send_credit_changed = asyncio.Event()
        self.ended = False
        self.error: str | None = None
        self.bytes = 0

    async def received(self, msg: Msg) -> None:
        self._frames.put_nowait(msg)

    async def send_ws(self, data: bytes, extra: dict[str, str]) -> None:
        """A WS frame to the agent once it has room for it (it grants credit as it writes to the API
        server), so a fast upload waits here instead of filling the agent's memory."""
        while self.send_credit <= 0:
            self._send_credit_changed.clear()
            try:
                await asyncio.wait_for(self._send_credit_changed.wait(), kp.CREDIT_WAIT_SECONDS)
            except TimeoutError:
                raise StreamBroken("the API server took nothing for too long") from None
        self.send_credit -= 1
        await self.send(Frame.WS, data, extra)

    async def send(self, kind: Frame, data: bytes = b"", extra: dict[str, str] | None = None) -> None:
        headers = {kp.H_KIND: kind.value, kp.H_STREAM: self.stream_id, **(extra or {})}
        await self._nc.publish(kp.kube_to_agent_subject(self.cluster_id), data, headers=headers)

    async def _next(self, timeout: float) -> Msg:
        """The next frame other than PING and ACCEPT; StreamBroken when nothing arrives for `timeout` s."""
        while True:
            try:
                msg = await asyncio.wait_for(self._frames.get(), timeout)
            except TimeoutError:
                raise StreamBroken("the agent stopped answering") from None
            if (msg.headers or {}).get(kp.H_KIND) not in (Frame.PING, Frame.ACCEPT):
                return msg

    async def head(self, timeout: float) -> KubeHead:
        """The answer's status and headers. The agent takes a request at once (ACCEPT): when it does
        not within ACCEPT_SECONDS, no agent is listening (NotTaken)."""
        try:
            first = await asyncio.wait_for(self._frames.get(), kp.ACCEPT_SECONDS)
        except TimeoutError:
            raise NotTaken(f"the agent did not take the request within {kp.ACCEPT_SECONDS:.0f}s") from None
        kind = (first.headers or {}).get(kp.H_KIND)
        msg = await self._next(timeout) if kind in (Frame.PING, Frame.ACCEPT) else first
        kind = (msg.headers or {}).get(kp.H_KIND)
        if kind == Frame.END:
            self.ended = True
            end = KubeEnd.model_validate_json(msg.data)
            raise StreamBroken(end.error or "the agent ended the request without an answer")
        if kind != Frame.HEAD:
            raise StreamBroken(f"the agent answered {kind!r} before the response head")
        return KubeHead.model_validate_json(msg.data)

    async def body(self, idle_timeout: float = kp.IDLE_SECONDS) -> AsyncIterator[tuple[bytes, bool, bool]]:
        """DATA (or WS) payloads as they come, each with whether it is (part of) a text WebSocket
        message and whether the message goes on in the next one; grants credit back as the caller
        takes them. Ends at END; StreamBroken on a gap."""
        while True:
            msg = await self._next(idle_timeout)
            headers = msg.headers or {}
            kind = headers.get(kp.H_KIND)
            if kind == Frame.END:
                self.ended = True
                self.error = KubeEnd.model_validate_json(msg.data).error
                return
            if kind == Frame.CREDIT:
                try:
                    self.send_credit += max(0, min(int(headers.get(kp.H_N, "0")), kp.WINDOW))
                except ValueError:
                    continue
                self._send_credit_changed.set()
                continue
            if kind not in (Frame.DATA, Frame.WS):
                continue
            seq = int(headers.get(kp.H_SEQ, "0"))
            if seq != self._seq + 1:
                raise StreamBroken(f"a chunk of the answer was lost (got {seq} after {self._seq})")
            self._seq = seq
            self.bytes += len(msg.data)
            yield msg.data, headers.get(kp.H_WS) == "t", headers.get(kp.H_MORE) == "1"
            self._consumed += 1
            if self._consumed >= kp.WINDOW // 2:
                await self.send(Frame.CREDIT, extra={kp.H_N: str(self._consumed)})
                self._consumed = 0


class NatsSource(Protocol):
    def nats_client(self) -> Client | None: ...


@contextlib.asynccontextmanager
async def open_stream(
    nc: Client, cluster_id: str, request_of: Callable[[str, int], KubeRequest], body: bytes
) -> AsyncIterator[KubeStream]:
    """Subscribe to a new stream's subject, send OPEN (and the body in BODY frames), yield the stream;
    afterwards CANCEL it at the agent unless it ended, and unsubscribe."""
    stream_id = secrets.token_hex(12)
    stream = KubeStream(nc, cluster_id, stream_id)
    sub = await nc.subscribe(kp.kube_to_server_subject(cluster_id, stream_id), cb=stream.received)
    try:
        pieces = kp.chunks(body)
        request = request_of(stream_id, len(pieces))
        await stream.send(Frame.OPEN, request.model_dump_json().encode())
        for i, piece in enumerate(pieces):
            await stream.send(Frame.BODY, piece, {kp.H_N: "1" if i == len(pieces) - 1 else "0"})
        yield stream
    finally:
        try:
            if not stream.ended:
                with contextlib.suppress(Exception):
                    await stream.send(Frame.CANCEL)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


class GZipExceptProxy:
    """Starlette's GZip for everything but the proxied paths: their answers come compressed (or not)
    as the API server sent them, and a watch must reach the client event by event, not when a
    compressor's buffer fills."""

    def __init__(self, app: ASGIApp, minimum_size: int = 1024, exempt: Callable[[str], bool] | None = None):
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)
        self.exempt = exempt or is_proxied_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


def is_proxied_path(path: str) -> bool:
    if not path.startswith("/api/v1/clusters/"):
        return False
    parts = path.split("/", 6)  # "", api, v1, clusters, {name}, kube|services, ...
    return len(parts) > 5 and parts[5] in ("kube", "services")
