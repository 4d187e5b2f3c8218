"""Saving Stack Builder edits: fetch the tracked branch, apply the edits to a private copy of the
tip's files, validate the result as a GitOps sync would (the definition, then each add-on's values
against its chart's schema), and commit and push it with the user as author. A preview stops before
the commit and answers the diff and the entries that would change in the cluster.

A push that loses a race (the branch moved) is retried once on the new tip, with the edits applied
again and validated again; a second loss is refused with a message saying so. Nothing is forced, and
a refused edit commits nothing. Secret values live only in the request: sops gets them on stdin and
only its ciphertext is written to the copy, the commit and the answer."""

import asyncio
import difflib
import logging
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.server import registries, service
from moorage.server.bundle import BundleCheck, BundleError, validate_tree
from moorage.server.db.models import Cluster, GitRepository
from moorage.server.gitops import repourl, store
from moorage.server.gitops.git import Git, GitAuth, GitError
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings
from moorage.server.stacks import gitwrite, pullrequests, render
from moorage.server.stacks.edits import AddStack, Edit, EditError, Workspace, describe, export_stack
from moorage.server.stacks.impact import impact
from moorage.spec.content import ResolvedCluster
from moorage.spec.digest import compare
from moorage.spec.loader import LoadOptions, UsageError, load

log = logging.getLogger("moorage.server.stacks")

MAX_DIFF_CHARS = 256 * 1024
ATTEMPTS = 2  # the first push, and one more on the new tip when the branch moved


class Refused(Exception):
    """The edit was not committed: `message` says why; `errors` are validation items (file, line,
    field path, hint) when the edited definition does not validate."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 422,
        errors: Sequence[dict[str, Any]] = (),
        warnings: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = list(errors)
        self.warnings = list(warnings)


@dataclass(frozen=True)
class Source:
    cluster_id: str
    cluster_name: str
    url: str
    branch: str
    path: str
    auth: GitAuth | None
    applied_digests: dict[str, str]
    web_url: str | None = None
    provider: str = "github"
    edit_mode: str = "push"  # pull_request: every save goes to a new branch (GitRepository.edit_mode)
    # the provider API the connection's token may open pull requests through, or why there is none
    pull_requests: pullrequests.Plan | str = "the connection's provider API is not known"


@dataclass
class Outcome:
    parent: str  # the commit the edits were applied to
    files: list[str]  # the files the commit changes
    diff: str
    message: str
    changes: dict[str, list[str]]  # entries added / changed / removed against what the last sync applied
    warnings: list[dict[str, Any]] = field(default_factory=list)
    commit: str | None = None  # None for a preview
    attempts: int = 1
    # other clusters on the same repository and branch whose definitions read a changed file
    # (a shared stack template, a shared values file): the commit changes them too
    also_affects: list[str] = field(default_factory=list)
    branch: str = ""  # where the commit went: the tracked branch, or a new one for a pull request
    pull_request_url: str | None = None  # the opened pull request, else the provider's form for it
    tracked_branch: str = ""  # the branch that syncs: a commit elsewhere waits for its merge
    pull_request_opened: bool = False  # opened through the provider's API
    pull_request_reason: str | None = None  # why it was not opened (the commit is on `branch` anyway)
    # what the commit changes in the cluster: Helm releases and manifest objects (stacks/impact.py),
    # in a preview each release's chart objects and `render`, how that went (stacks/render.py)
    cluster_changes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Deps:
    db: Callable[[Callable[[Session], Any]], Awaitable[Any]]
    git: Git
    box: SecretBox
    settings: ServerSettings
    ask_agent: render.Ask | None = None  # read jobs through the cluster's agent (a preview's objects)


async def source_of(deps: Deps, name: str) -> Source:
    def work(session: Session) -> Source:
        cluster = service.get_cluster(session, name)
        repo = store.get_repository(session, cluster)
        if repo is None:
            raise service.NotFound(
                f"cluster {name!r} is not connected to a Git repository; connect it with "
                "`moorage cluster connect` before editing its stacks"
            )
        try:
            auth = store.auth_of(
                deps.box,
                repo.credential,
                repo.url,
                loopback_http=store.loopback_http(deps.settings.egress_policy()),
            )
        except store.CredentialRefused as e:
            raise Refused(e.message) from None
        return Source(
            cluster.id,
            cluster.name,
            repo.url,
            repo.branch,
            repo.path,
            auth,
            dict(repo.applied_digests or {}),
            repourl.web_url(repo.url, repo.provider, instance_url=repo.instance_url),  # type: ignore[arg-type]
            repo.provider,
            repo.edit_mode,
            pullrequests.plan_of(
                repo, auth, loopback_http=store.loopback_http(deps.settings.egress_policy())
            ),
        )

    result: Source = await deps.db(work)
    return result


def commit_message(edits: Sequence[Edit], cluster: str) -> str:
    parts = [describe(e) for e in edits]
    head = f"{cluster}: {parts[0]}" if len(parts) == 1 else f"{cluster}: {len(parts)} stack changes"
    body = "\n".join(f"- {p}" for p in parts) if len(parts) > 1 else ""
    return f"{head[:200]}\n\n{body}\n\nMade with the Moorage Stack Builder.\n".replace("\n\n\n", "\n\n")


def unified_diff(ws: Workspace, changes: dict[str, str | None]) -> str:
    out: list[str] = []
    for rel, text in changes.items():
        old = ws.original(rel)
        out.extend(
            difflib.unified_diff(
                (old or "").splitlines(keepends=True),
                (text or "").splitlines(keepends=True),
                "/dev/null" if old is None else f"a/{rel}",
                "/dev/null" if text is None else f"b/{rel}",
            )
        )
    diff = "".join(line if line.endswith("\n") else line + "\n" for line in out)
    return diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n… (diff cut)\n"


async def _fetch(deps: Deps, src: Source) -> str:
    try:
        return await deps.git.fetch(src.url, src.branch, src.auth)
    except GitError as e:
        raise Refused(f"cannot read the repository: {e.message}", status=502) from None


async def _tree(deps: Deps, src: Source, sha: str, dest: Path) -> None:
    try:
        tree = await deps.git.tree(src.url, sha, dest)
    except GitError as e:
        raise Refused(f"cannot read the repository: {e.message}", status=502) from None
    if src.path not in tree.files:
        raise Refused(
            f"the definition file {src.path} is not in commit {sha[:12]} of branch {src.branch}", status=409
        )


async def export(deps: Deps, name: str, stack: str, target_path: str) -> AddStack:
    """Stack `stack` of cluster `name` as an AddStack edit for a definition at `target_path`."""
    src = await source_of(deps, name)
    tip = await _fetch(deps, src)
    with tempfile.TemporaryDirectory(prefix="moorage-stack-") as tmp:
        await _tree(deps, src, tip, Path(tmp))
        ws = Workspace(Path(tmp), src.path)
        try:
            data = await asyncio.to_thread(export_stack, ws, stack, target_path)
        except EditError as e:
            raise Refused(e.message, status=404 if "is not in the definition" in e.message else 422) from None
    return AddStack(data)


async def _validate(deps: Deps, src: Source, base: Path) -> BundleCheck:
    """The same checks as a sync's Validating phase; Refused with the items when it fails."""
    try:
        check = await asyncio.to_thread(validate_tree, base, src.path)
    except BundleError as e:
        raise Refused(e.message) from None
    if check.ok and check.registries:

        def cluster_of(session: Session) -> Cluster:
            cluster = service.get_cluster_by_id(session, src.cluster_id)
            if cluster is None:
                raise service.NotFound("the cluster was deleted")
            return cluster

        check.sealed, errors, warnings = await registries.prepare_job(
            deps.db,
            deps.box,
            cluster_of,
            check.registries,
            check.resolved,
            policy=deps.settings.egress_policy(),
            ghcr_fallback=deps.settings.ghcr_git_token,
        )
        check.errors += errors
        check.warnings += warnings
    if not check.ok:
        first = check.errors[0]
        where = ":".join(str(p) for p in (first.get("file"), first.get("line")) if p)
        path = f" ({first['path']})" if first.get("path") else ""
        raise Refused(
            "the edited definition does not validate, nothing was committed: "
            f"{where}{path}: {first['message']}",
            errors=check.errors,
            warnings=check.warnings,
        )
    return check


