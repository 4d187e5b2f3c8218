"""Rules for what users tell us about a Git repository: its URL, branch, file path and revision.

Pure functions, no I/O. Every refusal is a RepoInputError whose message says what is wrong and what
to do, and never repeats the URL, which may hold a secret. The URL rules keep git away from local
files, remote helpers and option injection (Argo CD #2705, CVE-2025-21613, CVE-2023-25163)."""

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import quote, urlsplit

Provider = Literal["github", "bitbucket_cloud", "bitbucket_data_center"]
PROVIDERS: tuple[Provider, ...] = ("github", "bitbucket_cloud", "bitbucket_data_center")

MAX_URL_CHARS = 2048
MAX_BRANCH_CHARS = 255
MAX_PATH_CHARS = 512
MAX_FIELD_CHARS = 255

_NETWORK_SCHEMES = frozenset({"https", "http", "ssh", "git"})
_ALLOWED = "https://, http://, ssh://, git:// or user@host:path"
_LOCAL_HINT = "use a URL; local repositories need file:// and MOORAGE_GIT_ALLOW_FILE=1"
_CREDENTIAL_HINT = "put the token in a Git credential (moorage credentials create …) instead of the URL"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# git's own test for `<transport>::<address>` (transport.c, is_urlschemechar)
_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.-]*::")
_SCP = re.compile(r"(?P<user>[^@/:\[\]]+)@(?P<host>\[[^\]/@]+\]|[^@/:\[\]]+):(?P<path>.*)", re.DOTALL)
_SCP_PASSWORD = re.compile(r"[^@/]*:[^@/]*@")
# what may stand for the host in `user@host:path` (and in `user@[host]:path`); git hands it to ssh
_SCP_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SCP_BRACKETED_HOST = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9._:%-]*")
_DOS_PATH = re.compile(r"[A-Za-z]:([\\/]|$)")
# CVE-2020-5260: an encoded newline in a URL once made git send credentials to another host
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
# a token pasted as the user name (https://ghp_…@github.com/…) is a credential all the same
_TOKEN_USER = re.compile(r"gh[pousr]_\w{20}|github_pat_\w{20}|ATBB\w{20}|ATCTT\w{20}")
_REVISION = re.compile(r"[0-9A-Fa-f]{7,40}|[0-9A-Fa-f]{64}")
_BRANCH_FORBIDDEN = frozenset(" ~^:?*[\\")
# clone hosts whose web pages live at https://<host>/<owner>/<name>
_PUBLIC_WEB_HOSTS = {
    "github.com": "github.com",
    "ssh.github.com": "github.com",
    "bitbucket.org": "bitbucket.org",
    "altssh.bitbucket.org": "bitbucket.org",
}
_FIELDS: dict[str, tuple[str, ...]] = {
    "github": ("repository",),
    "bitbucket_cloud": ("workspace", "repo_slug"),
    "bitbucket_data_center": ("project_key", "repo_slug"),
}


