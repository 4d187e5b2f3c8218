"""Chart sources on loopback for the demo and the tests: a Helm chart repository over HTTP (index.yaml
with ETag) and an OCI registry (CNCF distribution), both loaded with packaged charts.

This is test infrastructure: it runs `helm package` / `helm push` to load the sources, while release
management stays in `moorage.helm`."""

import base64
import hashlib
import hmac
import os
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from moorage.devcluster import binaries, http, network, process
from moorage.devcluster.errors import ComponentFailed, DevclusterError

_CONTENT_TYPES = {".yaml": "application/x-yaml", ".tgz": "application/gzip", ".prov": "text/plain"}


@dataclass
class RequestLog:
    """What the chart repository served, so tests can check caching (304s) and traffic."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: list[tuple[str, int]] = field(default_factory=list)

    def add(self, path: str, status: int) -> None:
        with self.lock:
            self.entries.append((path, status))

    def statuses(self, path: str) -> list[int]:
        with self.lock:
            return [s for p, s in self.entries if p == path]


def _etag(path: Path) -> str:
    return '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"'


def _handler(
    root: Path, log: RequestLog, auth: tuple[str, str] | None = None
) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            path = urllib.parse.unquote(self.path.split("?", 1)[0])
            given = self.headers.get("Authorization", "")
            if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
                log.add(path, HTTPStatus.UNAUTHORIZED)
                self.send_response(HTTPStatus.UNAUTHORIZED)
                self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            target = (root / path.lstrip("/")).resolve()
            if not target.is_relative_to(root) or not target.is_file():
                self._status(path, HTTPStatus.NOT_FOUND)
                return
            etag = _etag(target)
            if etag in (t.strip() for t in self.headers.get("If-None-Match", "").split(",")):
                log.add(path, HTTPStatus.NOT_MODIFIED)
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            data = target.read_bytes()
            log.add(path, HTTPStatus.OK)  # before answering: a client that got the answer sees it logged
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", _CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _status(self, path: str, status: HTTPStatus) -> None:
            log.add(path, status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@dataclass
class ChartRepo:
    url: str
    dir: Path
    requests: RequestLog


@contextmanager
def serve_chart_repo(directory: Path, auth: tuple[str, str] | None = None) -> Iterator[ChartRepo]:
    """Serve `directory` (packaged charts plus index.yaml) over HTTP on a loopback port; with `auth`
    (user, password) every request needs that HTTP basic auth, else 401."""
    root = directory.resolve()
    log = RequestLog()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, log, auth))
    thread = threading.Thread(target=server.serve_forever, name="chart-repo", daemon=True)
    thread.start()
    try:
        yield ChartRepo(f"http://127.0.0.1:{server.server_address[1]}", root, log)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    started: process.Started

    @property
    def url(self) -> str:
        return f"oci://{self.host}/charts"


@contextmanager
def run_registry(directory: Path, timeout: float = 30.0, htpasswd: str | None = None) -> Iterator[Registry]:
    """An OCI registry (CNCF distribution) on a loopback port, storing blobs in `directory`. With
    `htpasswd` (lines `user:bcrypt-hash`, e.g. from `htpasswd -nB`) every request needs basic auth."""
    directory.mkdir(parents=True, exist_ok=True)
    (port,) = network.free_ports(1)
    config = directory / "config.yml"
    auth = ""
    if htpasswd is not None:
        (directory / "htpasswd").write_text(htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: charts\n    path: {directory / 'htpasswd'}\n"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth
    )
    started = process.start(
        "registry",
        [str(binaries.find("registry")), "serve", str(config)],
        directory / "registry.log",
        # the registry reports usage statistics unless told not to; there is no network here anyway
        env={"OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"},
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers("127.0.0.1", port):
            if not process.alive(started):
                raise ComponentFailed("registry", "the process exited", process.log_tail(started.log))
            if time.monotonic() > deadline:
                raise ComponentFailed(
                    "registry", f"not ready after {timeout:.0f}s", process.log_tail(started.log)
                )
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", started)
    finally:
        process.stop([started])


def _answers(host: str, port: int) -> bool:
    """The registry's API answers (200, or 401 when authentication is on)."""
    try:
        return http.request(host, port, "GET", "/v2/", timeout=2.0).status in (200, 401)
    except (OSError, HTTPException):
        return False


def helm_env(home: Path) -> dict[str, str]:
    """Environment that keeps helm's cache, config and data under `home` (never the user's own)."""
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def _helm(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(binaries.find("helm")), *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise DevclusterError(f"helm {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


def package_charts(chart_dirs: Iterable[Path], out: Path, helm_home: Path) -> list[Path]:
    """`helm package` each chart directory into `out`; returns the archives."""
    out.mkdir(parents=True, exist_ok=True)
    env = helm_env(helm_home)
    archives = []
    for chart in chart_dirs:
        line = _helm(["package", str(chart), "--destination", str(out)], env).strip().splitlines()[-1]
        archives.append(Path(line.rsplit(": ", 1)[-1]))
    return archives


def index_repo(directory: Path, url: str, helm_home: Path) -> None:
    _helm(["repo", "index", str(directory), "--url", url], helm_env(helm_home))


def push_charts(
    archives: Iterable[Path], registry: Registry, helm_home: Path, login: tuple[str, str] | None = None
) -> None:
    """`helm push` each archive; with `login` (user, password) after `helm registry login` (the
    password on stdin; helm keeps the login in `helm_home`, a test directory)."""
    env = helm_env(helm_home)
    if login is not None:
        result = subprocess.run(
            [str(binaries.find("helm")), "registry", "login", registry.host, "--plain-http",
             "--username", login[0], "--password-stdin"],
            input=login[1], capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise DevclusterError(f"helm registry login failed: {result.stderr.strip()}")
    for archive in archives:
        _helm(["push", str(archive), registry.url, "--plain-http"], env)
