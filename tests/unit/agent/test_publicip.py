"""Public IP lookup: what counts as an answer, bounds, and the URL check (a local HTTP server)."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from moorage.agent import publicip
from moorage.spec.protocol import HeartbeatMessage


class Answer(BaseHTTPRequestHandler):
    body = b"203.0.113.7\n"
    status = 200
    delay = 0.0

    def do_GET(self) -> None:
        if self.delay:
            threading.Event().wait(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    Answer.body, Answer.status, Answer.delay = b"203.0.113.7\n", 200, 0.0


def url(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


@pytest.mark.parametrize(
    ("body", "address"),
    [
        (b"203.0.113.7", "203.0.113.7"),
        (b" 203.0.113.7\r\n", "203.0.113.7"),
        (b"2001:DB8::1", "2001:db8::1"),
        (b"<html>hello</html>", None),
        (b"203.0.113.7 198.51.100.1", None),
        (b"\xff\xfe", None),
        (b"", None),
    ],
)
def test_parse(body: bytes, address: str | None) -> None:
    assert publicip.parse(body) == address


async def test_lookup_answers_the_address(server: ThreadingHTTPServer) -> None:
    assert await publicip.lookup(url(server)) == "203.0.113.7"


async def test_lookup_refuses_a_long_answer(server: ThreadingHTTPServer) -> None:
    Answer.body = b"1" * (publicip.MAX_BYTES + 1)
    assert await publicip.lookup(url(server)) is None


async def test_lookup_refuses_an_error_status(server: ThreadingHTTPServer) -> None:
    Answer.status = 500
    assert await publicip.lookup(url(server)) is None


async def test_lookup_is_bounded_in_time(server: ThreadingHTTPServer) -> None:
    Answer.delay = 2.0
    assert await publicip.lookup(url(server), timeout=0.3) is None


async def test_lookup_of_nothing_listening() -> None:
    assert await publicip.lookup("http://127.0.0.1:9/") is None


@pytest.mark.parametrize("bad", ["ftp://example.com/", "api.ipify.org", "https://", "file:///etc/hosts"])
def test_check_url_names_the_setting(bad: str) -> None:
    with pytest.raises(publicip.LookupUrlError, match=r"public_ip\.lookup_url"):
        publicip.check_url(bad)


def test_heartbeat_carries_only_an_address() -> None:
    beat = HeartbeatMessage(cluster_id="c", agent_version="1", public_ip="2001:DB8::1")
    assert beat.public_ip == "2001:db8::1"
    assert HeartbeatMessage(cluster_id="c", agent_version="1").public_ip is None
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        HeartbeatMessage(cluster_id="c", agent_version="1", public_ip="evil.example")


def test_a_heartbeat_without_an_address_is_what_an_older_server_takes() -> None:
    from moorage.spec import protocol

    plain = protocol.encode(HeartbeatMessage(cluster_id="c", agent_version="1"))
    assert b"public_ip" not in plain
    assert b'"public_ip":"203.0.113.7"' in protocol.encode(
        HeartbeatMessage(cluster_id="c", agent_version="1", public_ip="203.0.113.7")
    )
