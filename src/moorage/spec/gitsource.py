"""The Git repository a definition says it lives in (``spec.git_repository``), as a clone URL, and
whether a connection points somewhere else (pure: no network)."""

from __future__ import annotations

from urllib.parse import urlparse

from moorage.spec.models import GitRepository

GITHUB = "https://github.com"
BITBUCKET_CLOUD = "https://bitbucket.org"


def repository_path(repo: GitRepository) -> str:
    """``owner/name`` (github), ``workspace/slug`` (Bitbucket Cloud), ``PROJECT/slug`` (Data Center)."""
    if repo.repository:
        return repo.repository.strip("/")
    if repo.provider == "bitbucket_cloud":
        return f"{repo.workspace}/{repo.repo_slug}"
    return f"{repo.project_key}/{repo.repo_slug}"


def clone_url(repo: GitRepository) -> str:
    """The https clone URL of the repository the definition names."""
    path = repository_path(repo)
    if repo.provider == "github":
        return f"{GITHUB}/{path}.git"
    if repo.provider == "bitbucket_cloud":
        return f"{BITBUCKET_CLOUD}/{path}.git"
    return f"{(repo.instance_url or '').rstrip('/')}/scm/{path}.git"


def _url_path(url: str) -> str:
    if "://" in url:
        path = urlparse(url).path
    elif ":" in url:  # scp-like: git@host:owner/name.git
        path = url.split(":", 1)[1]
    else:
        path = url
    path = path.strip("/")
    return path[: -len(".git")] if path.endswith(".git") else path


def mismatch(repo: GitRepository, url: str, branch: str) -> str:
    """Why the connection (url, branch) is not the repository the definition names, or ""."""
    want = repository_path(repo).lower()
    have = _url_path(url).lower()
    problems = []
    if have != want and not have.endswith("/" + want):
        problems.append(f"repository {repository_path(repo)} (connected: {url})")
    if repo.branch != branch:
        problems.append(f"branch {repo.branch} (connected: {branch})")
    if not problems:
        return ""
    return "the definition's spec.git_repository names " + " and ".join(problems)
