import base64
import hashlib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.devcluster.gitserver import GitServer, GitServerError, WorkTree, run_git

AUTH_FAILED = r"Authentication failed|could not read Username"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "repos") as git_server:
        yield git_server


@pytest.fixture
def repo(server: GitServer) -> str:
    return server.create_repo("org/cluster-config.git")


def ls_remote(
    url: str, *options: str, username: str | None = None, password: str | None = None
) -> dict[str, str]:
    out = run_git([*options, "ls-remote", url], username=username, password=password)
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def http_get(url: str, authorization: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_clone_push_fetch_round_trip(server: GitServer, repo: str, tmp_path: Path) -> None:
    assert repo == f"{server.url}/org/cluster-config.git"
    assert (tmp_path / "repos/org/cluster-config.git/HEAD").read_text() == "ref: refs/heads/main\n"
    assert ls_remote(repo) == {}

    author = WorkTree(tmp_path / "author", repo)  # empty remote: an unborn main
    first = author.commit_and_push({"clusters/a.yaml": "name: a\n", "README.md": "hi\n"}, "first")
    assert len(first) == 40
    assert ls_remote(repo) == {"HEAD": first, "refs/heads/main": first}
    assert author.git("log", "-1", "--format=%an <%ae>").strip() == "Moorage Tests <tests@moorage.invalid>"

    reader = WorkTree(tmp_path / "reader", repo)
    assert reader.head() == first
    assert (reader.path / "clusters/a.yaml").read_text() == "name: a\n"

    second = author.commit_and_push({"README.md": None, "clusters/b.yaml": "name: b\n"}, "second")
    reader.git("pull", "--quiet", "--ff-only")
    assert reader.head() == second
    assert not (reader.path / "README.md").exists()
    assert (reader.path / "clusters/b.yaml").exists()

    reverted = author.revert(second)
    assert ls_remote(repo)["refs/heads/main"] == second  # revert does not push
    author.push()
    assert ls_remote(repo)["refs/heads/main"] == reverted
    assert (author.path / "README.md").read_text() == "hi\n"

    with pytest.raises(GitServerError, match="nothing to commit"):
        author.commit("empty")


def test_copy_tree_skips_git_and_other_branches_work(server: GitServer, repo: str, tmp_path: Path) -> None:
    source = tmp_path / "example"
    (source / ".git").mkdir(parents=True)
    (source / ".git/config").write_text("not ours\n")
    (source / "clusters").mkdir()
    (source / "clusters/dev.yaml").write_text("kind: ImportCluster\n")
    tree = WorkTree(tmp_path / "tree", repo)
    tree.copy_tree(source)
    main = tree.commit("import example")
    tree.push()
    assert tree.git("ls-files").split() == ["clusters/dev.yaml"]

    feature = WorkTree(tmp_path / "feature", repo, branch="feature")  # branches off the remote default
    change = feature.commit_and_push({"clusters/dev.yaml": "kind: ImportCluster # v2\n"}, "v2")
    assert ls_remote(repo) == {"HEAD": main, "refs/heads/main": main, "refs/heads/feature": change}


def test_protocol_v2_and_v0_are_both_served(server: GitServer, repo: str, tmp_path: Path) -> None:
    sha = WorkTree(tmp_path / "w", repo).commit_and_push({"a": "1\n"}, "a")
    before = server.counts()
    assert ls_remote(repo, "-c", "protocol.version=2") == {"HEAD": sha, "refs/heads/main": sha}
    v2 = server.counts()
    assert v2["ref_adverts"] == before["ref_adverts"] + 1
    assert v2["ls_refs"] == before["ls_refs"] + 1  # only protocol v2 has an ls-refs command
    assert ls_remote(repo, "-c", "protocol.version=0") == {"HEAD": sha, "refs/heads/main": sha}
    v0 = server.counts()
    assert (v0["ref_adverts"], v0["ls_refs"]) == (v2["ref_adverts"] + 1, v2["ls_refs"])


def test_a_push_too_large_for_one_buffer_goes_chunked(server: GitServer, repo: str, tmp_path: Path) -> None:
    # ~4 MB of base64 over hash output (incompressible) packs to ~3 MB: above http.postBuffer (1 MiB),
    # so git streams the pack with Transfer-Encoding: chunked
    noise = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(3_000_000 // 32))
    blob = base64.b64encode(noise).decode()
    tree = WorkTree(tmp_path / "w", repo)
    sha = tree.commit_and_push({"big.txt": blob}, "big")
    assert server.counts()["chunked_bodies"] >= 1
    assert ls_remote(repo)["refs/heads/main"] == sha
    clone = WorkTree(tmp_path / "clone", repo)
    assert (clone.path / "big.txt").read_text() == blob


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_a_gzipped_request_body_is_inflated(
    server: GitServer, repo: str, tmp_path: Path, protocol: str
) -> None:
    tree = WorkTree(tmp_path / "w", repo)
    tree.commit_and_push({"a": "1\n"}, "one")
    branches = [f"HEAD:refs/heads/feature/a-rather-long-branch-name-{i:03d}" for i in range(60)]
    tree.git("push", "--quiet", "origin", *branches)
    # a mirror clone wants every ref: the upload-pack request outgrows 1 KiB and git gzips it
    run_git(["-c", f"protocol.version={protocol}", "clone", "--quiet", "--mirror", repo, str(tmp_path / "m")])
    assert server.counts()["gzipped_bodies"] >= 1
    assert len(run_git(["-C", str(tmp_path / "m"), "for-each-ref"]).splitlines()) == 61


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_an_older_commit_is_fetched_by_sha(
    server: GitServer, repo: str, tmp_path: Path, protocol: str
) -> None:
    tree = WorkTree(tmp_path / "w", repo)
    old = tree.commit_and_push({"a": "1\n"}, "one")
    tree.commit_and_push({"a": "2\n"}, "two")
    fresh = str(tmp_path / "fresh")
    run_git(["init", "--quiet", fresh])
    before = server.fetches
    run_git(["-C", fresh, "-c", f"protocol.version={protocol}", "fetch", "--quiet", repo, old])
    assert run_git(["-C", fresh, "rev-parse", "FETCH_HEAD"]).strip() == old
    assert server.fetches == before + 1


def test_basic_auth(tmp_path: Path) -> None:
    with GitServer(tmp_path / "repos", username="robot", password="s3cret-token") as server:
        repo = server.create_repo("private.git")
        status, headers, _ = http_get(f"{repo}/info/refs?service=git-upload-pack")
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="moorage-git"'

        with pytest.raises(GitServerError, match=AUTH_FAILED):
            ls_remote(repo)
        with pytest.raises(GitServerError, match=AUTH_FAILED) as wrong:
            ls_remote(repo, username="robot", password="not-it")
        assert "not-it" not in str(wrong.value)
        assert server.ref_adverts == 0

        tree = WorkTree(tmp_path / "w", repo, username="robot", password="s3cret-token")
        sha = tree.commit_and_push({"a": "1\n"}, "one")
        assert ls_remote(repo, username="robot", password="s3cret-token")["refs/heads/main"] == sha
        config = (tree.path / ".git/config").read_text()
        assert "s3cret-token" not in config
        assert base64.b64encode(b"robot:s3cret-token").decode() not in config
        assert "robot" not in tree.git("remote", "get-url", "origin")

        server.set_credentials("robot", "rotated")  # the old token is revoked at once
        with pytest.raises(GitServerError, match=AUTH_FAILED):
            tree.commit_and_push({"a": "2\n"}, "two")
        assert ls_remote(repo, username="robot", password="rotated")["refs/heads/main"] == sha
        server.set_credentials(None, None)
        assert ls_remote(repo)["refs/heads/main"] == sha
        with pytest.raises(ValueError, match="both"):
            server.set_credentials("robot", None)


def test_stop_refuses_connections_and_start_takes_the_same_port(server: GitServer, repo: str) -> None:
    port, url = server.port, server.url
    assert ls_remote(repo) == {}
    server.stop()
    with pytest.raises(GitServerError, match=r"(?i)connection refused|failed to connect"):
        ls_remote(repo)
    server.start(port)
    assert (server.port, server.url) == (port, url)
    assert ls_remote(repo) == {}
    with pytest.raises(GitServerError, match="already running"):
        server.start(port)


def test_failures_are_answered_in_one_line_and_the_server_lives_on(
    server: GitServer, repo: str, tmp_path: Path
) -> None:
    status, _, body = http_get(f"{server.url}/missing.git/info/refs?service=git-upload-pack")
    assert status == 404
    assert b"Not a git repository" in body
    (tmp_path / "repos/org/cluster-config.git/config").write_text("[[[ not a config\n")
    status, _, body = http_get(f"{repo}/info/refs?service=git-upload-pack")
    assert status == 500
    assert body.decode().count("\n") == 1
    assert "bad config" in body.decode()
    other = server.create_repo("other.git")
    assert ls_remote(other) == {}


def test_counters_move(server: GitServer, repo: str, tmp_path: Path) -> None:
    WorkTree(tmp_path / "w", repo).commit_and_push({"a": "1\n"}, "one")
    counts = server.counts()
    assert counts["pushes"] == server.pushes == 1
    assert counts["push_adverts"] == 1
    assert server.requests >= 4
    before = server.upload_packs
    WorkTree(tmp_path / "clone", repo)  # advert + ls-refs + fetch
    assert server.upload_packs == before + 3
    server.reset_counts()
    assert set(server.counts().values()) == {0}


@pytest.mark.parametrize("name", ["/abs.git", "../up.git", "a/../../b.git", ""])
def test_repository_names_stay_under_the_root(server: GitServer, name: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        server.create_repo(name)
