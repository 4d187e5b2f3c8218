"""A real Git server over smart HTTP on loopback, for tests, demos and benchmarks: the `git http-backend`
CGI that ships with git, behind a ThreadingHTTPServer, with optional HTTP Basic auth; and `WorkTree`, a
clone that writes files, commits and pushes.

Every git process (the CGI and the clients) runs with a minimal environment: PATH, a private empty HOME,
no system config, no terminal prompts. The machine's git configuration never leaks in, and credentials
travel only in the environment (`http.extraHeader`), never in a URL or a `.git/config`."""

import atexit
import base64
import binascii
import contextlib
import functools
import hmac
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import zlib
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Self

from moorage.devcluster.errors import DevclusterError

REALM = "moorage-git"
IDENTITY = "Moorage Tests <tests@moorage.invalid>"
_IDENTITY_OPTIONS = ("-c", "user.name=Moorage Tests", "-c", "user.email=tests@moorage.invalid")
_TIMEOUT = 60.0
_BLOCK = 64 * 1024
_COUNTERS = (
    "requests",
    "ref_adverts",
    "ls_refs",
    "fetches",
    "push_adverts",
    "pushes",
    "chunked_bodies",
    "gzipped_bodies",
)


class GitServerError(DevclusterError):
    """A git command or the git server failed; `stderr` is git's own account (credentials removed)."""

    def __init__(self, message: str, stderr: str = "") -> None:
        self.stderr = stderr
        detail = stderr.strip()
        super().__init__(f"{message}: {detail}" if detail else message)


@functools.cache
def _private_home() -> Path:
    """One empty HOME per process for every git we run, so no ~/.gitconfig is ever read."""
    home = Path(tempfile.mkdtemp(prefix="moorage-git-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def _base_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(_private_home()),
        "LC_ALL": "C",  # git's messages in English, so errors read (and match) the same everywhere
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }


@functools.cache
def _http_backend() -> Path:
    exec_path = Path(run_git(["--exec-path"]).strip())
    backend = exec_path / "git-http-backend"
    if not backend.is_file():
        raise GitServerError(f"git-http-backend not found in git's exec path {exec_path}")
    return backend


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """Run `git ARGS` in the minimal environment and return its stdout. With credentials, every HTTP
    request carries `Authorization: Basic …` (config from the environment, so nothing is stored).
    Raises GitServerError with git's stderr when git fails or takes longer than 60 s."""
    env = _base_env()
    secrets: list[str] = []
    if username is not None or password is not None:
        token = _basic(username or "", password or "")
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}",
        }
        secrets = [s for s in (token, password) if s]
    command = _redact(" ".join(args), secrets)
    command = command if len(command) <= 120 else command[:117] + "..."
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=_TIMEOUT
        )
    except subprocess.CalledProcessError as e:
        stderr = _redact(e.stderr.decode(errors="replace"), secrets)
        raise GitServerError(f"git {command} failed (exit {e.returncode})", stderr) from None
    except subprocess.TimeoutExpired as e:
        stderr = _redact((e.stderr or b"").decode(errors="replace"), secrets)
        raise GitServerError(f"git {command} did not finish within {_TIMEOUT:.0f}s", stderr) from None
    except FileNotFoundError:
        raise GitServerError("git is not installed (not found on PATH)") from None
    return result.stdout.decode(errors="replace")


