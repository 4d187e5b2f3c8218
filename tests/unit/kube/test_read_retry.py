"""KUBERNETES_REQUEST_MAX_ATTEMPTS: a GET whose connection the API server dropped is tried again, up to
the agent's limit; writes are never retried (a dropped POST may have been applied). A loopback server
that closes the first connections without answering plays the API server."""

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from moorage.kube import errors
from moorage.kube.client import KubeClient
from moorage.kube.config import ClusterConfig


@dataclass
class Dropping:
    """Closes the first `drops` connections at once, answers 200 {} on the others."""

    drops: int
    port: int = 0
    connections: int = 0
    _sock: socket.socket = field(default_factory=socket.socket)

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if self.connections <= self.drops:
                    continue
                conn.recv(65536)
                body = json.dumps({"kind": "Status"}).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)


@pytest.fixture
def dropping(request: pytest.FixtureRequest) -> Iterator[Dropping]:
    server = Dropping(drops=request.param)
    server._sock.bind(("127.0.0.1", 0))
    server._sock.listen()
    server.port = server._sock.getsockname()[1]
    threading.Thread(target=server.serve, daemon=True).start()
    yield server
    server._sock.close()


def client(port: int, attempts: int) -> KubeClient:
    config = ClusterConfig(
        f"http://127.0.0.1:{port}", ssl.create_default_context(), None, None, "default", "t"
    )
    return KubeClient(config, read_attempts=attempts)


@pytest.mark.parametrize("dropping", [2], indirect=True)
async def test_a_dropped_get_is_tried_again_up_to_the_limit(dropping: Dropping) -> None:
    async with client(dropping.port, attempts=3) as kube:
        assert await kube.request("GET", "/version", what="version") == {"kind": "Status"}
    assert dropping.connections == 3


@pytest.mark.parametrize("dropping", [3], indirect=True)
async def test_past_the_limit_the_error_says_the_server_is_unreachable(dropping: Dropping) -> None:
    async with client(dropping.port, attempts=3) as kube:
        with pytest.raises(errors.Unavailable, match="cannot reach the API server"):
            await kube.request("GET", "/version", what="version")
    assert dropping.connections == 3


@pytest.mark.parametrize("dropping", [1], indirect=True)
async def test_a_write_is_not_retried(dropping: Dropping) -> None:
    async with client(dropping.port, attempts=3) as kube:
        with pytest.raises(errors.Unavailable):
            await kube.request("POST", "/api/v1/namespaces", what="create", body={})
    assert dropping.connections == 1


@pytest.mark.parametrize("dropping", [1], indirect=True)
async def test_one_attempt_by_default(dropping: Dropping) -> None:
    config = ClusterConfig(
        f"http://127.0.0.1:{dropping.port}", ssl.create_default_context(), None, None, "default", "t"
    )
    async with KubeClient(config) as kube:
        with pytest.raises(errors.Unavailable):
            await kube.request("GET", "/version", what="version")
    assert dropping.connections == 1
