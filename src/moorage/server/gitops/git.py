"""The `git` CLI, for reading repositories: ls-remote, fetch into a bare cache, and copying one
commit's files out of it. Nothing is checked out; files come from the commit's tree, so symlinks,
submodules and hidden folders are never materialised, and sizes are checked before any blob is read.

Hardening (reliability notes G1-G4, S2): user values always follow `--`; a protocol allowlist
(GIT_ALLOW_PROTOCOL); no system or user git config; no terminal prompts; a time limit per command;
credentials reach git through the environment of its process only (an askpass script reads them)
and are masked in any message git prints."""

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from moorage.server import egress
from moorage.server.gitops import repourl
from moorage.server.secretbox import Secret

TIMEOUT_SECONDS = 60.0
MAX_FILE_BYTES = 1024 * 1024
MAX_TREE_FILES = 10_000
MAX_TREE_BYTES = 64 * 1024 * 1024
_OUTPUT_LIMIT = 64 * 1024
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ASKPASS = """#!/bin/sh
# Moorage: answers git's credential prompts from its own environment (never from disk)
case "$1" in
  Username*) printf '%s\\n' "$MOORAGE_GIT_USERNAME" ;;
  *) printf '%s\\n' "$MOORAGE_GIT_PASSWORD" ;;
esac
"""

# git's messages for failures worth another attempt, and for refused credentials
_AUTH_HINTS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "invalid username or password",
    "permission denied (publickey",
    "http 401",
    "http 403",
    "returned error: 401",
    "returned error: 403",
)
_UNREACHABLE_HINTS = (
    "could not resolve host",
    "connection refused",
    "failed to connect",
    "couldn't connect",
    "connection timed out",
    "operation timed out",
    "timed out",
    "connection reset",
    "unable to access",
    "early eof",
    "the remote end hung up",
    "returned error: 5",
    "http 5",
    "ssl",
    "tls",
)


