"""moorage.server.gitops.git against the real `git` binary: local repositories over file:// and the
devcluster's smart-HTTP GitServer (auth, stopped server), plus a TCP listener that never answers."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from moorage.devcluster.gitserver import GitServer, WorkTree, run_git
from moorage.server.gitops import git as git_module
from moorage.server.gitops.git import MAX_FILE_BYTES, Git, GitAuth, GitError, _classify, _redact
from moorage.server.secretbox import Secret

USER = "robot"
TOKEN = "right-token-5f1c9a7e2b"
WRONG = "wrong-token-0d3e8b6a41"


@dataclass
class Repo:
    url: str
    tree: WorkTree


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path / "cache", allow_file=True)


@pytest.fixture
def local(tmp_path: Path) -> Repo:
    """A bare repository on disk (file://) with a clone to commit from."""
    bare = tmp_path / "origin.git"
    run_git(["init", "--quiet", "--bare", "--initial-branch=main", str(bare)])
    return Repo(bare.as_uri(), WorkTree(tmp_path / "work", str(bare)))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "repos") as srv:
        yield srv


@pytest.fixture
def remote(server: GitServer, tmp_path: Path) -> Repo:
    url = server.create_repo("org/platform.git")
    tree = WorkTree(tmp_path / "remote-work", url)
    tree.commit_and_push({"clusters/dev/import-cluster.yaml": "name: dev\n"}, "first")
    return Repo(url, tree)


@pytest.fixture
def private(tmp_path: Path) -> Iterator[tuple[GitServer, Repo]]:
    """A GitServer that wants HTTP Basic auth (USER/TOKEN), with one commit on main."""
    with GitServer(tmp_path / "private", username=USER, password=TOKEN) as srv:
        url = srv.create_repo("org/secret.git")
        tree = WorkTree(tmp_path / "private-work", url, username=USER, password=TOKEN)
        tree.commit_and_push({"a.yaml": "a: 1\n"}, "first")
        yield srv, Repo(url, tree)


def token(secret: str, name: str = "bot") -> GitAuth:
    return GitAuth(kind="token", secret=Secret(secret), username=USER, name=name)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------ fetch, resolve, commit_time


async def test_fetch_returns_the_tip_and_follows_new_commits(git: Git, remote: Repo) -> None:
    first = remote.tree.head()
    assert await git.fetch(remote.url, "main", None) == first
    second = remote.tree.commit_and_push({"clusters/dev/import-cluster.yaml": "name: dev2\n"}, "second")
    assert await git.fetch(remote.url, "main", None) == second
    # an older commit of the branch, full or abbreviated, resolves to its full SHA
    assert await git.resolve(remote.url, first[:10], "main") == first
    assert await git.resolve(remote.url, second, "main") == second


async def test_fetch_of_a_local_repository(git: Git, local: Repo) -> None:
    sha = local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    assert await git.fetch(local.url, "main", None) == sha
    assert (git.cache_of(local.url) / "HEAD").exists()


async def test_branches_named_like_a_file_and_its_folder_both_fetch(git: Git, local: Repo) -> None:
    local.tree.commit_and_push({"x.yaml": "main\n"}, "main")
    local.tree.git("push", "--quiet", "origin", "main:feature")
    assert await git.fetch(local.url, "feature", None)
    local.tree.git("push", "--quiet", "origin", ":feature")  # the server deletes it …
    local.tree.git("push", "--quiet", "origin", "main:feature/x")  # … and gets feature/x
    assert await git.fetch(local.url, "feature/x", None)


async def test_a_transport_the_server_does_not_allow_is_not_retried(tmp_path: Path, local: Repo) -> None:
    strict = Git(tmp_path / "strict-cache", allow_file=False)
    with pytest.raises(GitError) as e:
        await strict.fetch(local.url, "main", None)
    assert (e.value.reason, e.value.temporary) == ("invalid", False)
    assert "not allowed" in e.value.message


async def test_concurrent_fetches_of_one_url_share_the_cache(git: Git, local: Repo) -> None:
    sha = local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    results = await asyncio.gather(*(git.fetch(local.url, "main", None) for _ in range(3)))
    assert results == [sha, sha, sha]