class RepoInputError(ValueError):
    """Something a user gave about a repository is not acceptable; `message` is safe to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class RepoIdentity:
    """Which repository a URL, a form or a webhook names; compared case-insensitively."""

    owner: str
    name: str

    def __post_init__(self) -> None:
        # Git hosts treat owner and name case-insensitively, so matching must too
        object.__setattr__(self, "owner", self.owner.lower())
        object.__setattr__(self, "name", self.name.lower())

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


class _Location(NamedTuple):
    scheme: str
    host: str  # lowercased, without brackets or port
    hostport: str  # as written, without user info
    segments: tuple[str, ...]  # non-empty path segments, ".git" stripped from the last


# --------------------------------------------------------------------------- URLs


def check_url(url: str, *, allow_file: bool = False) -> str:
    """The URL without surrounding whitespace, if git may be given it; else RepoInputError."""
    url = url.strip()
    _check_url_text(url)
    scheme = _SCHEME.match(url)
    if scheme:
        _check_hierarchical(url, scheme.group(1).lower(), allow_file=allow_file)
    else:
        _check_scp_like(url)
    return url


def scheme_of(url: str) -> str:
    """The scheme: https, http, ssh, git or file (scp-like `user@host:path` is ssh)."""
    url = url.strip()
    match = _SCHEME.match(url)
    if match and match.group(1).lower() in _NETWORK_SCHEMES | {"file"}:
        return match.group(1).lower()
    if not match and not _is_local_path(url) and _SCP.fullmatch(url):
        return "ssh"
    raise RepoInputError(f"the repository URL has no supported scheme; use {_ALLOWED}")


def _check_url_text(url: str) -> None:
    if not url:
        raise RepoInputError("the repository URL is empty; give an https:// or ssh:// URL")
    if len(url) > MAX_URL_CHARS:
        raise RepoInputError(f"the repository URL is longer than {MAX_URL_CHARS} characters; shorten it")
    if url.startswith("-"):
        raise RepoInputError("the repository URL must not start with '-' (git would read it as an option)")
    if _HELPER.match(url):
        raise RepoInputError(f"remote helpers are not allowed (the '<transport>::' form); use {_ALLOWED}")
    if any(ch.isspace() or _is_control(ch) for ch in url):
        raise RepoInputError("the repository URL contains spaces or control characters; remove them")
    if _ENCODED_CONTROL.search(url):
        raise RepoInputError("the repository URL contains an encoded control character (%00-%1F, %7F)")


def _check_hierarchical(url: str, scheme: str, *, allow_file: bool) -> None:
    if scheme == "file" and not allow_file:
        raise RepoInputError(
            "file:// URLs are turned off; an administrator can allow them with MOORAGE_GIT_ALLOW_FILE=1"
        )
    if scheme != "file" and scheme not in _NETWORK_SCHEMES:
        shown = f"'{scheme}'" if len(scheme) <= 16 else "this scheme"
        raise RepoInputError(f"URL scheme {shown} is not allowed; use {_ALLOWED}")
    if "\\" in url:
        raise RepoInputError("the repository URL must not contain '\\'; use '/'")
    netloc = re.split(r"[/?#]", url[len(scheme) + 3 :], maxsplit=1)[0]
    _check_user(netloc.rpartition("@")[0])
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise RepoInputError("the repository URL is malformed; check its host and port") from None
    host = parts.hostname or ""
    if scheme != "file" and not host:
        raise RepoInputError("the repository URL has no host; give e.g. https://github.com/owner/repo.git")
    if host.startswith("-"):
        raise RepoInputError("the host must not start with '-' (git would read it as an option)")
    if not parts.path.strip("/"):
        raise RepoInputError("the repository URL has no repository path; give e.g. …/owner/repo.git")


def _check_user(userinfo: str) -> None:
    if ":" in userinfo or _TOKEN_USER.match(userinfo):
        raise RepoInputError(f"the repository URL holds a password or token; {_CREDENTIAL_HINT}")
    if userinfo.startswith("-"):
        raise RepoInputError("the user name must not start with '-' (ssh would read it as an option)")


def _check_scp_like(url: str) -> None:
    if _is_local_path(url):
        raise RepoInputError(f"the repository URL looks like a local path; {_LOCAL_HINT}")
    if "\\" in url:
        raise RepoInputError("the repository URL must not contain '\\'; use '/'")
    match = _SCP.fullmatch(url)
    if match is None:
        if _SCP_PASSWORD.match(url):
            raise RepoInputError(f"the repository URL holds a password or token; {_CREDENTIAL_HINT}")
        raise RepoInputError(f"this URL form is not supported; use {_ALLOWED}")
    _check_user(match["user"])
    host = match["host"]
    bare = host[1:-1] if host.startswith("[") else host
    if bare.startswith("-"):
        raise RepoInputError("the host must not start with '-' (ssh would read it as an option)")
    if not (_SCP_BRACKETED_HOST if host.startswith("[") else _SCP_HOST).fullmatch(bare):
        raise RepoInputError(
            "the host may hold only letters, digits, '.', '-' and '_' (and, inside [ ], an IPv6 "
            "address or a port after ':'); check the URL"
        )
    if not match["path"].strip("/"):
        raise RepoInputError("the repository URL has no repository path; give e.g. git@host:owner/repo.git")
    if match["path"].startswith("-"):
        raise RepoInputError("the repository path must not start with '-'")


def _is_local_path(url: str) -> bool:
    """Whether git would take `url` for a path on disk (no ':' before the first '/')."""
    if url.startswith(("/", ".", "~", "\\")) or _DOS_PATH.match(url):
        return True
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or 0 <= slash < colon


def _is_control(ch: str) -> bool:
    # Cf hides text (bidi overrides, zero-width), Cs cannot be encoded: neither belongs in a URL or path
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs")


def _locate(url: str) -> _Location | None:
    """The parts of a URL that name the repository; None when it cannot be read."""
    url = url.strip()
    scheme = _SCHEME.match(url)
    if scheme:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return None
        location = (scheme.group(1).lower(), host, parts.netloc.rpartition("@")[2], parts.path)
    else:
        scp = _SCP.fullmatch(url)
        if scp is None or _is_local_path(url):
            return None
        location = ("ssh", scp["host"].strip("[]").lower(), scp["host"], scp["path"])
    segments = [s for s in location[3].split("/") if s]
    if segments:
        segments[-1] = _strip_git(segments[-1])
    return _Location(location[0], location[1], location[2], tuple(segments))


_DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}


def endpoint(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) git connects to for `url`; None for file:// and what cannot be read."""
    location = _locate(url)
    if location is None or location.scheme not in _DEFAULT_PORTS or not location.host:
        return None
    port = _DEFAULT_PORTS[location.scheme]
    if _SCHEME.match(url.strip()):
        try:
            port = urlsplit(url.strip()).port or port
        except ValueError:
            return None
    return location.scheme, location.host, port


