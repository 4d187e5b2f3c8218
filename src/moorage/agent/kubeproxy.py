"""The agent's side of the kubectl proxy: Kubernetes API requests that arrive over core NATS
(`moorage.spec.kubeproxy`) are sent to the cluster's API server as the Moorage user (impersonated),
and the answer goes back in chunks while the server grants credit.

Isolated from the agent's jobs: its own subscription, its own tasks and its own connection pool
(`kube.passthrough`); a full limit answers 503 at once instead of queueing."""

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from moorage.kube.errors import KubeError
from moorage.kube.passthrough import Passthrough
from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import Frame, KubeEnd, KubeHead, KubeRequest, Mode
from moorage.spec.protocol import ProtocolError

log = logging.getLogger("moorage.agent.kubeproxy")
# frames from the client not yet written to the API server: the server sends at most WINDOW ahead of
# the credit the agent grants, so more is a broken server (the stream ends)
WS_QUEUE = 2 * kp.WINDOW


def _limit(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


@dataclass
class Limits:
    unary: int = field(default_factory=lambda: _limit("MOORAGE_KUBE_PROXY_UNARY_CONCURRENCY", 64))
    stream: int = field(default_factory=lambda: _limit("MOORAGE_KUBE_PROXY_STREAM_CONCURRENCY", 128))


@dataclass
class _Stream:
    request: KubeRequest
    body: list[bytes] = field(default_factory=list)
    credit: int = kp.WINDOW
    credit_changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last_sent: float = field(default_factory=time.monotonic)
    seq: int = 0
    # WebSocket messages from the client (data, is text, more follows); bounded: overflow ends the stream
    ws_in: "asyncio.Queue[tuple[bytes, bool, bool] | None]" = field(
        default_factory=lambda: asyncio.Queue(WS_QUEUE)
    )


class KubeProxyAgent:
    def __init__(self, nc: Client, cluster_id: str, api: Passthrough, limits: Limits | None = None) -> None:
        self._nc = nc
        self._cluster_id = cluster_id
        self._api = api
        self.limits = limits or Limits()
        self._streams: dict[str, _Stream] = {}
        self._running = {Mode.UNARY: 0, Mode.STREAM: 0, Mode.UPGRADE: 0}
        self._pinger: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self.refused = 0

    async def start(self, *, listening: bool = True) -> None:
        self._pinger = asyncio.create_task(self._ping_loop(), name="kubeproxy-ping")
        if listening:
            await self.listen()

    async def listen(self) -> None:
        """Take requests. Of several agent replicas only the leader listens: every replica would
        receive each request on the cluster's subject and run it (a create twice)."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(kp.kube_to_agent_subject(self._cluster_id), cb=self._frame)

    async def deafen(self) -> None:
        """Take no more requests and end the open ones (kubectl retries against the new leader)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        await self._end_all()

    async def stop(self) -> None:
        """End every open stream (kubectl sees its watch end and retries against the next agent)."""
        if self._pinger is not None:
            self._pinger.cancel()
        await self._end_all()
        await self._api.close()

    async def _end_all(self) -> None:
        tasks = [s.task for s in self._streams.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- frames from the server ----------------------------------------------------------------------

    async def _frame(self, msg: Msg) -> None:
        headers = msg.headers or {}
        kind, stream_id = headers.get(kp.H_KIND, ""), headers.get(kp.H_STREAM, "")
        if not kp.valid_stream_id(stream_id):
            return
        stream = self._streams.get(stream_id)
        if kind == Frame.OPEN:
            await self._open(stream_id, msg.data)
            return
        if stream is None:
            if kind in (Frame.BODY, Frame.CREDIT, Frame.WS):  # a stream of an earlier agent process
                await self._end(stream_id, "the agent no longer knows this request (it restarted?)")
            return
        if kind == Frame.BODY:
            stream.body.append(msg.data)
            if headers.get(kp.H_N) == "1" or len(stream.body) >= stream.request.body_frames:
                self._launch(stream)
        elif kind == Frame.CREDIT:
            try:
                stream.credit += max(0, min(int(headers.get(kp.H_N, "0")), kp.WINDOW))
            except ValueError:
                return
            stream.credit_changed.set()
        elif kind == Frame.CANCEL:
            if stream.task is not None:
                stream.task.cancel()
            else:
                self._streams.pop(stream_id, None)
        elif kind == Frame.WS:
            try:
                stream.ws_in.put_nowait(
                    (msg.data, headers.get(kp.H_WS) == "t", headers.get(kp.H_MORE) == "1")
                )
            except asyncio.QueueFull:
                log.warning("kubectl stream %s: the client sends faster than the API server takes", stream_id)
                if stream.task is not None:
                    stream.task.cancel()

    async def _open(self, stream_id: str, data: bytes) -> None:
        try:
            if len(data) > 1 << 20:
                raise ProtocolError("request too large")
            request = KubeRequest.model_validate_json(data)
        except (ValueError, ProtocolError) as e:
            await self._refuse(stream_id, 400, f"invalid proxied request: {str(e)[:300]}", "BadRequest")
            return
        if request.stream_id != stream_id or stream_id in self._streams:
            return
        mode = request.mode
        limit = self.limits.unary if mode is Mode.UNARY else self.limits.stream
        if self._running[mode] >= limit:
            self.refused += 1
            await self._refuse(
                stream_id,
                503,
                f"the agent runs {limit} {mode.value} kubectl requests already; retry shortly",
                "ServiceUnavailable",
            )
            return
        stream = _Stream(request)
        self._streams[stream_id] = stream
        with contextlib.suppress(Exception):
            await self._send(stream_id, Frame.ACCEPT)
        if request.body_frames == 0:
            self._launch(stream)

    def _launch(self, stream: _Stream) -> None:
        if stream.task is not None:
            return
        self._running[stream.request.mode] += 1
        stream.task = asyncio.create_task(self._serve(stream), name=f"kube-{stream.request.stream_id}")

    # -- frames to the server ------------------------------------------------------------------------

    async def _send(
        self, stream_id: str, kind: Frame, data: bytes = b"", extra: dict[str, str] | None = None
    ) -> None:
        headers = {kp.H_KIND: kind.value, kp.H_STREAM: stream_id, **(extra or {})}
        await self._nc.publish(kp.kube_to_server_subject(self._cluster_id, stream_id), data, headers=headers)

    async def _end(self, stream_id: str, error: str | None = None) -> None:
        with contextlib.suppress(Exception):
            await self._send(stream_id, Frame.END, KubeEnd(error=error).model_dump_json().encode())

    async def _refuse(self, stream_id: str, status: int, message: str, reason: str) -> None:
        head = KubeHead(status=status, headers=[("Content-Type", "application/json")])
        with contextlib.suppress(Exception):
            await self._send(stream_id, Frame.HEAD, head.model_dump_json().encode())
            await self._send(stream_id, Frame.DATA, kp.status_body(status, message, reason), {kp.H_SEQ: "1"})
        await self._end(stream_id, None)

    async def _data(self, stream: _Stream, piece: bytes, extra: dict[str, str] | None = None) -> None:
        """One DATA (or WS) frame, once the server has credit for it."""
        while stream.credit <= 0:
            stream.credit_changed.clear()
            try:
                await asyncio.wait_for(stream.credit_changed.wait(), kp.CREDIT_WAIT_SECONDS)
            except TimeoutError:
                raise _Gone("the client took nothing for too long") from None
        stream.credit -= 1
        stream.seq += 1
        stream.last_sent = time.monotonic()
        kind = Frame.WS if extra is not None else Frame.DATA
        await self._send(stream.request.stream_id, kind, piece, {kp.H_SEQ: str(stream.seq), **(extra or {})})

    async def _serve(self, stream: _Stream) -> None:
        request = stream.request
        error: str | None = None
        head_sent = False
        try:
            if request.mode is Mode.UPGRADE:
                from moorage.agent.kubeupgrade import relay

                error = await relay(self, stream)
                return
            body = b"".join(stream.body)
            stream.body.clear()
            async with asyncio.timeout(request.timeout_seconds if request.mode is Mode.UNARY else None):
                async with self._api.stream(
                    request.method,
                    request.path,
                    request.query,
                    request.headers,
                    body,
                    user=request.user,
                    groups=request.groups,
                ) as response:
                    head = KubeHead(
                        status=response.status,
                        headers=[
                            (k, v) for k, v in response.headers if k.lower() in kp.FORWARDED_RESPONSE_HEADERS
                        ][:32],
                    )
                    await self._send(request.stream_id, Frame.HEAD, head.model_dump_json().encode())
                    head_sent = True
                    # a lasting answer (watch, logs -f) goes on as it comes; any other is sent in
                    # full chunks (a 2.8 MB list in 22 frames instead of one per socket read)
                    pending = bytearray()
                    streaming = request.mode is Mode.STREAM
                    async for piece in response.chunks:
                        pending += piece
                        while len(pending) >= kp.CHUNK_BYTES or (streaming and pending):
                            part = bytes(pending[: kp.CHUNK_BYTES])
                            del pending[: kp.CHUNK_BYTES]
                            await self._data(stream, part)
                    if pending:
                        await self._data(stream, bytes(pending))
        except TimeoutError:
            error = f"the API server did not finish within {request.timeout_seconds:.0f}s"
            if not head_sent:
                await self._refuse(request.stream_id, 504, error, "Timeout")
                return
        except KubeError as e:
            error = str(e)
            if not head_sent:
                await self._refuse(request.stream_id, 502, error, "ServiceUnavailable")
                return
        except _Gone as e:
            error = str(e)
        except asyncio.CancelledError:
            error = "cancelled"
        except Exception as e:  # a bug ends this request, never the agent
            log.exception("proxied request failed")
            error = f"{type(e).__name__}"
            if not head_sent:
                await self._refuse(
                    request.stream_id, 500, "the agent failed to proxy the request", "InternalError"
                )
                return
        finally:
            self._running[request.mode] -= 1
            self._streams.pop(request.stream_id, None)
            if head_sent or request.mode is Mode.UPGRADE:
                await self._end(request.stream_id, error)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(kp.PING_SECONDS / 2)
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if now - stream.last_sent >= kp.PING_SECONDS:
                    stream.last_sent = now
                    with contextlib.suppress(Exception):
                        await self._send(stream.request.stream_id, Frame.PING)

    def stats(self) -> dict[str, Any]:
        return {"open": len(self._streams), **{m.value: n for m, n in self._running.items()}}


class _Gone(Exception):
    pass
