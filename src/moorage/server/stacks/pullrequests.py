"""Opening the pull request of a Stack Builder commit through the Git provider's API (GitHub and
GitHub Enterprise, GitLab, Bitbucket Cloud, Bitbucket Data Center), with the connection's own token
credential. The commit is on its branch before any of this runs: when the pull request cannot be
opened (no token credential, an API the credential is not bound to, a provider that refuses), the
answer keeps the provider's "open a pull request" link and says why, and nothing is undone.

The decisions are pure: `api_of` (where the provider's API is), `plan_of` (may the token go there),
`branch_name`, `proposal_of` and `request_of` (the HTTP request, without the credential). `open_pull_request`
is the one exchange: the API host is checked against the server's egress policy and connected to at
the address that was checked, redirects are not followed, and at most MAX_ANSWER_BYTES of the answer
are read. The token is only ever in the request's header: messages and logs never carry it."""

import base64
import json
import logging
import re
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from moorage.server import egress
from moorage.server.db.models import GitRepository
from moorage.server.gitops import repourl, store
from moorage.server.gitops.git import GitAuth
from moorage.server.secretbox import Secret

log = logging.getLogger("moorage.server.stacks")

Flavour = Literal["github", "gitlab", "bitbucket_cloud", "bitbucket_data_center"]

MAX_ANSWER_BYTES = 256 * 1024  # a created pull request's JSON is a few KiB
TIMEOUT_SECONDS = 20.0
MAX_TITLE_CHARS = 200
MAX_BODY_CHARS = 8000
MAX_REASON_CHARS = 300
GITHUB_API = "https://api.github.com"
BITBUCKET_CLOUD_API = "https://api.bitbucket.org/2.0"
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Api:
    """Where a repository's pull requests are opened: the API root, and the repository in the
    provider's terms (GitHub owner / GitLab namespace / Bitbucket workspace or project key, name)."""

    flavour: Flavour
    base: str
    owner: str
    name: str


@dataclass(frozen=True)
class Plan:
    """An API the connection's token may be sent to."""

    api: Api
    token: Secret
    username: str | None = None

    def __repr__(self) -> str:
        return f"Plan({self.api!r}, token hidden)"


@dataclass(frozen=True)
class Proposal:
    head: str  # the new branch
    base: str  # the tracked branch
    title: str
    body: str