def _strip_git(name: str) -> str:
    return name[:-4] if name.lower().endswith(".git") else name


# --------------------------------------------------------------------------- identity


def identity_of(url: str) -> RepoIdentity | None:
    """owner/name from the last two path segments of a clone URL; None when there are fewer."""
    location = _locate(url)
    if location is None or len(location.segments) < 2:
        return None
    owner, name = location.segments[-2:]
    if not owner or not name:
        return None
    return RepoIdentity(owner, name)


def identity_from_fields(
    provider: Provider,
    *,
    repository: str | None = None,
    workspace: str | None = None,
    repo_slug: str | None = None,
    project_key: str | None = None,
) -> RepoIdentity | None:
    """The identity named by Ankra's explicit fields; None when none are given (blank = not given)."""
    wanted = _FIELDS.get(provider)
    if wanted is None:
        raise RepoInputError(f"unknown provider; use one of {', '.join(PROVIDERS)}")
    given = {
        key: value.strip()
        for key, value in {
            "repository": repository,
            "workspace": workspace,
            "repo_slug": repo_slug,
            "project_key": project_key,
        }.items()
        if value is not None and value.strip()
    }
    stray = [key for key in given if key not in wanted]
    if stray:
        raise RepoInputError(f"{stray[0]} does not apply to {provider}; give {' and '.join(wanted)}")
    if not given:
        return None
    missing = [key for key in wanted if key not in given]
    if missing:
        raise RepoInputError(f"give {missing[0]} together with {' and '.join(given)}")
    if provider == "github":
        owner, name = _split_full_name(given["repository"])
    else:
        owner, name = given[wanted[0]], given["repo_slug"]
    return RepoIdentity(_segment(owner, wanted[0]), _strip_git(_segment(name, wanted[-1])))


def _split_full_name(repository: str) -> tuple[str, str]:
    parts = repository.split("/")
    if len(parts) != 2:
        raise RepoInputError("repository must be 'owner/name' (exactly one '/')")
    return parts[0], parts[1]


def _segment(value: str, field: str) -> str:
    if not value or value in (".", ".."):
        raise RepoInputError(f"{field} must not be empty, '.' or '..'")
    if len(value) > MAX_FIELD_CHARS:
        raise RepoInputError(f"{field} is longer than {MAX_FIELD_CHARS} characters")
    if "/" in value or any(ch.isspace() or _is_control(ch) for ch in value):
        raise RepoInputError(f"{field} must not contain '/', spaces or control characters")
    return value


# --------------------------------------------------------------------------- links


def web_url(url: str, provider: Provider, *, instance_url: str | None = None) -> str | None:
    """The repository's page in a browser, without credentials; None when it cannot be told."""
    try:
        check_url(url, allow_file=True)
    except RepoInputError:
        return None
    location = _locate(url)
    if location is None or location.scheme == "file" or not location.segments[-1:]:
        return None
    if provider == "bitbucket_data_center":
        return _data_center_web(location, instance_url)
    base = _web_base(location, instance_url)
    return None if base is None else f"{base}/{'/'.join(location.segments)}"


def _web_base(location: _Location, instance_url: str | None) -> str | None:
    # GitHub and Bitbucket Cloud serve pages where they serve https clones
    if location.scheme in ("https", "http"):
        return f"{location.scheme}://{location.hostport}"
    public = _PUBLIC_WEB_HOSTS.get(location.host)
    if public is not None:
        return f"https://{public}"
    return instance_url.rstrip("/") if instance_url else None


def _data_center_web(location: _Location, instance_url: str | None) -> str | None:
    if len(location.segments) < 2:
        return None
    *prefix, project, repo = location.segments
    if instance_url:
        base = instance_url.rstrip("/")
    elif location.scheme in ("https", "http"):
        # clone URLs are <base>/scm/PROJ/repo.git, where <base> may carry a context path
        context = prefix[:-1] if prefix[-1:] == ["scm"] else prefix
        base = "/".join([f"{location.scheme}://{location.hostport}", *context])
    else:
        return None  # the ssh port and host say nothing about where the web UI is
    return f"{base}/projects/{project}/repos/{repo}"


def commit_url(web: str | None, provider: Provider, sha: str) -> str | None:
    """The page of one commit."""
    if web is None:
        return None
    kind = "commit" if provider == "github" else "commits"
    return f"{web}/{kind}/{quote(sha, safe='')}"


