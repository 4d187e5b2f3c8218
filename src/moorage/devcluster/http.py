"""The few HTTP(S) calls `up` needs (health probes, creating nodes), with the standard library only."""

import http.client
import json
import ssl
from pathlib import Path
from typing import Any


class HttpResult:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url_host: str,
    port: int,
    method: str,
    path: str,
    *,
    tls: ssl.SSLContext | None = None,
    body: Any = None,
    timeout: float = 5.0,
) -> HttpResult:
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(url_host, port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(url_host, port, timeout=timeout, context=tls)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return HttpResult(response.status, response.read())
    finally:
        conn.close()


def client_tls(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """TLS that trusts only the cluster CA and presents a client certificate."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def unverified_tls() -> ssl.SSLContext:
    """For the health ports of kcm and the scheduler, which serve a self-signed cert on loopback."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def probe(host: str, port: int, path: str, tls: ssl.SSLContext | None = None) -> bool:
    try:
        return request(host, port, "GET", path, tls=tls, timeout=2.0).status == 200
    except (OSError, http.client.HTTPException):
        return False