async def test_resolve_refuses_commits_of_other_branches(git: Git, local: Repo) -> None:
    main = local.tree.commit_and_push({"x.yaml": "main\n"}, "main")
    local.tree.git("checkout", "--quiet", "-b", "other")
    local.tree.branch = "other"
    other = local.tree.commit_and_push({"x.yaml": "other\n"}, "other")
    # both branches are in the cache: the commit exists, it just is not on main
    assert await git.fetch(local.url, "other", None) == other
    assert await git.fetch(local.url, "main", None) == main
    with pytest.raises(GitError) as e:
        await git.resolve(local.url, other[:12], "main")
    assert e.value.reason == "invalid"
    assert not e.value.temporary
    assert "not on branch 'main'" in e.value.message
    # main's commit is an ancestor of other: fine there
    assert await git.resolve(local.url, main, "other") == main


@pytest.mark.parametrize("revision", ["0123456789abcdef0123456789abcdef01234567", "deadbee", "--all"])
async def test_resolve_of_an_unknown_commit(git: Git, local: Repo, revision: str) -> None:
    local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    await git.fetch(local.url, "main", None)
    with pytest.raises(GitError) as e:
        await git.resolve(local.url, revision, "main")
    assert e.value.reason == "not_found"
    assert not e.value.temporary


async def test_commit_time(git: Git, local: Repo) -> None:
    sha = local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    await git.fetch(local.url, "main", None)
    expected = int(local.tree.git("show", "-s", "--format=%ct", sha))
    when = await git.commit_time(local.url, sha)
    assert when.tzinfo is not None
    assert int(when.timestamp()) == expected


async def test_fetch_of_a_missing_branch(git: Git, remote: Repo) -> None:
    with pytest.raises(GitError) as e:
        await git.fetch(remote.url, "nope", None)
    assert e.value.reason == "not_found"
    assert not e.value.temporary


# ------------------------------------------------------------------ ls_remote


async def test_ls_remote(git: Git, remote: Repo) -> None:
    assert await git.ls_remote(remote.url, "main", None) == remote.tree.head()
    with pytest.raises(GitError) as e:
        await git.ls_remote(remote.url, "missing", None)
    assert e.value.reason == "not_found"
    assert e.value.temporary is False
    assert "'missing'" in e.value.message


async def test_ls_remote_matches_the_branch_exactly(git: Git, remote: Repo) -> None:
    """`git ls-remote` patterns match the tail of a ref: refs/heads/team/refs/heads/feature matches the
    pattern refs/heads/feature, so the answer must be filtered to the exact ref."""
    remote.tree.git("checkout", "--quiet", "-b", "team/refs/heads/feature")
    remote.tree.branch = "team/refs/heads/feature"
    remote.tree.commit_and_push({"y.yaml": "y\n"}, "on the look-alike branch")
    assert "refs/heads/team/refs/heads/feature" in run_git(["ls-remote", remote.url, "refs/heads/feature"])
    with pytest.raises(GitError) as e:
        await git.ls_remote(remote.url, "feature", None)
    assert e.value.reason == "not_found"
    main = run_git(["ls-remote", remote.url, "refs/heads/main"]).split("\t")[0]
    assert await git.ls_remote(remote.url, "main", None) == main


async def test_ls_remote_of_a_missing_repository(git: Git, server: GitServer) -> None:
    with pytest.raises(GitError) as e:
        await git.ls_remote(server.repo_url("org/none.git"), "main", None)
    assert e.value.reason == "not_found"


# ------------------------------------------------------------------ tree


async def test_tree_copies_regular_files_with_exact_bytes(git: Git, local: Repo, tmp_path: Path) -> None:
    work = local.tree.path
    contents = {
        "clusters/dev/import-cluster.yaml": b"name: dev\r\n",
        "binary.bin": bytes(range(256)) + b"\x00\xff\xfe",
        "empty.yaml": b"",
        "with space/ünïcode.yaml": "ü: 1\n".encode(),
        ".sops.yaml": b"creation_rules: []\n",  # a hidden file (not folder) is a regular file
        "exact-limit.bin": b"x" * MAX_FILE_BYTES,
    }
    for name, data in contents.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    script = work / "scripts/run.sh"
    script.parent.mkdir()
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    contents["scripts/run.sh"] = b"#!/bin/sh\necho hi\n"
    sha = local.tree.commit("files")
    local.tree.push()
    assert "100755 blob" in local.tree.git("ls-tree", sha, "scripts/run.sh")
    await git.fetch(local.url, "main", None)

    dest = tmp_path / "out"
    dest.mkdir(mode=0o700)
    tree = await git.tree(local.url, sha, dest)
    assert tree.root == dest
    assert sorted(tree.files) == sorted(contents)
    assert tree.skipped == []
    for name, data in contents.items():
        assert (dest / name).read_bytes() == data, name
    on_disk = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert on_disk == sorted(contents)