def _relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or path.parts[:1] == (".git",):
        raise ValueError(f"{name!r} is not a relative path inside the tree")
    return path


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # a restart may take the same port while old connections sit in TIME_WAIT

    def __init__(self, address: tuple[str, int], git: "GitServer") -> None:
        self.git = git
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-answer is not news; the handler answers 500 for real failures


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real Git host; CGI bodies go out chunked
    timeout = _TIMEOUT  # idle keep-alive connections do not hold a thread forever
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.git._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.git._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        git = self.server.git
        self._answered = False
        try:
            with tempfile.TemporaryFile() as body:
                try:
                    length, chunked = self._read_body(body)
                except (ValueError, OSError):
                    self.close_connection = True
                    self._plain(HTTPStatus.BAD_REQUEST, "malformed request body")
                    return
                if chunked:
                    git._count("chunked_bodies")
                authorized, user = git._authorize(self.headers.get("Authorization"))
                if not authorized:
                    self._plain(
                        HTTPStatus.UNAUTHORIZED,
                        "authentication required",
                        {"WWW-Authenticate": f'Basic realm="{REALM}"'},
                    )
                    return
                self._run_cgi(git, body, length, user)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # the CGI or our plumbing failed: one line to the client, thread lives on
            self.close_connection = True
            if not self._answered:
                message = " ".join(str(e).split()) or type(e).__name__
                with contextlib.suppress(OSError):
                    self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, f"git http-backend failed: {message}")

    def _read_body(self, out: IO[bytes]) -> tuple[int, bool]:
        """Copy the request body into `out`, decoding `Transfer-Encoding: chunked` (git sends bodies
        above http.postBuffer that way); returns the body length and whether it came chunked."""
        encodings = [e.strip().lower() for e in self.headers.get("Transfer-Encoding", "").split(",")]
        total = 0
        if encodings[-1] == "chunked":
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ValueError("truncated chunk size line")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    break
                total += self._copy(out, size)
                if self.rfile.readline(3).strip():
                    raise ValueError("chunk not followed by CRLF")
            while self.rfile.readline(8192).strip():  # trailers, ignored
                pass
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            total = self._copy(out, length)
        out.seek(0)
        return total, encodings[-1] == "chunked"

    def _copy(self, out: IO[bytes], size: int) -> int:
        remaining = size
        while remaining:
            block = self.rfile.read(min(remaining, _BLOCK))
            if not block:
                raise ValueError("request body ended early")
            out.write(block)
            remaining -= len(block)
        return size

    def _run_cgi(self, git: "GitServer", body: IO[bytes], length: int, user: str | None) -> None:
        path, _, query = self.path.partition("?")
        path_info = urllib.parse.unquote(path)
        env = _base_env() | {
            "GIT_PROJECT_ROOT": str(git.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "moorage-gitserver",
            "SERVER_PROTOCOL": self.request_version,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.command == "POST":
            env["CONTENT_LENGTH"] = str(length)
            env["CONTENT_TYPE"] = self.headers.get("Content-Type", "")
        if user is not None:
            env |= {"REMOTE_USER": user, "AUTH_TYPE": "Basic"}
        if protocol := self.headers.get("Git-Protocol"):
            env |= {"GIT_PROTOCOL": protocol, "HTTP_GIT_PROTOCOL": protocol}
        if encoding := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding  # http-backend inflates gzip itself
            git._count("gzipped_bodies")
        kind = _kind(self.command, path_info, query, body, encoding or "")
        body.flush()
        os.lseek(body.fileno(), 0, os.SEEK_SET)  # the CGI reads the file descriptor, not our buffer
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [str(_http_backend())],
                stdin=body,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                cwd=git.root,
            )
            try:
                assert proc.stdout is not None
                head = _read_cgi_head(proc.stdout)
                if head is None:
                    proc.wait(timeout=_TIMEOUT)
                    raise GitServerError(_last_line(errors) or f"exited {proc.returncode} without an answer")
                status, reason, headers = head
                if status >= 400:
                    # http-backend explains a refusal on stderr only (its body is empty): pass that line on
                    rest = proc.stdout.read().decode(errors="replace").strip()
                    proc.wait(timeout=_TIMEOUT)
                    message = rest or _last_line(errors) or f"git http-backend answered {status}"
                    self._plain(status, " ".join(message.split()), reason=reason)
                    return
                if kind is not None:
                    git._count(kind)
                self._stream(status, reason, headers, proc.stdout)
                proc.wait(timeout=_TIMEOUT)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()

    def _stream(
        self, status: int, reason: str | None, headers: list[tuple[str, str]], out: IO[bytes]
    ) -> None:
        self._begin(status, reason)
        hop_by_hop = {"connection", "transfer-encoding", "keep-alive"}
        for name, value in headers:
            if name.lower() not in hop_by_hop:
                self.send_header(name, value)
        sized = any(name.lower() == "content-length" for name, _ in headers)
        chunked = not sized and self.request_version == "HTTP/1.1"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not sized:
            self.close_connection = True  # an HTTP/1.0 client: the end of the body is the end of the stream
            self.send_header("Connection", "close")
        self.end_headers()
        read1 = getattr(out, "read1", out.read)
        while block := read1(_BLOCK):  # forward what git has written so far: progress arrives live
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                self.wfile.write(block)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _begin(self, status: int, reason: str | None) -> None:
        self.server.git._count("requests")  # before answering: a client that got the answer sees it counted
        self._answered = True
        self.send_response(status, reason)

    def _plain(
        self,
        status: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        data = (message + "\n").encode()
        self._begin(status, reason)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _last_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    lines = stream.read().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _read_cgi_head(out: IO[bytes]) -> tuple[int, str | None, list[tuple[str, str]]] | None:
    """The CGI response header block; None when the CGI ended before finishing it."""
    status, reason = 200, None
    headers: list[tuple[str, str]] = []
    for _ in range(100):
        line = out.readline(8192)
        if not line.endswith(b"\n"):
            return None
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return status, reason, headers
        name, _, value = text.partition(":")
        if name.strip().lower() == "status":
            code, _, phrase = value.strip().partition(" ")
            status, reason = int(code), phrase or None
        else:
            headers.append((name.strip(), value.strip()))
    return None


def _kind(method: str, path_info: str, query: str, body: IO[bytes], encoding: str) -> str | None:
    """Which counter a request moves: ref advertisements, v2 ls-refs, fetches, pushes."""
    if method == "GET" and path_info.endswith("/info/refs"):
        service = urllib.parse.parse_qs(query).get("service", [""])[0]
        return {"git-upload-pack": "ref_adverts", "git-receive-pack": "push_adverts"}.get(service)
    if method == "POST" and path_info.endswith("/git-upload-pack"):
        return "ls_refs" if _first_pkt_line(body, encoding) == b"command=ls-refs" else "fetches"
    if method == "POST" and path_info.endswith("/git-receive-pack"):
        return "pushes"
    return None


def _first_pkt_line(body: IO[bytes], encoding: str) -> bytes:
    try:
        data = os.pread(body.fileno(), 4096, 0)
        if encoding.lower() in ("gzip", "x-gzip"):
            data = zlib.decompressobj(wbits=31).decompress(data, 1024)
        size = int(data[:4], 16)
        return data[4:size].rstrip(b"\n") if size > 4 else b""
    except (ValueError, zlib.error):
        return b""


class GitServer:
    """Bare repositories under `root`, served over smart HTTP (`git http-backend`) on 127.0.0.1 from a
    background thread. With `username`/`password`, every request needs HTTP Basic auth with them.

    Counters (thread-safe, for tests and benchmarks): `requests` (every answer, 401s included), and for
    requests git http-backend answered below 400: `ref_adverts` (GET info/refs?service=git-upload-pack),
    `ls_refs` (protocol v2 ls-refs POSTs), `fetches` (other git-upload-pack POSTs: v0 and v2 fetches),
    `push_adverts`, `pushes`; `chunked_bodies` and `gzipped_bodies` count request bodies sent with
    Transfer-Encoding: chunked and with Content-Encoding (git gzips upload-pack requests above 1 KiB)."""

    def __init__(self, root: Path, *, username: str | None = None, password: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._lock = threading.Lock()
        self._credentials: tuple[str, str] | None = None
        self.set_credentials(username, password)
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._connections: set[socket.socket] = set()

    # lifecycle

    def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:`port` (0: a free port). After stop(), start(server.port) takes the same
        port again, so URLs already handed out work again."""
        if self._httpd is not None:
            raise GitServerError(f"the git server is already running at {self.url}")
        _http_backend()  # fail here, not on the first request, when git has no http-backend
        try:
            httpd = _HTTPServer(("127.0.0.1", port), self)
        except OSError as e:
            raise GitServerError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}") from None
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="git-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every open connection: new connections are refused until start()."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> Self:
        """Starts the server on a free port unless it is already running; stops it on exit."""
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port of the current (or, after stop(), the last) listener."""
        if self._port is None:
            raise GitServerError("the git server was never started: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # auth

    def set_credentials(self, username: str | None, password: str | None) -> None:
        """Require these Basic credentials from now on (both None: no auth). Takes effect on the next
        request, so it can simulate a revoked or rotated token."""
        if (username is None) != (password is None):
            raise ValueError("set both username and password, or neither")
        with self._lock:
            self._credentials = None if username is None or password is None else (username, password)

    def _authorize(self, header: str | None) -> tuple[bool, str | None]:
        with self._lock:
            credentials = self._credentials
        if credentials is None:
            return True, None
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            username, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False, None
        ok = sep == b":"
        ok &= hmac.compare_digest(username, credentials[0].encode())
        ok &= hmac.compare_digest(password, credentials[1].encode())
        return ok, credentials[0] if ok else None

    # repositories

    def create_repo(self, name: str, *, default_branch: str = "main") -> str:
        """A bare repository at root/`name` (e.g. "org/cluster-config.git") that accepts pushes over
        HTTP and serves any reachable commit by SHA, with HEAD on `default_branch`; returns its URL."""
        url = self.repo_url(name)
        path = self.root / _relative(name)
        if path.exists():
            raise GitServerError(f"repository {name} already exists at {path}")
        run_git(["init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)])
        run_git(["-C", str(path), "config", "http.receivepack", "true"])
        run_git(["-C", str(path), "config", "uploadpack.allowReachableSHA1InWant", "true"])
        return url

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{urllib.parse.quote(str(_relative(name)))}"

    # counters

    def counts(self) -> dict[str, int]:
        """A snapshot of every counter."""
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(_COUNTERS, 0)

    @property
    def requests(self) -> int:
        return self._get("requests")

    @property
    def ref_adverts(self) -> int:
        return self._get("ref_adverts")

    @property
    def ls_refs(self) -> int:
        return self._get("ls_refs")

    @property
    def fetches(self) -> int:
        return self._get("fetches")

    @property
    def upload_packs(self) -> int:
        """Everything git-upload-pack served: ref advertisements, v2 ls-refs and fetches."""
        counts = self.counts()
        return counts["ref_adverts"] + counts["ls_refs"] + counts["fetches"]

    @property
    def pushes(self) -> int:
        return self._get("pushes")

    def _get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class WorkTree:
    """A clone of `remote_url` at `path` for tests: write files, commit as "Moorage Tests
    <tests@moorage.invalid>", push `branch`. Credentials go to git through the environment only."""

    def __init__(
        self,
        path: Path,
        remote_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        branch: str = "main",
    ) -> None:
        self.path = path
        self.remote_url = remote_url
        self.branch = branch
        self._username = username
        self._password = password
        path.parent.mkdir(parents=True, exist_ok=True)
        # cloning an empty repository is `git init` + `git remote add origin`, in one round trip
        self._run(["clone", "--quiet", remote_url, str(path)], cwd=path.parent)
        if self.git("for-each-ref", "--format=%(refname)", f"refs/remotes/origin/{branch}").strip():
            self.git("checkout", "--quiet", "-B", branch, f"origin/{branch}")
        elif self.git("for-each-ref", "--format=%(refname)", "refs/heads").strip():
            self.git("checkout", "--quiet", "-b", branch)  # a new branch from the remote's default
        else:
            self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")  # empty remote: unborn branch

    def git(self, *args: str) -> str:
        """Run any git command in the work tree (with the identity and credentials); returns stdout."""
        return self._run(list(args), cwd=self.path)

    def _run(self, args: list[str], cwd: Path) -> str:
        return run_git([*_IDENTITY_OPTIONS, *args], cwd=cwd, username=self._username, password=self._password)

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write each file (relative path → content); None deletes it."""
        for name, content in files.items():
            target = self.path / _relative(name)
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode())

    def commit(self, message: str) -> str:
        """Commit every change in the tree; returns the new commit's full SHA. Raises GitServerError
        when nothing changed."""
        self.git("add", "--all")
        if not self.git("status", "--porcelain").strip():
            raise GitServerError(f"nothing to commit in {self.path}")
        self.git("commit", "--quiet", "--no-verify", "-m", message)
        return self.head()

    def push(self) -> None:
        self.git("push", "--quiet", "--set-upstream", "origin", f"refs/heads/{self.branch}")

    def commit_and_push(self, files: Mapping[str, str | None], message: str) -> str:
        self.write(files)
        sha = self.commit(message)
        self.push()
        return sha

    def revert(self, sha: str) -> str:
        """`git revert --no-edit SHA`; returns the new commit's SHA (not pushed)."""
        self.git("revert", "--no-edit", sha)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def copy_tree(self, source: Path) -> None:
        """Copy a directory's files (e.g. examples/gitops-repo) into the work tree, skipping .git."""
        shutil.copytree(source, self.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
