"""Raw requests to the API server on behalf of someone else (the agent's kubectl proxy).

Every request carries the agent's own credential and `Impersonate-User` / `Impersonate-Group`: the
API server authorises it as that user, so the cluster's RBAC decides. A request without a user to
impersonate is refused here, so nobody ever acts with the agent's own permissions. Bodies pass
through as bytes, compressed as the API server sent them (no decoding)."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx2 as httpx

from moorage.kube import errors
from moorage.kube.config import ClusterConfig

if TYPE_CHECKING:
    import aiohttp


class _NoQuery(logging.Filter):
    """httpx logs every request with its URL; a proxied request's query string is the user's (a
    Service behind the proxy may take a token there), so it never reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and "?" in str(args[1]):
            record.args = (args[0], str(args[1]).split("?", 1)[0] + "?…", *args[2:])
        return True


_QUERY_FILTER = _NoQuery()


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    chunks: AsyncIterator[bytes]


class Passthrough:
    """A connection pool of its own (the agent's jobs never wait for a slow watch, nor the reverse)."""

    def __init__(self, config: ClusterConfig, *, max_connections: int = 200) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
            trust_env=False,
        )
        for name in ("httpx2", "httpx"):
            logger = logging.getLogger(name)
            if _QUERY_FILTER not in logger.filters:
                logger.addFilter(_QUERY_FILTER)
        self._ws_session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        await self._http.aclose()
        if self._ws_session is not None:
            await self._ws_session.close()

    def _headers(
        self, headers: Sequence[tuple[str, str]], user: str, groups: Sequence[str]
    ) -> list[tuple[str, str]]:
        if not user:
            raise errors.Forbidden("a proxied request names no user to impersonate: refused")
        out = [
            (k, v)
            for k, v in headers
            if not k.lower().startswith("impersonate-") and k.lower() != "authorization"
        ]
        if token := self.config.bearer():
            out.append(("Authorization", f"Bearer {token}"))
        out.append(("Impersonate-User", user))
        out += [("Impersonate-Group", g) for g in groups]
        return out

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        user: str,
        groups: Sequence[str],
        connect_timeout: float = 15.0,
        read_timeout: float | None = None,
    ) -> AsyncIterator[RawResponse]:
        """The API server's answer: status, headers, and its body as it arrives (raw bytes)."""
        url = path + (f"?{query}" if query else "")
        request = self._http.build_request(
            method,
            url,
            headers=self._headers(headers, user, groups),
            content=body or None,
            timeout=httpx.Timeout(connect_timeout, read=read_timeout, write=connect_timeout),
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException as e:
            raise errors.Unavailable(f"the API server did not answer in time ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise errors.Unavailable(f"cannot reach the API server {self.config.server}: {e}") from None
        try:

            async def raw() -> AsyncIterator[bytes]:
                try:
                    async for piece in response.aiter_raw():
                        yield piece
                except httpx.TransportError as e:
                    raise errors.Unavailable(f"the API server's answer broke off: {e}") from None

            yield RawResponse(response.status_code, list(response.headers.multi_items()), raw())
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(response.aclose())

    @contextlib.asynccontextmanager
    async def websocket(
        self,
        path: str,
        query: str,
        subprotocols: Sequence[str],
        *,
        user: str,
        groups: Sequence[str],
    ) -> AsyncIterator["aiohttp.ClientWebSocketResponse"]:
        """A WebSocket to the API server (exec, attach, port-forward) with the subprotocols the client
        offered; the API server's choice is `ws.protocol`. HandshakeRefused carries its answer."""
        import aiohttp
        from multidict import CIMultiDict

        base = self.config.server.rstrip("/")
        scheme, _, rest = base.partition("://")
        url = ("wss" if scheme == "https" else "ws") + "://" + rest + path + (f"?{query}" if query else "")
        if self._ws_session is None:
            self._ws_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.config.ssl_context, limit=0)
            )
        try:
            ws = await self._ws_session.ws_connect(
                url,
                protocols=tuple(subprotocols),
                headers=CIMultiDict(self._headers([], user, groups)),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
                autoping=True,
                max_msg_size=0,
                compress=0,
            )
        except aiohttp.WSServerHandshakeError as e:
            raise HandshakeRefused(e.status, e.message) from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise errors.Unavailable(f"cannot reach the API server {self.config.server}: {e}") from None
        try:
            yield ws
        finally:
            await ws.close()


class HandshakeRefused(errors.KubeError):
    """The API server answered the WebSocket upgrade with an HTTP status (403, 404, 400 …)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)
