"""Opening a Stack Builder pull request: the pure decisions as tables (where each provider's API is,
the request it documents, how the token is sent, the branch name, title and body, what the answer
says), and the HTTP exchange against `prcontract`, a loopback server speaking each provider's
documented contract (a contract test, not a real provider: none is reachable from here)."""

import json
from typing import Any

import pytest

from moorage.server import egress
from moorage.server.db.models import GitCredential, GitRepository
from moorage.server.egress import EgressPolicy
from moorage.server.gitops import repourl
from moorage.server.gitops.git import GitAuth
from moorage.server.secretbox import Secret
from moorage.server.stacks import pullrequests as pr
from tests.unit.server.stacks.prcontract import Contract, serve

TOKEN = "tok-Needle-5d2e9b7c"
LOOPBACK = EgressPolicy.parse("loopback")
PROPOSAL = pr.Proposal("moorage/ann/add-strict-abc123", "main", "c1: add add-on strict", "why")


@pytest.mark.parametrize(
    ("provider", "web", "extra", "expected"),
    [
        ("github", "https://github.com/Org/Defs", {}, pr.Api("github", pr.GITHUB_API, "Org", "Defs")),
        (
            "github",
            "https://ghe.example.com/org/defs",
            {},
            pr.Api("github", "https://ghe.example.com/api/v3", "org", "defs"),
        ),
        (
            "github",
            "https://ghe.example.com/org/defs",
            {"instance_url": "https://ghe.example.com/"},
            pr.Api("github", "https://ghe.example.com/api/v3", "org", "defs"),
        ),
        (
            "github",
            "https://github.com/org/defs",
            {"repository": "Other/Name"},
            pr.Api("github", pr.GITHUB_API, "Other", "Name"),
        ),
        (
            "bitbucket_cloud",
            "https://bitbucket.org/team/defs",
            {},
            pr.Api("bitbucket_cloud", pr.BITBUCKET_CLOUD_API, "team", "defs"),
        ),
        (
            "bitbucket_cloud",
            "https://bitbucket.org/team/defs",
            {"workspace": "ws", "repo_slug": "slug"},
            pr.Api("bitbucket_cloud", pr.BITBUCKET_CLOUD_API, "ws", "slug"),
        ),
        (
            "bitbucket_data_center",
            "https://bb.example.com/ctx/projects/PLAT/repos/defs",
            {},
            pr.Api("bitbucket_data_center", "https://bb.example.com/ctx/rest/api/1.0", "PLAT", "defs"),
        ),
        (
            "gitlab",
            "https://gitlab.example.com/group/sub/defs",
            {},
            pr.Api("gitlab", "https://gitlab.example.com/api/v4", "group/sub", "defs"),
        ),
        ("github", None, {}, "cannot tell the repository's web address"),
        ("github", "https://github.com/only", {}, "cannot tell the repository's owner and name"),
        ("bitbucket_data_center", "https://bb.example.com/x/y", {}, "project and repository"),
        (
            "gitea",
            "https://gitea.example.com/a/b",
            {},
            "does not know how to open a pull request on provider",
        ),
    ],
)
def test_where_each_providers_api_is(
    provider: str, web: str | None, extra: dict[str, Any], expected: pr.Api | str
) -> None:
    found = pr.api_of(provider, web, **extra)
    if isinstance(expected, str):
        assert isinstance(found, str)
        assert expected in found
    else:
        assert found == expected


def test_the_api_follows_the_connections_web_address() -> None:
    web = repourl.web_url("git@github.com:org/defs.git", "github")
    assert pr.api_of("github", web) == pr.Api("github", pr.GITHUB_API, "org", "defs")
    dc = repourl.web_url("https://bb.example.com/scm/PLAT/defs.git", "bitbucket_data_center")
    assert pr.api_of("bitbucket_data_center", dc) == pr.Api(
        "bitbucket_data_center", "https://bb.example.com/rest/api/1.0", "PLAT", "defs"
    )