async def test_tree_leaves_out_hidden_folders_symlinks_and_big_files(
    git: Git, local: Repo, tmp_path: Path
) -> None:
    work = local.tree.path
    local.tree.write(
        {
            "keep.yaml": "keep\n",
            ".github/x.yaml": "hidden\n",
            ".git-like/config": "hidden\n",
            "clusters/.hidden/y.yaml": "hidden\n",
            "back\\slash.yaml": "odd\n",
        }
    )
    (work / "clusters").mkdir(exist_ok=True)
    os.symlink("/etc/passwd", work / "clusters/passwd.yaml")
    os.symlink("../../outside", work / "clusters/escape.yaml")
    os.symlink("/etc", work / "etc-dir")
    (work / "big.bin").write_bytes(b"b" * (MAX_FILE_BYTES + 1))
    sha = local.tree.commit("tricky")
    local.tree.push()
    await git.fetch(local.url, "main", None)

    dest = tmp_path / "out"
    dest.mkdir(mode=0o700)
    tree = await git.tree(local.url, sha, dest)
    assert tree.files == ["keep.yaml"]
    assert sorted(tree.skipped) == sorted(
        [
            "'back\\\\slash.yaml' (unsafe path)",
            f"big.bin (larger than {MAX_FILE_BYTES} bytes)",
            "clusters/escape.yaml (symlink)",
            "clusters/passwd.yaml (symlink)",
            "etc-dir (symlink)",
        ]
    )
    everything = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert everything == ["keep.yaml"]
    for name in ("clusters/passwd.yaml", "clusters/escape.yaml", "etc-dir", ".github", "big.bin"):
        assert not os.path.lexists(dest / name)
    assert not os.path.lexists(tmp_path / "outside")


async def test_tree_skips_submodules(git: Git, local: Repo, tmp_path: Path) -> None:
    first = local.tree.commit_and_push({"a.yaml": "a\n"}, "a")
    local.tree.git("update-index", "--add", "--cacheinfo", f"160000,{first},vendor/sub")
    local.tree.git("commit", "--quiet", "-m", "submodule")
    local.tree.push()
    sha = local.tree.head()
    await git.fetch(local.url, "main", None)
    dest = tmp_path / "out"
    dest.mkdir()
    tree = await git.tree(local.url, sha, dest)
    assert tree.files == ["a.yaml"]
    assert tree.skipped == ["vendor/sub (not a regular file)"]
    assert not (dest / "vendor").exists()


async def test_tree_file_count_limit(
    git: Git, local: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_module, "MAX_TREE_FILES", 3)
    at_limit = local.tree.commit_and_push(
        {"a.yaml": "a\n", "b.yaml": "b\n", "c.yaml": "c\n", ".hidden/d.yaml": "not counted\n"}, "3 files"
    )
    over = local.tree.commit_and_push({"e.yaml": "e\n"}, "4 files")
    await git.fetch(local.url, "main", None)
    dest = tmp_path / "ok"
    dest.mkdir()
    assert len((await git.tree(local.url, at_limit, dest)).files) == 3
    dest = tmp_path / "too-many"
    dest.mkdir()
    with pytest.raises(GitError) as e:
        await git.tree(local.url, over, dest)
    assert e.value.reason == "too_large"
    assert not e.value.temporary
    assert "at most 3 files" in e.value.message
    assert list(dest.iterdir()) == []  # refused before anything is written


async def test_tree_byte_limit(
    git: Git, local: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_module, "MAX_TREE_BYTES", 10)
    sha = local.tree.commit_and_push({"a.yaml": "123456\n", "b.yaml": "123456\n"}, "14 bytes")
    await git.fetch(local.url, "main", None)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(GitError) as e:
        await git.tree(local.url, sha, dest)
    assert e.value.reason == "too_large"
    assert "14 bytes" in e.value.message