class GitError(Exception):
    """A git operation failed; `message` is safe to show (no secrets). `temporary` failures (the
    network, the server, refused credentials) are retried with backoff; others wait for a change."""

    def __init__(self, message: str, *, temporary: bool, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.reason = reason  # unreachable | auth | not_found | too_large | invalid | refused | git


@dataclass(frozen=True)
class GitAuth:
    kind: str  # "token" (HTTP basic: username + token) or "ssh_key"
    secret: Secret
    username: str | None = None
    name: str = ""  # the credential's name, for messages

    def __repr__(self) -> str:
        return f"GitAuth({self.kind}, {self.name!r})"


@dataclass
class Tree:
    """One commit's regular files, copied to `root`; `skipped` says what was left out and why."""

    root: Path
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _classify(stderr: str, what: str, auth: GitAuth | None) -> GitError:
    text = stderr.strip().splitlines()
    detail = "; ".join(line.strip() for line in text[-3:] if line.strip()) or "no message from git"
    low = stderr.lower()
    cred = f" with credential {auth.name!r}" if auth and auth.name else " (no credential is set)"
    if any(h in low for h in _AUTH_HINTS):
        return GitError(
            f"{what}: the Git server refused access{cred}: {detail}. Check the repository URL and that "
            "the credential is valid and has read access; rotate it with `moorage credentials rotate`",
            temporary=True,
            reason="auth",
        )
    if "transport '" in low and "not allowed" in low:
        return GitError(
            f"{what}: this kind of repository URL is not allowed on this server: {detail}",
            temporary=False,
            reason="invalid",
        )
    if "couldn't find remote ref" in low or "not found in upstream" in low:
        return GitError(f"{what}: {detail}", temporary=False, reason="not_found")
    if ("repository" in low and "not found" in low) or "does not appear to be a git repository" in low:
        return GitError(f"{what}: the repository was not found: {detail}", temporary=True, reason="not_found")
    if any(h in low for h in _UNREACHABLE_HINTS):
        return GitError(
            f"{what}: the Git server is unreachable: {detail}", temporary=True, reason="unreachable"
        )
    return GitError(f"{what}: {detail}", temporary=True, reason="git")


def _redact(text: str, auth: GitAuth | None) -> str:
    if auth is not None:
        secret = auth.secret.reveal()
        for line in secret.splitlines() if auth.kind == "ssh_key" else [secret]:
            if len(line.strip()) >= 4:
                text = text.replace(line.strip(), "********")
    return text


class Git:
    """git commands against a cache of bare repositories in `cache_dir` (one per URL)."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        allow_file: bool = False,
        timeout_seconds: float = TIMEOUT_SECONDS,
        binary: str = "git",
        egress_policy: egress.EgressPolicy | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.timeout = timeout_seconds
        self.binary = binary
        self.protocols = "https:http:ssh:git" + (":file" if allow_file else "")
        self._home = self.cache_dir / "home"
        self._home.mkdir(exist_ok=True, mode=0o700)
        self._askpass = self.cache_dir / "askpass.sh"
        self._askpass.write_text(_ASKPASS)
        self._askpass.chmod(0o700)
        self._locks: dict[str, asyncio.Lock] = {}
        # None: no check (the unit tests' local repositories); the server always passes its policy
        self.egress_policy = egress_policy

    # ------------------------------------------------------------------ process plumbing

    def _env(self, auth: GitAuth | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": self.protocols,
            "GIT_ASKPASS": str(self._askpass),
            "SSH_ASKPASS": str(self._askpass),
            "GIT_SSH_COMMAND": self._ssh_command,
            "MOORAGE_GIT_USERNAME": "",
            "MOORAGE_GIT_PASSWORD": "",
        }
        if auth is not None and auth.kind == "token":
            env["MOORAGE_GIT_USERNAME"] = auth.username or "x-access-token"
            env["MOORAGE_GIT_PASSWORD"] = auth.secret.reveal()
        if extra:
            env.update(extra)
        return env

    async def _run(
        self,
        args: Sequence[str],
        what: str,
        *,
        auth: GitAuth | None = None,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        limit: int = _OUTPUT_LIMIT,
    ) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            "credential.helper=",
            "-c",
            "core.askPass=",
            "-c",
            "protocol.version=2",
            *args,
            cwd=cwd,
            env=self._env(auth, env),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a time-out kills git and its helpers (ssh, remote-http) together
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout)
        except (TimeoutError, asyncio.CancelledError) as stopped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            if isinstance(stopped, asyncio.CancelledError):
                raise
            raise GitError(
                f"{what}: git did not finish within {self.timeout:g} s (the Git server is slow or "
                "unreachable)",
                temporary=True,
                reason="unreachable",
            ) from None
        if proc.returncode != 0:
            raise _classify(_redact(err[:_OUTPUT_LIMIT].decode(errors="replace"), auth), what, auth)
        if len(out) > limit:
            raise GitError(
                f"{what}: git printed more than {limit} bytes", temporary=False, reason="too_large"
            )
        return out

    async def _with_ssh_agent(self, auth: GitAuth | None) -> tuple[dict[str, str], int | None]:
        """An ssh-agent holding the key (fed on stdin), so the key is never written to disk."""
        if auth is None or auth.kind != "ssh_key":
            return {}, None
        sock_dir = Path(tempfile.mkdtemp(prefix="moorage-ssh-"))
        sock = sock_dir / "agent.sock"
        agent = await asyncio.create_subprocess_exec(
            "ssh-agent", "-D", "-a", str(sock),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            if sock.exists():
                break
            await asyncio.sleep(0.02)
        add = await asyncio.create_subprocess_exec(
            "ssh-add", "-q", "-",
            env={"SSH_AUTH_SOCK": str(sock), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        key = auth.secret.reveal()
        _, err = await add.communicate((key if key.endswith("\n") else key + "\n").encode())
        if add.returncode != 0:
            agent.kill()
            await agent.wait()
            with contextlib.suppress(OSError):
                sock.unlink(missing_ok=True)
                sock_dir.rmdir()
            raise GitError(
                f"the SSH key of credential {auth.name!r} was refused by ssh-add: "
                f"{_redact(err.decode(errors='replace'), auth).strip()}",
                temporary=False,
                reason="auth",
            )
        return {"SSH_AUTH_SOCK": str(sock)}, agent.pid

    async def _egress(self, url: str) -> tuple[list[str], str, dict[str, str]]:
        try:
            return await self._pinned(url)
        except egress.EgressRefused as e:
            raise GitError(
                e.message, temporary=e.temporary, reason="unreachable" if e.temporary else "refused"
            ) from None

    async def _pinned(self, url: str) -> tuple[list[str], str, dict[str, str]]:
        """git options, the URL to give git and extra environment that make it connect only to
        addresses of the URL's host that the egress policy allows (EgressRefused otherwise)."""
        found = repourl.endpoint(url)
        if self.egress_policy is None or found is None:
            return [], url, {}
        scheme, host, port = found
        addresses = await egress.vet(host, port, self.egress_policy)
        bracketed = [f"[{a}]" if ":" in a else a for a in addresses]
        if scheme in ("http", "https"):
            # curl resolves the host to these addresses only; a redirect could lead anywhere, so none
            pin = f"{host}:{port}:{','.join(bracketed)}"
            return ["-c", f"http.curloptResolve={pin}", "-c", "http.followRedirects=false"], url, {}
        if scheme == "ssh":
            ssh = f"{self._ssh_command} -o HostName={addresses[0]} -o HostKeyAlias={host} -o CheckHostIP=no"
            return [], url, {"GIT_SSH_COMMAND": ssh}
        # git://: the daemon protocol has no name check to keep, so git is given the address itself
        hostport = f"{bracketed[0]}:{port}"
        rest = url.strip().split("://", 1)[1].split("/", 1)[1]
        return [], f"git://{hostport}/{rest}", {}

    @property
    def _ssh_command(self) -> str:
        return (
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new "
            f"-o UserKnownHostsFile={self._home / 'known_hosts'}"
        )

    @contextlib.asynccontextmanager
    async def _session(self, auth: GitAuth | None) -> AsyncIterator[dict[str, str]]:
        env, pid = await self._with_ssh_agent(auth)
        try:
            yield env
        finally:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                sock = Path(env["SSH_AUTH_SOCK"])
                with contextlib.suppress(OSError):
                    sock.unlink(missing_ok=True)  # ssh-agent may have removed it on SIGTERM
                    sock.parent.rmdir()

    # ------------------------------------------------------------------ remote operations

    def cache_of(self, url: str) -> Path:
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".git")

    async def ls_remote(self, url: str, branch: str, auth: GitAuth | None) -> str:
        """The commit at the tip of `branch` on the server (one ref advertisement, no objects)."""
        options, target, pinned = await self._egress(url)
        async with self._session(auth) as env:
            out = await self._run(
                [*options, "ls-remote", "--heads", "--", target, f"refs/heads/{branch}"],
                f"reading branch {branch!r}",
                auth=auth,
                env={**env, **pinned},
            )
        for line in out.decode(errors="replace").splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}" and _SHA.match(sha):
                return sha
        raise GitError(
            f"branch {branch!r} does not exist in the repository; check the branch name",
            temporary=False,
            reason="not_found",
        )

    async def fetch(self, url: str, branch: str, auth: GitAuth | None) -> str:
        """Fetch `branch` into the URL's bare cache; returns its tip."""
        cache = self.cache_of(url)
        lock = self._locks.setdefault(str(cache), asyncio.Lock())
        async with lock, self._session(auth) as env:
            if not (cache / "HEAD").exists():
                cache.mkdir(parents=True, exist_ok=True, mode=0o700)
                await self._run(["init", "--bare", "--quiet", str(cache)], "creating the Git cache")
            ref = _cache_ref(branch)
            options, target, pinned = await self._egress(url)
            await self._run(
                [
                    *options,
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--force",
                    "--",
                    target,
                    f"+refs/heads/{branch}:{ref}",
                ],
                f"fetching branch {branch!r}",
                auth=auth,
                cwd=cache,
                env={**env, **pinned},
            )
            out = await self._run(
                ["rev-parse", "--verify", "--end-of-options", ref], "reading the fetched tip", cwd=cache
            )
        return out.decode().strip()

    async def resolve(self, url: str, revision: str, branch: str) -> str:
        """The full SHA of `revision` (full or abbreviated), which must be on `branch` (already
        fetched): syncing commits from other branches would bypass review."""
        cache = self.cache_of(url)
        try:
            out = await self._run(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
                f"looking up commit {revision}",
                cwd=cache,
            )
        except GitError:
            raise GitError(
                f"commit {revision} is not in the repository (fetched branch {branch!r}); give a commit "
                f"of branch {branch!r}",
                temporary=False,
                reason="not_found",
            ) from None
        sha = out.decode().strip()
        try:
            await self._run(
                ["merge-base", "--is-ancestor", "--end-of-options", sha, _cache_ref(branch)],
                "checking the commit's branch",
                cwd=cache,
            )
        except GitError:
            raise GitError(
                f"commit {sha[:12]} is not on branch {branch!r}; only commits of the tracked branch can be "
                "synced",
                temporary=False,
                reason="invalid",
            ) from None
        return sha

    async def commit_time(self, url: str, sha: str) -> datetime:
        out = await self._run(
            ["show", "-s", "--format=%ct", "--end-of-options", sha],
            "reading the commit",
            cwd=self.cache_of(url),
        )
        return datetime.fromtimestamp(int(out.decode().strip()), UTC)

    async def tree(self, url: str, sha: str, dest: Path) -> Tree:
        """Copy the regular files of commit `sha` under `dest` (which must exist and be private).
        Hidden folders, symlinks and submodules are skipped; limits are checked before reading."""
        cache = self.cache_of(url)
        listing = await self._run(
            ["ls-tree", "-r", "-l", "-z", "--end-of-options", sha],
            "listing the commit's files",
            cwd=cache,
            limit=32 * 1024 * 1024,
        )
        tree = Tree(dest)
        wanted: list[tuple[str, str]] = []
        total = 0
        for record in listing.decode(errors="surrogateescape").split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            parts = meta.split()
            if len(parts) != 4:
                continue
            mode, kind, blob, size = parts
            if any(p.startswith(".") for p in PurePosixPath(path).parts[:-1]):
                continue  # .git-like and other hidden folders (G10)
            if not _safe_path(path):
                tree.skipped.append(f"{path!r} (unsafe path)")
                continue
            if kind != "blob" or mode not in ("100644", "100755"):
                tree.skipped.append(f"{path} ({'symlink' if mode == '120000' else 'not a regular file'})")
                continue
            if int(size) > MAX_FILE_BYTES:
                tree.skipped.append(f"{path} (larger than {MAX_FILE_BYTES} bytes)")
                continue
            total += int(size)
            wanted.append((blob, path))
        if len(wanted) > MAX_TREE_FILES or total > MAX_TREE_BYTES:
            raise GitError(
                f"commit {sha[:12]} holds {len(wanted)} files ({total} bytes); "
                f"at most {MAX_TREE_FILES} files "
                f"and {MAX_TREE_BYTES} bytes are read. Move the cluster definitions to a smaller repository",
                temporary=False,
                reason="too_large",
            )
        if wanted:
            blobs = await self._run(
                ["cat-file", "--batch"],
                "reading the commit's files",
                cwd=cache,
                stdin="".join(f"{blob}\n" for blob, _ in wanted).encode(),
                limit=total + 128 * len(wanted) + 1024,
            )
            _write_blobs(blobs, wanted, dest, tree)
        return tree


def _cache_ref(branch: str) -> str:
    """The cache's ref for a branch: hashed, so branches `a` and `a/b` (both may have existed on the
    server over time) never collide as a file and a folder in the cache."""
    return f"refs/moorage/{hashlib.sha256(branch.encode()).hexdigest()[:32]}"


def _safe_path(path: str) -> bool:
    pure = PurePosixPath(path)
    return (
        bool(path)
        and not pure.is_absolute()
        and "\\" not in path
        and not any(p in ("", ".", "..") for p in path.split("/"))
    )


def _write_blobs(data: bytes, wanted: Sequence[tuple[str, str]], dest: Path, tree: Tree) -> None:
    """Parse `git cat-file --batch` output (`<sha> blob <size>\\n<bytes>\\n` per object)."""
    offset = 0
    for blob, path in wanted:
        end = data.index(b"\n", offset)
        header = data[offset:end].split()
        if len(header) != 3 or header[0].decode() != blob:
            raise GitError(f"unexpected output from git cat-file for {path}", temporary=True, reason="git")
        size = int(header[2])
        content = data[end + 1 : end + 1 + size]
        offset = end + 1 + size + 1
        target = dest.joinpath(*PurePosixPath(path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        tree.files.append(path)