@pytest.mark.parametrize(
    ("api", "url", "body"),
    [
        (
            pr.Api("github", "https://ghe.example.com/api/v3", "org", "defs"),
            "https://ghe.example.com/api/v3/repos/org/defs/pulls",
            {"title": "c1: add add-on strict", "body": "why", "head": PROPOSAL.head, "base": "main"},
        ),
        (
            pr.Api("gitlab", "https://gitlab.example.com/api/v4", "group/sub", "defs"),
            "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fdefs/merge_requests",
            {
                "source_branch": PROPOSAL.head,
                "target_branch": "main",
                "title": "c1: add add-on strict",
                "description": "why",
                "remove_source_branch": True,
            },
        ),
        (
            pr.Api("bitbucket_cloud", pr.BITBUCKET_CLOUD_API, "team", "defs"),
            "https://api.bitbucket.org/2.0/repositories/team/defs/pullrequests",
            {
                "title": "c1: add add-on strict",
                "description": "why",
                "source": {"branch": {"name": PROPOSAL.head}},
                "destination": {"branch": {"name": "main"}},
                "close_source_branch": True,
            },
        ),
        (
            pr.Api("bitbucket_data_center", "https://bb.example.com/rest/api/1.0", "PLAT", "defs"),
            "https://bb.example.com/rest/api/1.0/projects/PLAT/repos/defs/pull-requests",
            {
                "title": "c1: add add-on strict",
                "description": "why",
                "fromRef": {
                    "id": f"refs/heads/{PROPOSAL.head}",
                    "repository": {"slug": "defs", "project": {"key": "PLAT"}},
                },
                "toRef": {
                    "id": "refs/heads/main",
                    "repository": {"slug": "defs", "project": {"key": "PLAT"}},
                },
            },
        ),
    ],
)
def test_the_request_each_provider_documents(api: pr.Api, url: str, body: dict[str, Any]) -> None:
    request = pr.request_of(api, PROPOSAL)
    assert (request.method, request.url, request.body) == ("POST", url, body)
    assert not any(TOKEN in v or k == "Authorization" for k, v in request.headers.items())


def test_owner_and_name_are_quoted_into_the_path() -> None:
    request = pr.request_of(pr.Api("github", pr.GITHUB_API, "o/../x", "a?b"), PROPOSAL)
    assert request.url == "https://api.github.com/repos/o%2F..%2Fx/a%3Fb/pulls"


@pytest.mark.parametrize(
    ("flavour", "username", "expected"),
    [
        ("github", "x-access-token", {"Authorization": f"Bearer {TOKEN}"}),
        ("gitlab", "oauth2", {"PRIVATE-TOKEN": TOKEN}),
        ("bitbucket_cloud", None, {"Authorization": f"Bearer {TOKEN}"}),
        ("bitbucket_cloud", "x-token-auth", {"Authorization": f"Bearer {TOKEN}"}),
        ("bitbucket_cloud", "ann", {"Authorization": "Basic YW5uOnRvay1OZWVkbGUtNWQyZTliN2M="}),
        ("bitbucket_data_center", None, {"Authorization": f"Bearer {TOKEN}"}),
    ],
)
def test_how_each_provider_takes_the_token(flavour: pr.Flavour, username: str | None, expected: Any) -> None:
    assert pr.auth_headers(flavour, TOKEN, username) == expected


@pytest.mark.parametrize(
    ("who", "what", "expected"),
    [
        (
            "ann",
            "c1: add add-on strict to stack base",
            "moorage/ann/c1-add-add-on-strict-to-stack-base-abc123",
        ),
        ("Ann O'Neil <a@b>", "c1: 3 stack changes", "moorage/ann-o-neil-a-b/c1-3-stack-changes-abc123"),
        ("../..", "~^:?*[\\ .lock", "moorage/user/lock-abc123"),
        ("", "", "moorage/user/edit-abc123"),
        ("x" * 300, "y" * 300, f"moorage/{'x' * 40}/{'y' * 50}-abc123"),
    ],
)
def test_a_generated_branch_name_is_safe_and_names_who_and_what(who: str, what: str, expected: str) -> None:
    name = pr.branch_name(who, what, "abc123")
    assert name == expected
    assert repourl.check_branch(name) == name