async def save(
    deps: Deps,
    name: str,
    edits: Sequence[Edit],
    *,
    who: str,
    preview: bool = False,
    on_pushed: Callable[[str], Awaitable[None]] | None = None,
    to_branch: str | None = None,
    render_objects: bool = True,
) -> Outcome:
    """Apply `edits` to cluster `name`'s definition at the branch tip; commit and push unless
    `preview`. Refused (nothing committed) when the edits fail, do not validate, or lose two races.
    With `to_branch` (or a generated one when the connection's edit mode is pull_request), the commit
    goes to that new branch, its pull request is opened where the provider allows, and nothing syncs.
    A preview with `render_objects` also lists the objects each changed release's chart renders."""
    if not edits:
        raise Refused("no edit was given")
    src = await source_of(deps, name)
    message = commit_message(edits, src.cluster_name)
    author = gitwrite.author_of(who.removeprefix("user:"))
    if to_branch is None and src.edit_mode == "pull_request":  # a new branch of its own per save
        to_branch = pullrequests.branch_name(author.name, message.partition("\n")[0])
    if to_branch is not None:
        await _check_new_branch(deps, src, to_branch)
    for attempt in range(1, ATTEMPTS + 1):
        tip = await _fetch(deps, src)
        with tempfile.TemporaryDirectory(prefix="moorage-stack-") as tmp:
            base = Path(tmp)
            await _tree(deps, src, tip, base)
            before = await asyncio.to_thread(_resolved, base, src.path)
            ws = Workspace(base, src.path)
            try:
                await asyncio.to_thread(_apply_all, ws, edits)
            except EditError as e:
                raise Refused(e.message) from None
            changes = ws.changes()
            if not changes:
                raise Refused("the edit changes nothing: the definition already says this", status=409)
            diff = unified_diff(ws, changes)
            check = await _validate(deps, src, base)
            digests, warnings = check.digests, check.warnings
            after = check.resolved or await asyncio.to_thread(_resolved, base, src.path)  # no add-ons
            in_cluster = impact(before, after)
            bundle = {rel: (base / rel).read_text(encoding="utf-8") for rel in check.files} if preview else {}
            affected = await _readers(deps, src, base, set(changes))
        outcome = Outcome(
            parent=tip,
            files=list(changes),
            diff=diff,
            message=message,
            changes=compare(src.applied_digests, digests).to_dict(),
            warnings=warnings,
            attempts=attempt,
            also_affects=affected,
            branch=to_branch or src.branch,
            cluster_changes=in_cluster,
            tracked_branch=src.branch,
        )
        if preview:
            if render_objects:
                await render.add_objects(
                    deps.ask_agent, src.cluster_name, who, in_cluster, bundle, src.path, check.sealed
                )
            return outcome
        try:
            sha = await gitwrite.commit(deps.git, src.url, tip, changes, author=author, message=message)
            await gitwrite.push(deps.git, src.url, to_branch or src.branch, sha, src.auth)
        except gitwrite.PushRejected:
            if to_branch is not None:
                raise Refused(
                    f"branch {to_branch!r} was created meanwhile; choose another name", status=409
                ) from None
            log.info("stack edit of %s lost a race on %s (attempt %d)", src.cluster_name, src.branch, attempt)
            continue
        except GitError as e:
            raise Refused(f"the commit could not be pushed: {e.message}", status=502) from None
        outcome.commit = sha
        if to_branch is not None:
            await _propose(deps, src, outcome, author.name)
        elif on_pushed is not None:
            await on_pushed(sha)
        return outcome
    raise Refused(
        f"branch {src.branch!r} kept moving while the edit was being saved (another commit was pushed "
        f"twice in a row); nothing was committed. Look at the new commits and save again",
        status=409,
    )