# ------------------------------------------------------------------ credentials


async def test_token_auth_through_askpass(git: Git, private: tuple[GitServer, Repo]) -> None:
    _, repo = private
    sha = repo.tree.head()
    assert await git.ls_remote(repo.url, "main", token(TOKEN)) == sha
    assert await git.fetch(repo.url, "main", token(TOKEN)) == sha
    # the token reaches git through its environment only: never in a file of the cache
    for path in git.cache_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("operation", ["ls_remote", "fetch"])
async def test_a_wrong_token_is_refused_without_showing_tokens(
    git: Git, private: tuple[GitServer, Repo], operation: str
) -> None:
    _, repo = private
    with pytest.raises(GitError) as e:
        await getattr(git, operation)(repo.url, "main", token(WRONG))
    assert e.value.reason == "auth"
    assert e.value.temporary is True
    assert "credential 'bot'" in e.value.message
    for text in (e.value.message, str(e.value), repr(e.value)):
        assert WRONG not in text
        assert TOKEN not in text


async def test_no_credential_for_a_private_repository(git: Git, private: tuple[GitServer, Repo]) -> None:
    _, repo = private
    with pytest.raises(GitError) as e:
        await git.ls_remote(repo.url, "main", None)
    assert e.value.reason == "auth"
    assert e.value.temporary is True
    assert "no credential is set" in e.value.message


async def test_a_rotated_server_password_is_an_auth_failure(
    git: Git, private: tuple[GitServer, Repo]
) -> None:
    srv, repo = private
    assert await git.ls_remote(repo.url, "main", token(TOKEN)) == repo.tree.head()
    srv.set_credentials(USER, "new-password-value")
    with pytest.raises(GitError) as e:
        await git.fetch(repo.url, "main", token(TOKEN))
    assert e.value.reason == "auth"
    assert TOKEN not in e.value.message


def test_git_auth_and_secret_never_show_the_token() -> None:
    auth = token(TOKEN)
    for text in (repr(auth), str(auth), f"{auth}", repr([auth])):
        assert TOKEN not in text
    assert "bot" in repr(auth)


@pytest.mark.parametrize(
    ("stderr", "reason", "temporary"),
    [
        ("fatal: could not read Username for 'https://github.com': terminal prompts disabled", "auth", True),
        ("remote: Invalid username or password.\nfatal: Authentication failed for 'x'", "auth", True),
        ("fatal: unable to access 'https://h/x.git/': The requested URL returned error: 403", "auth", True),
        ("fatal: couldn't find remote ref refs/heads/nope", "not_found", False),
        ("fatal: repository 'https://h/x.git/' not found", "not_found", True),
        ("fatal: unable to access 'https://nohost/': Could not resolve host: nohost", "unreachable", True),
        ("fatal: the remote end hung up unexpectedly", "unreachable", True),
        ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502", "unreachable", True),
        ("fatal: something else entirely", "git", True),
        ("", "git", True),
    ],
)
def test_classify(stderr: str, reason: str, temporary: bool) -> None:
    error = _classify(stderr, "reading branch 'main'", None)
    assert (error.reason, error.temporary) == (reason, temporary)
    assert error.message.startswith("reading branch 'main': ")
    if reason == "auth":
        assert "no credential is set" in error.message
        named = _classify(stderr, "reading", token(TOKEN, name="deploy-key"))
        assert "credential 'deploy-key'" in named.message
    if not stderr:
        assert "no message from git" in error.message


def test_redact_masks_tokens_and_every_line_of_an_ssh_key() -> None:
    assert _redact(f"fatal: bad {TOKEN} here", token(TOKEN)) == "fatal: bad ******** here"
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAA\nAAAAC1lZDI1NTE5\n"
        "-----END OPENSSH PRIVATE KEY-----\n"
    )
    auth = GitAuth(kind="ssh_key", secret=Secret(key), name="deploy")
    out = _redact(f"ssh-add: b3BlbnNzaC1rZXktdjEAAAAA and AAAAC1lZDI1NTE5 leaked\n{key}", auth)
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in out
    assert "AAAAC1lZDI1NTE5" not in out
    assert _redact("unchanged", None) == "unchanged"