@dataclass(frozen=True)
class HttpRequest:
    """A request without its credential (`auth_headers` adds it at sending time)."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Result:
    opened: bool
    url: str | None  # the pull request's page; else the provider's form to open it by hand
    reason: str | None = None  # why it was not opened


# --------------------------------------------------------------------------- pure decisions


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def api_of(
    provider: str,
    web_url: str | None,
    *,
    instance_url: str | None = None,
    repository: str | None = None,
    workspace: str | None = None,
    repo_slug: str | None = None,
    project_key: str | None = None,
) -> Api | str:
    """The provider's API for the repository whose web page is `web_url` (repourl.web_url), or why
    it cannot be told. GitHub Enterprise and self-managed GitLab serve their API on the instance's
    own host (`instance_url` when given, else the web page's)."""
    if web_url is None:
        return "Moorage cannot tell the repository's web address from its URL (give the instance URL)"
    segments = [s for s in urlsplit(web_url).path.split("/") if s]
    if provider == "bitbucket_data_center":
        base, sep, rest = web_url.rpartition("/projects/")
        parts = rest.split("/")
        if not sep or len(parts) != 3 or parts[1] != "repos":
            return "Moorage cannot tell the Bitbucket Data Center project and repository from the URL"
        return Api(
            "bitbucket_data_center", f"{base}/rest/api/1.0", project_key or parts[0], repo_slug or parts[2]
        )
    if len(segments) < 2:
        return "Moorage cannot tell the repository's owner and name from its URL"
    owner, name = "/".join(segments[:-1]), segments[-1]
    host = (urlsplit(web_url).hostname or "").lower()
    instance = (instance_url or _origin(web_url)).rstrip("/")
    if provider == "github":
        if repository and repository.count("/") == 1:
            owner, name = repository.split("/")
        return Api("github", GITHUB_API if host == "github.com" else f"{instance}/api/v3", owner, name)
    if provider == "bitbucket_cloud":
        return Api("bitbucket_cloud", BITBUCKET_CLOUD_API, workspace or owner, repo_slug or name)
    if provider == "gitlab":
        return Api("gitlab", f"{instance}/api/v4", owner, name)
    return f"Moorage does not know how to open a pull request on provider {provider!r}"


def plan_of(repo: GitRepository, auth: GitAuth | None, *, loopback_http: bool) -> Plan | str:
    """Whether the connection's credential may open pull requests through the provider's API: a
    token credential bound to the API's host (the same host binding as for Git); else why not."""
    api = api_of(
        repo.provider,
        repourl.web_url(repo.url, repo.provider, instance_url=repo.instance_url),  # type: ignore[arg-type]
        instance_url=repo.instance_url,
        workspace=repo.workspace,
        repo_slug=repo.repo_slug,
        project_key=repo.project_key,
    )
    if isinstance(api, str):
        return api
    if auth is None or repo.credential is None:
        return "the connection has no credential; a token credential lets Moorage open the pull request"
    if auth.kind != "token":
        return (
            f"credential {auth.name!r} is an SSH key; the provider's API needs a token credential "
            "to open the pull request"
        )
    endpoint = request_of(api, Proposal("head", "base", "", "")).url
    why = store.credential_refusal(repo.credential, endpoint, loopback_http=loopback_http, git=True)
    if why is not None:
        return f"the pull request was not opened through the provider's API: {why}"
    return Plan(api, auth.secret, auth.username)


def _slug(text: str, limit: int) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")


def branch_name(who: str, what: str, unique: str | None = None) -> str:
    """A new branch for one save: `moorage/<user>/<what>-<6 hex>` (letters, digits and '-' only,
    so always a valid and unambiguous branch name; the random part keeps two saves apart)."""
    suffix = unique or secrets.token_hex(3)
    name = f"moorage/{_slug(who, 40) or 'user'}/{_slug(what, 50) or 'edit'}-{_slug(suffix, 12) or 'x'}"
    return repourl.check_branch(name)


def proposal_of(
    *, head: str, base: str, message: str, who: str, cluster: str, files: Sequence[str]
) -> Proposal:
    """Title and description naming what changed (the commit message) and who made it."""
    head_line, _, rest = message.partition("\n")
    changes = rest.replace("Made with the Moorage Stack Builder.", "").strip()
    listed = "\n".join(f"- `{f}`" for f in files[:50]) + ("\n- …" if len(files) > 50 else "")
    body = (
        f"{who} changed the definition of cluster `{cluster}` in the Moorage Stack Builder.\n\n"
        + (f"{changes}\n\n" if changes else "")
        + f"Files:\n{listed}\n\n"
        f"Nothing is deployed until this is merged into `{base}`; the merge is synced like any other commit."
    )
    return Proposal(head, base, head_line.strip()[:MAX_TITLE_CHARS], body[:MAX_BODY_CHARS])


def request_of(api: Api, proposal: Proposal) -> HttpRequest:
    """The provider's documented "create a pull request" call."""
    json_headers = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "moorage"}
    owner, name = quote(api.owner, safe=""), quote(api.name, safe="")
    if api.flavour == "github":
        return HttpRequest(
            "POST",
            f"{api.base}/repos/{owner}/{name}/pulls",
            {**json_headers, "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
            {"title": proposal.title, "body": proposal.body, "head": proposal.head, "base": proposal.base},
        )
    if api.flavour == "gitlab":
        project = quote(f"{api.owner}/{api.name}", safe="")
        return HttpRequest(
            "POST",
            f"{api.base}/projects/{project}/merge_requests",
            json_headers,
            {
                "source_branch": proposal.head,
                "target_branch": proposal.base,
                "title": proposal.title,
                "description": proposal.body,
                "remove_source_branch": True,
            },
        )
    if api.flavour == "bitbucket_cloud":
        return HttpRequest(
            "POST",
            f"{api.base}/repositories/{owner}/{name}/pullrequests",
            json_headers,
            {
                "title": proposal.title,
                "description": proposal.body,
                "source": {"branch": {"name": proposal.head}},
                "destination": {"branch": {"name": proposal.base}},
                "close_source_branch": True,
            },
        )
    repo = {"slug": api.name, "project": {"key": api.owner}}
    return HttpRequest(
        "POST",
        f"{api.base}/projects/{owner}/repos/{name}/pull-requests",
        json_headers,
        {
            "title": proposal.title,
            "description": proposal.body,
            "fromRef": {"id": f"refs/heads/{proposal.head}", "repository": repo},
            "toRef": {"id": f"refs/heads/{proposal.base}", "repository": repo},
        },
    )


def auth_headers(flavour: Flavour, token: str, username: str | None) -> dict[str, str]:
    """How each provider takes a token: GitHub a bearer token, GitLab its PRIVATE-TOKEN header,
    Bitbucket a bearer access token, or user name and app password (Cloud) / token (Data Center)
    as basic auth when the credential names a user."""
    if flavour == "gitlab":
        return {"PRIVATE-TOKEN": token}
    if flavour != "github" and username and username != "x-token-auth":
        return {"Authorization": "Basic " + _basic(username, token)}
    return {"Authorization": f"Bearer {token}"}


def _basic(username: str, token: str) -> str:
    return base64.b64encode(f"{username}:{token}".encode()).decode()


def page_of(flavour: Flavour, answer: Any) -> str | None:
    """The created pull request's web page in the provider's answer."""
    if not isinstance(answer, dict):
        return None
    found: Any = None
    if flavour == "github":
        found = answer.get("html_url")
    elif flavour == "gitlab":
        found = answer.get("web_url")
    elif flavour == "bitbucket_cloud":
        found = ((answer.get("links") or {}).get("html") or {}).get("href")
    else:
        selfs = (answer.get("links") or {}).get("self") or [{}]
        found = selfs[0].get("href") if isinstance(selfs, list) and isinstance(selfs[0], dict) else None
    return found if isinstance(found, str) and found.startswith(("https://", "http://")) else None


def problem_of(answer: Any) -> str | None:
    """The provider's own words for a refusal (GitHub `message` + `errors`, GitLab `message` or
    `error`, Bitbucket Cloud `error.message`, Data Center `errors[].message`)."""
    if not isinstance(answer, dict):
        return None
    words: list[str] = []
    message = answer.get("message")
    if isinstance(message, str):
        words.append(message)
    elif isinstance(message, list):
        words.extend(str(m) for m in message[:3])
    elif isinstance(message, dict):  # GitLab: {"field": ["is invalid"]}
        words.extend(f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in message.items())
    error = answer.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        words.append(error["message"])
    elif isinstance(error, str):
        words.append(error)
    for item in (answer.get("errors") or [])[:3] if isinstance(answer.get("errors"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("message"), str):
            words.append(item["message"])
    return "; ".join(w for w in words if w) or None


def _clean(text: str, token: str) -> str:
    """Provider text made safe to show: one line, bounded, and never the token."""
    text = " ".join(text.replace(token, "****").split()) if token else " ".join(text.split())
    return text[:MAX_REASON_CHARS]


# --------------------------------------------------------------------------- the exchange


async def open_pull_request(
    plan: Plan, proposal: Proposal, *, policy: egress.EgressPolicy, timeout: float = TIMEOUT_SECONDS
) -> Result:
    """POST the pull request; the page of the one opened, or why none was (never raises for the
    provider's or the network's failures: the commit is pushed either way)."""
    request = request_of(plan.api, proposal)
    token = plan.token.reveal()
    url = httpx.URL(request.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await egress.vet(url.host, port, policy)
    except egress.EgressRefused as e:
        return Result(False, None, f"the server may not connect to the provider's API: {e.message}")
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        sent = client.build_request(
            request.method,
            url,
            headers={**request.headers, **auth_headers(plan.api.flavour, token, plan.username)},
            content=json.dumps(request.body).encode(),
        )
        if addresses[0] != url.host:  # connect to the checked address; TLS still checks the name
            sent.extensions["sni_hostname"] = url.host
            sent.url = url.copy_with(host=addresses[0])
        try:
            response = await client.send(sent, stream=True)
            try:
                status, data, cut = response.status_code, bytearray(), False
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        cut = True
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return Result(False, None, f"the provider's API at {url.host} did not answer in {timeout:.0f} s")
        except (httpx.HTTPError, ssl.SSLError, OSError) as e:
            return Result(
                False, None, _clean(f"the provider's API at {url.host} could not be reached: {e}", token)
            )
    if cut:
        return Result(False, None, f"the provider's answer was larger than {MAX_ANSWER_BYTES >> 10} KiB")
    try:
        answer: Any = json.loads(bytes(data)) if data else None
    except ValueError:
        answer = None
    if status in (200, 201):
        page = page_of(plan.api.flavour, answer)
        log.info("opened the pull request of branch %s on %s", proposal.head, url.host)
        return Result(True, page, None if page else "the provider opened it but did not say where")
    said = problem_of(answer)
    why = {401: "the token was refused", 403: "the token may not open pull requests here"}.get(status, "")
    parts = [p for p in (why, said) if p]
    detail = f": {'; '.join(parts)}" if parts else ""
    log.info("the provider refused the pull request of branch %s (HTTP %d)", proposal.head, status)
    return Result(
        False, None, _clean(f"the provider refused to open the pull request (HTTP {status}){detail}", token)
    )


async def propose(
    plan: Plan | str, proposal: Proposal, link: str | None, *, policy: egress.EgressPolicy
) -> Result:
    """Open the pull request where the plan allows it; else (or when it fails) the provider's form
    `link` and the reason."""
    if isinstance(plan, str):
        return Result(False, link, plan)
    result = await open_pull_request(plan, proposal, policy=policy)
    return result if result.opened else Result(False, link, result.reason)