def test_two_generated_branch_names_differ() -> None:
    assert pr.branch_name("ann", "c1: x") != pr.branch_name("ann", "c1: x")


def test_the_title_and_body_name_what_changed_and_who() -> None:
    message = (
        "c1: 2 stack changes\n\n- add add-on a\n- remove add-on b\n\nMade with the Moorage Stack Builder.\n"
    )
    found = pr.proposal_of(
        head="moorage/ann/x-1", base="main", message=message, who="ann", cluster="c1", files=["a.yaml"]
    )
    assert found.title == "c1: 2 stack changes"
    assert found.body.startswith("ann changed the definition of cluster `c1` in the Moorage Stack Builder.")
    assert "- add add-on a\n- remove add-on b" in found.body
    assert "- `a.yaml`" in found.body
    assert "Made with" not in found.body
    assert "merged into `main`" in found.body


@pytest.mark.parametrize(
    ("flavour", "answer", "page"),
    [
        ("github", {"html_url": "https://github.com/o/r/pull/1"}, "https://github.com/o/r/pull/1"),
        ("gitlab", {"web_url": "https://gl/o/r/-/merge_requests/2"}, "https://gl/o/r/-/merge_requests/2"),
        ("bitbucket_cloud", {"links": {"html": {"href": "https://bitbucket.org/w/r/pull-requests/3"}}}, None),
        ("bitbucket_data_center", {"links": {"self": [{"href": "https://bb/p/4"}]}}, "https://bb/p/4"),
        ("github", {"html_url": "javascript:alert(1)"}, None),
        ("bitbucket_data_center", {"links": {"self": "x"}}, None),
        ("github", ["not", "a", "mapping"], None),
    ],
)
def test_the_pull_requests_page_in_the_answer(flavour: pr.Flavour, answer: Any, page: str | None) -> None:
    if flavour == "bitbucket_cloud":
        page = "https://bitbucket.org/w/r/pull-requests/3"
    assert pr.page_of(flavour, answer) == page


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"message": "Validation Failed", "errors": [{"message": "exists"}]}, "Validation Failed; exists"),
        ({"message": ["Another open merge request"]}, "Another open merge request"),
        ({"message": {"source_branch": ["is invalid"]}}, "source_branch is invalid"),
        ({"type": "error", "error": {"message": "bad branch"}}, "bad branch"),
        ({"errors": [{"message": "Only one pull request"}]}, "Only one pull request"),
        ({"error": "insufficient_scope"}, "insufficient_scope"),
        ("text", None),
        ({}, None),
    ],
)
def test_the_providers_words_for_a_refusal(answer: Any, words: str | None) -> None:
    assert pr.problem_of(answer) == words


def _repo(provider: str, url: str, credential: GitCredential | None) -> GitRepository:
    repo = GitRepository(provider=provider, url=url, branch="main", path="p", instance_url=None)
    repo.credential = credential
    return repo


def _credential(kind: str, hosts: list[str]) -> tuple[GitCredential, GitAuth]:
    row = GitCredential(name="bot", kind=kind, hosts=hosts, secret_sealed="x")
    return row, GitAuth(kind=kind, secret=Secret(TOKEN), username=None, name="bot")


def test_a_token_bound_to_the_api_host_may_open_pull_requests() -> None:
    row, auth = _credential("token", ["github.com", "api.github.com"])
    plan = pr.plan_of(_repo("github", "https://github.com/org/defs.git", row), auth, loopback_http=False)
    assert isinstance(plan, pr.Plan)
    assert plan.api == pr.Api("github", pr.GITHUB_API, "org", "defs")
    assert TOKEN not in repr(plan)