# ------------------------------------------------------------------ SSH keys (an ssh-agent, no key on disk)


@pytest.fixture
def short_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short temporary directory for the agent's socket (unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="mssh-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ssh") / "id"
    run = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "moorage-test", "-f", str(path)]
    subprocess.run(run, check=True, capture_output=True)
    return path.read_text()


async def test_an_ssh_key_is_held_by_an_agent_for_the_session(
    tmp_path: Path, short_tmp: Path, ssh_key: str
) -> None:
    git = Git(tmp_path / "cache")
    auth = GitAuth(kind="ssh_key", secret=Secret(ssh_key), name="deploy")
    async with git._session(auth) as env:
        sock = Path(env["SSH_AUTH_SOCK"])
        assert sock.is_socket()
        assert short_tmp in sock.parents
        listed = subprocess.run(["ssh-add", "-l"], env={"SSH_AUTH_SOCK": str(sock)}, capture_output=True)
        assert b"moorage-test" in listed.stdout
        for path in short_tmp.rglob("*"):  # the key never touches the disk
            assert not path.is_file() or b"PRIVATE KEY" not in path.read_bytes()
    for _ in range(50):  # the agent is gone and its socket directory removed
        if not list(short_tmp.iterdir()):
            break
        await asyncio.sleep(0.02)
    assert list(short_tmp.iterdir()) == []
    async with git._session(None) as env:
        assert env == {}
    async with git._session(token(TOKEN)) as env:
        assert env == {}


async def test_a_bad_ssh_key_is_refused_without_showing_it(tmp_path: Path, short_tmp: Path) -> None:
    git = Git(tmp_path / "cache")
    key = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "c2VjcmV0LWtleS1tYXRlcmlhbA==",
            "-----END OPENSSH PRIVATE KEY-----",
        ]
    )
    with pytest.raises(GitError) as e:
        async with git._session(GitAuth(kind="ssh_key", secret=Secret(key), name="deploy")):
            pass
    assert e.value.reason == "auth"
    assert e.value.temporary is False
    assert "credential 'deploy'" in e.value.message
    assert "c2VjcmV0LWtleS1tYXRlcmlhbA" not in e.value.message


async def test_a_refused_ssh_key_leaves_no_socket_directory(tmp_path: Path, short_tmp: Path) -> None:
    git = Git(tmp_path / "cache")
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key\n-----END OPENSSH PRIVATE KEY-----\n"
    with pytest.raises(GitError):
        async with git._session(GitAuth(kind="ssh_key", secret=Secret(key), name="deploy")):
            pass
    await asyncio.sleep(0.1)
    assert list(short_tmp.iterdir()) == []


# ------------------------------------------------------------------ unreachable and time limits


async def test_a_stopped_server_is_unreachable(git: Git, server: GitServer, remote: Repo) -> None:
    server.stop()
    for call in (git.ls_remote, git.fetch):
        with pytest.raises(GitError) as e:
            await call(remote.url, "main", None)
        assert e.value.reason == "unreachable"
        assert e.value.temporary is True


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP listener that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    for connection in held:
        connection.close()
    thread.join(5)


def processes_naming(tag: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds `tag`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if tag.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


async def wait_for_processes(tag: str, count: int) -> list[int]:
    for _ in range(250):
        pids = processes_naming(tag)
        if len(pids) >= count:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"no git process for {tag} appeared")


async def test_a_silent_server_times_out_and_git_is_killed(tmp_path: Path, silent_port: int) -> None:
    git = Git(tmp_path / "cache", timeout_seconds=0.5)
    tag = uuid.uuid4().hex
    url = f"http://127.0.0.1:{silent_port}/{tag}.git"
    task = asyncio.create_task(git.ls_remote(url, "main", None))
    pids = await wait_for_processes(tag, 2)  # git and its git-remote-http helper
    with pytest.raises(GitError) as e:
        # a helper left alive would hold git's pipes open, and this would hang
        await asyncio.wait_for(task, 10)
    assert e.value.reason == "unreachable"
    assert e.value.temporary is True
    assert "did not finish" in e.value.message
    for _ in range(100):
        if not processes_naming(tag):
            break
        await asyncio.sleep(0.02)
    assert processes_naming(tag) == []
    for pid in pids:
        stat_file = Path(f"/proc/{pid}/stat")
        assert not stat_file.exists() or stat_file.read_text().rpartition(")")[2].split()[0] == "Z"