def files_url(web: str | None, provider: Provider, sha: str, directory: str) -> str | None:
    """The files under `directory` ("" or "." is the root) at commit `sha`."""
    if web is None:
        return None
    parts = [quote(p, safe="") for p in directory.strip().split("/") if p not in ("", ".")]
    rev = quote(sha, safe="")
    if provider == "bitbucket_data_center":
        return "/".join([web, "browse", *parts]) + f"?at={rev}"
    kind = "tree" if provider == "github" else "src"
    return "/".join([web, kind, rev, *parts])


def file_url(web: str | None, provider: Provider, sha: str, path: str, line: int = 0) -> str | None:
    """One file at commit `sha`, at `line` when it is known (1-based)."""
    if web is None:
        return None
    parts = [quote(p, safe="") for p in path.strip().split("/") if p not in ("", ".")]
    rev = quote(sha, safe="")
    if provider == "bitbucket_data_center":
        return "/".join([web, "browse", *parts]) + f"?at={rev}" + (f"#{line}" if line > 0 else "")
    if provider == "github":
        return "/".join([web, "blob", rev, *parts]) + (f"#L{line}" if line > 0 else "")
    return "/".join([web, "src", rev, *parts]) + (f"#lines-{line}" if line > 0 else "")


# --------------------------------------------------------------------------- branch, path, revision


def check_branch(branch: str) -> str:
    """`branch` if it is a valid branch name (a subset of `git check-ref-format --branch`)."""
    problem = _branch_problem(branch)
    if problem is not None:
        raise RepoInputError(f"invalid branch name: {problem}")
    return branch


def _branch_problem(branch: str) -> str | None:
    if not branch:
        return "it is empty"
    if len(branch) > MAX_BRANCH_CHARS:
        return f"it is longer than {MAX_BRANCH_CHARS} characters"
    if branch.startswith(("-", "/")):
        return "it must not start with '-' or '/'"
    if branch in ("@", "HEAD"):
        return "'@' and 'HEAD' are reserved"
    if any(ch in _BRANCH_FORBIDDEN or ch.isspace() or _is_control(ch) for ch in branch):
        return "it must not contain spaces, control characters or any of ~ ^ : ? * [ \\"
    for bad in ("..", "@{", "//"):
        if bad in branch:
            return f"it must not contain '{bad}'"
    if branch.endswith(("/", ".", ".lock")):
        return "it must not end with '/', '.' or '.lock'"
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return "no part between '/' may start with '.' or end with '.lock'"
    return None


def check_repo_path(path: str) -> str:
    """The ImportCluster file's path inside the repository, stripped, if it is a safe relative path."""
    path = path.strip()
    if not path or len(path) > MAX_PATH_CHARS:
        raise RepoInputError(f"the file path must have 1 to {MAX_PATH_CHARS} characters")
    if "\\" in path or any(_is_control(ch) for ch in path):
        raise RepoInputError("the file path must not contain '\\' or control characters; use '/'")
    if path.startswith("/"):
        raise RepoInputError("the file path must be relative to the repository root, e.g. clusters/dev.yaml")
    if path.startswith("-"):
        raise RepoInputError("the file path must not start with '-'")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise RepoInputError("the file path must not contain '..', '.' or empty parts ('//')")
    if not path.endswith((".yaml", ".yml")):
        raise RepoInputError("the file path must name a .yaml or .yml file")
    return path


def check_instance_url(url: str) -> str:
    """The web address of a self-hosted instance (GitHub Enterprise, Bitbucket Data Center), where
    its pages and API live: http(s), a host, at most a context path; unlike a clone URL it names no
    repository, so `https://git.example.com` is fine. No user, query or fragment."""
    url = url.strip()
    if not url or len(url) > MAX_URL_CHARS:
        raise RepoInputError(
            f"the instance URL must be 1 to {MAX_URL_CHARS} characters, e.g. https://git.example.com"
        )
    if any(ch.isspace() or _is_control(ch) for ch in url) or _ENCODED_CONTROL.search(url) or "\\" in url:
        raise RepoInputError("the instance URL contains spaces, control characters or '\\'; remove them")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise RepoInputError("the instance URL is malformed; check its host and port") from None
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname or parts.hostname.startswith("-"):
        raise RepoInputError(
            "the instance URL must be an https:// address with a host, e.g. https://git.example.com"
        )
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise RepoInputError("the instance URL must not carry a user, password, query or fragment")
    return url


def check_revision(revision: str) -> str:
    """A commit SHA, full or abbreviated, lowercased."""
    if not _REVISION.fullmatch(revision):
        raise RepoInputError("give a commit SHA (7 to 40 hexadecimal characters)")
    return revision.lower()