@pytest.mark.parametrize(
    ("kind", "hosts", "with_credential", "reason"),
    [
        ("token", ["github.com"], False, "the connection has no credential"),
        ("ssh_key", ["github.com"], True, "is an SSH key; the provider's API needs a token credential"),
        ("token", ["github.com"], True, "bound to github.com, not to api.github.com"),
    ],
)
def test_why_a_pull_request_cannot_be_opened(
    kind: str, hosts: list[str], with_credential: bool, reason: str
) -> None:
    row, auth = _credential(kind, hosts)
    repo = _repo("github", "https://github.com/org/defs.git", row if with_credential else None)
    plan = pr.plan_of(repo, auth if with_credential else None, loopback_http=False)
    assert isinstance(plan, str)
    assert reason in plan
    if "bound to" in reason:
        assert "moorage credentials allow-host bot" in plan


# --------------------------------------------------------------------------- the exchange (contract)

FLAVOURS: list[tuple[pr.Flavour, str, str, str, str | None]] = [
    # flavour, owner, name, prefix (what the Api's base adds), username
    ("github", "org", "defs", "/api/v3", None),
    ("gitlab", "group", "defs", "", None),
    ("bitbucket_cloud", "team", "defs", "", "ann"),
    ("bitbucket_data_center", "PLAT", "defs", "/bb", None),
]


def _plan(contract: Contract, flavour: pr.Flavour, token: str = TOKEN) -> pr.Plan:
    base = {
        "github": f"{contract.url}/api/v3",
        "gitlab": f"{contract.url}/api/v4",
        "bitbucket_cloud": f"{contract.url}/2.0",
        "bitbucket_data_center": f"{contract.url}/bb/rest/api/1.0",
    }[flavour]
    return pr.Plan(pr.Api(flavour, base, contract.owner, contract.name), Secret(token), contract.username)


@pytest.mark.parametrize(("flavour", "owner", "name", "prefix", "username"), FLAVOURS)
async def test_a_pull_request_is_opened_as_the_provider_documents(
    flavour: pr.Flavour, owner: str, name: str, prefix: str, username: str | None
) -> None:
    with serve(Contract(flavour, TOKEN, owner, name, prefix=prefix, username=username)) as contract:
        result = await pr.open_pull_request(_plan(contract, flavour), PROPOSAL, policy=LOOPBACK)
        assert result == pr.Result(True, f"{contract.url}/{owner}/{name}/pull/1")
        assert contract.opened == {PROPOSAL.head: 1}
        again = await pr.open_pull_request(_plan(contract, flavour), PROPOSAL, policy=LOOPBACK)
    assert not again.opened
    assert again.reason is not None
    assert again.reason.startswith("the provider refused to open the pull request (HTTP 4")
    assert "already exists" in again.reason


@pytest.mark.parametrize(("flavour", "owner", "name", "prefix", "username"), FLAVOURS)
async def test_a_refused_token_is_a_reason_that_never_shows_the_token(
    flavour: pr.Flavour, owner: str, name: str, prefix: str, username: str | None, caplog: Any
) -> None:
    caplog.set_level("DEBUG")
    with serve(Contract(flavour, "the-right-one", owner, name, prefix=prefix, username=username)) as contract:
        result = await pr.open_pull_request(_plan(contract, flavour), PROPOSAL, policy=LOOPBACK)
    assert not result.opened
    assert result.reason is not None
    assert "HTTP 401" in result.reason
    assert "the token was refused" in result.reason
    assert TOKEN not in result.reason
    assert TOKEN not in caplog.text
    assert contract.opened == {}