async def test_a_cancelled_command_does_not_leave_git_running(tmp_path: Path, silent_port: int) -> None:
    git = Git(tmp_path / "cache", timeout_seconds=30)
    tag = uuid.uuid4().hex
    task = asyncio.create_task(git.ls_remote(f"http://127.0.0.1:{silent_port}/{tag}.git", "main", None))
    pids = await wait_for_processes(tag, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    try:
        for _ in range(25):
            if not processes_naming(tag):
                break
            await asyncio.sleep(0.02)
        assert processes_naming(tag) == []
    finally:
        for pid in pids:  # what the bug leaves behind: our own children, killed by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------ argument injection and protocols


@pytest.mark.parametrize("allow_file", [True, False])
async def test_options_in_urls_and_branches_never_run(tmp_path: Path, local: Repo, allow_file: bool) -> None:
    local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    git = Git(tmp_path / f"cache-{allow_file}", allow_file=allow_file)
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    attempts = [
        (f"--upload-pack=touch {marker}", "main"),
        (f"--upload-pack=touch {marker};", "main"),
        (f"-u touch {marker}", "main"),
        (f"ext::sh -c touch% {marker}", "main"),
        (local.url, f"--upload-pack=touch {marker}"),
        (local.url, f"-u touch {marker}"),
    ]
    try:
        for url, branch in attempts:
            for call in (git.ls_remote, git.fetch):
                with pytest.raises(GitError):
                    await call(url, branch, None)
                assert not marker.exists(), (call.__name__, url, branch)
        # options as revisions or commits are not options either
        for revision in (f"--output={marker}", "--all"):
            with pytest.raises(GitError):
                await git.resolve(local.url, revision, "main")
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("as_uri", [True, False])
async def test_local_repositories_need_allow_file(tmp_path: Path, local: Repo, as_uri: bool) -> None:
    local.tree.commit_and_push({"x.yaml": "x\n"}, "one")
    url = (tmp_path / "origin.git").as_uri() if as_uri else str(tmp_path / "origin.git")
    git = Git(tmp_path / "cache-strict", allow_file=False)
    for call in (git.ls_remote, git.fetch):
        with pytest.raises(GitError) as e:
            await call(url, "main", None)
        assert "not allowed" in e.value.message
    assert await Git(tmp_path / "cache-loose", allow_file=True).ls_remote(url, "main", None)


# ------------------------------------------------------------------ files on disk


async def test_cache_and_askpass_are_private(tmp_path: Path, remote: Repo) -> None:
    cache = tmp_path / "new" / "cache"
    git = Git(cache)
    assert mode_of(cache) == 0o700
    assert mode_of(cache / "home") == 0o700
    askpass = cache / "askpass.sh"
    assert mode_of(askpass) == 0o700
    assert "MOORAGE_GIT_PASSWORD" in askpass.read_text()
    await git.fetch(remote.url, "main", token(TOKEN))
    assert mode_of(git.cache_of(remote.url)) == 0o700
    for path in cache.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path


async def test_askpass_answers_from_the_environment(tmp_path: Path) -> None:
    git = Git(tmp_path / "cache")
    env = git._env(token(TOKEN))
    assert env["MOORAGE_GIT_USERNAME"] == USER
    assert env["MOORAGE_GIT_PASSWORD"] == TOKEN
    assert "file" not in env["GIT_ALLOW_PROTOCOL"].split(":")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    proc = await asyncio.create_subprocess_exec(
        str(git._askpass), "Password for 'http://robot@host': ", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert out.decode() == TOKEN + "\n"
    proc = await asyncio.create_subprocess_exec(
        str(git._askpass), "Username for 'http://host': ", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert out.decode() == USER + "\n"
    default = Git(tmp_path / "cache2")._env(GitAuth(kind="token", secret=Secret(TOKEN)))
    assert default["MOORAGE_GIT_USERNAME"] == "x-access-token"
    assert Git(tmp_path / "cache3")._env(None)["MOORAGE_GIT_PASSWORD"] == ""
