"""Commits made in the server's bare cache and pushed with the real git binary to the devcluster's
smart-HTTP Git server: the user is the author, only the changed files differ, a push that lost a
race is refused (never forced) and the other commit stays."""

import asyncio
from pathlib import Path

import pytest

from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server.gitops.git import Git
from moorage.server.stacks import gitwrite


@pytest.fixture
def server(tmp_path: Path) -> GitServer:
    srv = GitServer(tmp_path / "repos")
    srv.start()
    return srv


def test_a_commit_holds_only_the_changes_with_the_user_as_author(server: GitServer, tmp_path: Path) -> None:
    url = server.create_repo("org/defs.git")
    work = WorkTree(tmp_path / "work", url)
    work.commit_and_push({"a.yaml": "a: 1\n", "b/c.yaml": "c: 1\n", "gone.yaml": "x: 1\n"}, "first")
    git = Git(tmp_path / "cache")

    async def run() -> tuple[str, str, list[str]]:
        tip = await git.fetch(url, "main", None)
        sha = await gitwrite.commit(
            git,
            url,
            tip,
            {"b/c.yaml": "c: 2\n", "new/d.yaml": "d: 1\n", "gone.yaml": None},
            author=gitwrite.author_of("alice"),
            message="c1: change c\n",
        )
        await gitwrite.push(git, url, "main", sha, None)
        return tip, sha, await gitwrite.changed_paths(git, url, tip, sha)

    tip, sha, paths = asyncio.run(run())
    assert paths == ["b/c.yaml", "gone.yaml", "new/d.yaml"]
    work.git("pull", "--quiet")
    assert work.git("rev-parse", "HEAD").strip() == sha
    assert work.git("log", "-1", "--format=%an <%ae>|%cn|%P|%s").strip() == (
        f"alice <alice@users.moorage.invalid>|Moorage|{tip}|c1: change c"
    )
    assert (work.path / "a.yaml").read_text() == "a: 1\n"
    assert (work.path / "b" / "c.yaml").read_text() == "c: 2\n"
    assert not (work.path / "gone.yaml").exists()
    assert not list((tmp_path / "cache").rglob("moorage-index-*"))  # the temporary index is gone


def test_a_push_after_another_commit_is_rejected_and_the_other_commit_stays(
    server: GitServer, tmp_path: Path
) -> None:
    url = server.create_repo("org/race.git")
    work = WorkTree(tmp_path / "work", url)
    work.commit_and_push({"a.yaml": "a: 1\n"}, "first")
    git = Git(tmp_path / "cache")

    async def prepare() -> str:
        tip = await git.fetch(url, "main", None)
        return await gitwrite.commit(
            git, url, tip, {"a.yaml": "a: 2\n"}, author=gitwrite.author_of("bob"), message="mine\n"
        )

    mine = asyncio.run(prepare())
    work.commit_and_push({"other.yaml": "o: 1\n"}, "someone else's")
    theirs = work.git("rev-parse", "HEAD").strip()
    with pytest.raises(gitwrite.PushRejected, match="moved"):
        asyncio.run(gitwrite.push(git, url, "main", mine, None))
    assert asyncio.run(git.ls_remote(url, "main", None)) == theirs


def test_the_author_of_a_strange_name_is_made_safe() -> None:
    author = gitwrite.author_of("user:<eve>\nname")
    assert "<" not in author.name
    assert "\n" not in author.name
    assert author.email.endswith("@users.moorage.invalid")