async def test_a_provider_echoing_the_token_is_masked() -> None:
    body = json.dumps({"message": f"token {TOKEN} lacks the scope"}).encode()
    with serve(Contract("github", TOKEN, "o", "r")) as contract:
        contract.answer_override = (403, body, {"Content-Type": "application/json"})
        result = await pr.open_pull_request(_plan(contract, "github"), PROPOSAL, policy=LOOPBACK)
    assert result.reason is not None
    assert TOKEN not in result.reason
    assert "token **** lacks the scope" in result.reason
    assert "may not open pull requests here" in result.reason


async def test_an_oversized_answer_is_not_read_whole() -> None:
    huge = b'{"html_url": "' + b"x" * (pr.MAX_ANSWER_BYTES * 4) + b'"}'
    with serve(Contract("github", TOKEN, "o", "r")) as contract:
        contract.answer_override = (201, huge, {"Content-Type": "application/json"})
        result = await pr.open_pull_request(_plan(contract, "github"), PROPOSAL, policy=LOOPBACK)
    assert result == pr.Result(False, None, "the provider's answer was larger than 256 KiB")


async def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else() -> None:
    with (
        serve(Contract("github", TOKEN, "o", "r")) as elsewhere,
        serve(Contract("github", TOKEN, "o", "r")) as api,
    ):
        api.answer_override = (307, b"", {"Location": f"{elsewhere.url}/steal"})
        result = await pr.open_pull_request(_plan(api, "github"), PROPOSAL, policy=LOOPBACK)
    assert not result.opened
    assert result.reason is not None
    assert "HTTP 307" in result.reason
    assert elsewhere.received == []


async def test_the_servers_egress_policy_applies_to_the_provider_api() -> None:
    with serve(Contract("github", TOKEN, "o", "r")) as contract:
        result = await pr.open_pull_request(_plan(contract, "github"), PROPOSAL, policy=EgressPolicy())
    assert not result.opened
    assert result.reason is not None
    assert "the server may not connect to the provider's API" in result.reason
    assert "loopback" in result.reason
    assert contract.received == []


async def test_an_unreachable_api_is_a_reason() -> None:
    with serve(Contract("github", TOKEN, "o", "r")) as contract:
        plan = _plan(contract, "github")
    result = await pr.open_pull_request(plan, PROPOSAL, policy=LOOPBACK, timeout=5)
    assert not result.opened
    assert result.reason is not None
    assert "could not be reached" in result.reason
    assert TOKEN not in result.reason


async def test_propose_falls_back_to_the_providers_form() -> None:
    link = "https://github.com/o/r/compare/main...x?expand=1"
    assert await pr.propose("no credential", PROPOSAL, link, policy=LOOPBACK) == pr.Result(
        False, link, "no credential"
    )
    with serve(Contract("github", "the-right-one", "o", "r", prefix="/api/v3")) as contract:
        refused = await pr.propose(_plan(contract, "github"), PROPOSAL, link, policy=LOOPBACK)
    assert refused.url == link
    assert refused.reason is not None
    assert "HTTP 401" in refused.reason


async def test_the_api_is_reached_at_the_address_the_egress_check_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name is resolved once, by the egress check, and that address is used (no second lookup
    that could answer elsewhere); the Host header keeps the name."""
    asked: list[tuple[str, int]] = []

    async def vet(host: str, port: int, policy: EgressPolicy) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    monkeypatch.setattr(egress, "vet", vet)
    with serve(Contract("github", TOKEN, "o", "r", prefix="/api/v3")) as contract:
        port = int(contract.url.rpartition(":")[2])
        plan = pr.Plan(pr.Api("github", f"http://api.example.test:{port}/api/v3", "o", "r"), Secret(TOKEN))
        result = await pr.open_pull_request(plan, PROPOSAL, policy=EgressPolicy())
    assert result.opened
    assert asked == [("api.example.test", port)]
    assert contract.received[0]["headers"]["Host"] == f"api.example.test:{port}"
