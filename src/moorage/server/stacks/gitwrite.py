"""Writing to a repository with the git CLI, in the server's bare cache (no work tree): the changed
files become blobs, a temporary index based on the parent commit gives the tree, `commit-tree` makes
the commit with the user as author, and `push` sends it to the tracked branch. A push is never
forced: when the branch moved meanwhile git refuses it and `PushRejected` is raised, so the caller
can apply its edit again on the new tip.

Credentials and hardening are those of `gitops.git.Git` (askpass from the environment, ssh-agent,
egress pinning, time limits); file contents go to git on stdin."""

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from moorage.server.gitops.git import Git, GitAuth, GitError

COMMITTER = ("Moorage", "moorage@localhost")
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "stale info", "failed to update ref")


class PushRejected(Exception):
    """The branch moved since the commit's parent was read: git refused the push (not forced)."""


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": COMMITTER[0],
            "GIT_COMMITTER_EMAIL": COMMITTER[1],
        }


def author_of(username: str) -> Author:
    """The commit author for a Moorage user or token name (no e-mail is known: a local address)."""
    clean = "".join(ch for ch in username if ch.isprintable() and ch not in "<>\n") or "moorage-user"
    return Author(clean, f"{clean.replace(' ', '.')}@users.moorage.invalid")


async def commit(
    git: Git,
    url: str,
    parent: str,
    changes: Mapping[str, str | None],
    *,
    author: Author,
    message: str,
) -> str:
    """A commit on top of `parent` (already fetched into the cache of `url`) holding `changes`
    (path → new text, None: deleted); returns its SHA. Nothing is pushed."""
    cache = git.cache_of(url)
    index = cache / f"moorage-index-{secrets.token_hex(8)}"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        await git._run(
            ["read-tree", "--end-of-options", parent], "reading the parent commit", cwd=cache, env=env
        )
        records: list[str] = []
        for path, text in sorted(changes.items()):
            if any(ord(ch) < 32 for ch in path) or path.startswith("/") or ".." in path.split("/"):
                raise GitError(f"refusing to commit the path {path!r}", temporary=False, reason="invalid")
            if text is None:
                records.append(f"0 {'0' * 40}\t{path}")  # mode 0: the entry is removed
                continue
            blob = await git._run(
                ["hash-object", "-w", "--stdin"], f"storing {path}", cwd=cache, stdin=text.encode("utf-8")
            )
            records.append(f"100644 {blob.decode().strip()}\t{path}")
        await git._run(
            ["update-index", "--index-info"],
            "staging the changes",
            cwd=cache,
            env=env,
            stdin="".join(f"{r}\n" for r in records).encode("utf-8"),
        )
        tree = (await git._run(["write-tree"], "writing the tree", cwd=cache, env=env)).decode().strip()
        out = await git._run(
            ["commit-tree", tree, "-p", parent, "-F", "-"],
            "making the commit",
            cwd=cache,
            stdin=message.encode("utf-8"),
            env={**env, **author.env()},
        )
        return out.decode().strip()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(index)


async def push(git: Git, url: str, branch: str, sha: str, auth: GitAuth | None) -> None:
    """Push commit `sha` to `branch` (a fast-forward only); PushRejected when the branch moved."""
    options, target, pinned = await git._egress(url)
    async with git._session(auth) as env:
        try:
            await git._run(
                [
                    *options,
                    "-c",
                    "advice.pushUpdateRejected=false",
                    "-c",
                    "advice.pushNonFFCurrent=false",
                    "-c",
                    "advice.pushFetchFirst=false",
                    "push",
                    "--quiet",
                    "--",
                    target,
                    f"{sha}:refs/heads/{branch}",
                ],
                f"pushing to branch {branch!r}",
                auth=auth,
                cwd=git.cache_of(url),
                env={**env, **pinned},
            )
        except GitError as e:
            if any(word in e.message for word in _REJECTED):
                raise PushRejected(f"branch {branch!r} moved while the change was being made") from None
            if e.reason == "auth":
                raise GitError(
                    e.message.replace("has read access", "may push to the branch"),
                    temporary=e.temporary,
                    reason=e.reason,
                ) from None
            raise


async def changed_paths(git: Git, url: str, parent: str, sha: str) -> list[str]:
    """The files commit `sha` changes relative to `parent` (both in the cache)."""
    out = await git._run(
        ["diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--end-of-options", parent, sha],
        "listing the commit's files",
        cwd=git.cache_of(url),
    )
    return [p for p in out.decode(errors="replace").split("\0") if p]


def pull_request_url(web: str | None, provider: str, base: str, head: str) -> str | None:
    """Where a person opens the pull request of branch `head` into `base` on the provider's site."""
    if web is None:
        return None
    if provider == "github":
        return f"{web}/compare/{quote(base, safe='/')}...{quote(head, safe='/')}?expand=1"
    if provider == "bitbucket_cloud":
        return f"{web}/pull-requests/new?source={quote(head, safe='')}&dest={quote(base, safe='')}"
    if provider == "bitbucket_data_center":
        return f"{web}/pull-requests?create&sourceBranch={quote('refs/heads/' + head, safe='')}"
    return None
