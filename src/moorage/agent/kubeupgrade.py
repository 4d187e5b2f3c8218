"""Upgraded connections of the kubectl proxy: `kubectl exec`, `attach` and `port-forward` speak
WebSocket (exec and attach `v5.channel.k8s.io` and older channel protocols; port-forward SPDY
tunnelled over WebSocket, `SPDY/3.1+portforward.k8s.io`). The agent opens a WebSocket to its API
server with the subprotocols the client offered and relays whole messages both ways: the server
terminates the client's WebSocket, so neither side needs to understand the channels inside."""

import asyncio
import contextlib
from typing import TYPE_CHECKING

from moorage.kube.errors import KubeError
from moorage.kube.passthrough import HandshakeRefused
from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import Frame, KubeHead

if TYPE_CHECKING:
    from moorage.agent.kubeproxy import KubeProxyAgent, _Stream


async def relay(agent: "KubeProxyAgent", stream: "_Stream") -> str | None:
    """Relay one WebSocket between the server and the API server; the error that ended it, if any."""
    import aiohttp

    request = stream.request
    sid = request.stream_id
    try:
        async with agent._api.websocket(
            request.path, request.query, request.subprotocols, user=request.user, groups=request.groups
        ) as ws:
            head = KubeHead(status=101, subprotocol=ws.protocol)
            await agent._send(sid, Frame.HEAD, head.model_dump_json().encode())

            async def to_api_server() -> None:
                pending = b""
                taken = 0
                while True:
                    item = await stream.ws_in.get()
                    if item is None:
                        return
                    data, text, more = item
                    pending += data
                    taken += 1
                    if taken >= kp.WINDOW // 2:  # room for more: the server may send them
                        await agent._send(sid, Frame.CREDIT, extra={kp.H_N: str(taken)})
                        taken = 0
                    if more:
                        continue
                    message, pending = pending, b""
                    if text:
                        await ws.send_str(message.decode("utf-8", "replace"))
                    else:
                        await ws.send_bytes(message)

            async def to_server() -> str | None:
                async for msg in ws:
                    if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                        text = msg.type is aiohttp.WSMsgType.TEXT
                        data = msg.data.encode() if text else msg.data
                        parts = kp.chunks(data) or [b""]
                        for i, part in enumerate(parts):
                            extra = {kp.H_WS: "t" if text else "b"}
                            if i < len(parts) - 1:
                                extra[kp.H_MORE] = "1"
                            await agent._data(stream, part, extra)
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        return f"the API server's WebSocket failed: {ws.exception()}"
                return None

            up = asyncio.create_task(to_api_server())
            try:
                return await to_server()
            finally:
                up.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await up
    except HandshakeRefused as e:
        await agent._refuse(sid, e.status or 502, str(e) or "the API server refused the upgrade", "Forbidden")
        return None
    except KubeError as e:
        await agent._refuse(sid, 502, str(e), "ServiceUnavailable")
        return None