async def _propose(deps: Deps, src: Source, outcome: Outcome, who: str) -> None:
    """The pull request of the commit just pushed to the new branch `outcome.branch`: opened through
    the provider's API where the connection allows it, else its form's link and the reason."""
    link = gitwrite.pull_request_url(src.web_url, src.provider, src.branch, outcome.branch)
    proposal = pullrequests.proposal_of(
        head=outcome.branch,
        base=src.branch,
        message=outcome.message,
        who=who,
        cluster=src.cluster_name,
        files=outcome.files,
    )
    result = await pullrequests.propose(
        src.pull_requests, proposal, link, policy=deps.settings.egress_policy()
    )
    outcome.pull_request_url, outcome.pull_request_opened = result.url, result.opened
    outcome.pull_request_reason = result.reason


MAX_READERS = 50


async def _readers(deps: Deps, src: Source, base: Path, changed: set[str]) -> list[str]:
    """The other clusters tracking the same repository and branch whose definitions (in the edited
    copy at `base`) read one of the `changed` files."""

    def work(session: Session) -> list[tuple[str, str]]:
        rows = session.scalars(
            select(GitRepository).where(
                GitRepository.url == src.url,
                GitRepository.branch == src.branch,
                GitRepository.cluster_id != src.cluster_id,
            )
        ).all()
        return sorted((r.cluster.name, r.path) for r in rows)[:MAX_READERS]

    others: list[tuple[str, str]] = await deps.db(work)

    def check() -> list[str]:
        found = []
        for name, path in others:
            if not (base / path).is_file():
                continue
            try:
                result = load(base / path, LoadOptions(decrypt=False), repo_root=base)
            except UsageError:
                continue
            if changed & set(result.files):
                found.append(name)
        return found

    return await asyncio.to_thread(check) if others else []


async def _check_new_branch(deps: Deps, src: Source, branch: str) -> None:
    try:
        repourl.check_branch(branch)
    except repourl.RepoInputError as e:
        raise Refused(e.message) from None
    if branch == src.branch:
        raise Refused(f"{branch!r} is the tracked branch; leave the branch out to commit to it")
    try:
        await deps.git.ls_remote(src.url, branch, src.auth)
    except GitError as e:
        if e.reason == "not_found":
            return
        raise Refused(f"cannot read the repository: {e.message}", status=502) from None
    raise Refused(f"branch {branch!r} already exists; a pull request needs a new branch", status=409)


def _resolved(base: Path, path: str) -> ResolvedCluster | None:
    """The definition as resolved by the loader (None when it does not load: then everything is new)."""
    try:
        return load(base / path, LoadOptions(decrypt=False), repo_root=base).resolved
    except UsageError:
        return None


def _apply_all(ws: Workspace, edits: Sequence[Edit]) -> None:
    for edit in edits:
        ws.apply(edit)
    ws.write_back()


async def request_sync(deps: Deps, name: str, who: str) -> None:
    """Ask for the GitOps sync of the new commit (the controller is woken by the caller)."""

    def work(session: Session) -> None:
        cluster = service.get_cluster(session, name)
        repo = store.get_repository(session, cluster)
        if repo is not None:
            store.request_sync(session, repo, "manual", who)

    await deps.db(work)
