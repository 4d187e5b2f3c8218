"""Issue 18, finding 2: the server does not connect to special addresses named in Git URLs (SSRF),
however the address is spelt, and git connects only to the addresses that were checked."""

import ipaddress
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moorage.devcluster.gitserver import GitServer, WorkTree
from moorage.server import egress
from moorage.server.egress import EgressPolicy, EgressRefused, kind_of, refusal, vet
from moorage.server.gitops.git import Git, GitError
from moorage.server.gitops.repourl import endpoint


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (classified, not bound)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),  # shared address space (carrier NAT)
        ("8.8.8.8", None),
        ("140.82.112.3", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_kind_of_an_address(address: str, kind: str | None) -> None:
    assert kind_of(ipaddress.ip_address(address)) == kind


def test_an_allowed_range_lets_its_addresses_through_and_no_others() -> None:
    policy = EgressPolicy.parse("loopback, 10.0.0.0/8")
    assert refusal("h", ipaddress.ip_address("127.0.0.1"), policy) is None
    assert refusal("h", ipaddress.ip_address("::ffff:127.0.0.1"), policy) is None
    assert refusal("h", ipaddress.ip_address("10.9.9.9"), policy) is None
    problem = refusal("meta", ipaddress.ip_address("169.254.169.254"), policy)
    assert problem is not None
    assert "link-local" in problem
    assert "MOORAGE_EGRESS_ALLOW" in problem
    assert refusal("h", ipaddress.ip_address("192.168.0.1"), EgressPolicy()) is not None


@pytest.mark.parametrize("bad", ["nonsense", "10.0.0.0/33", "loopback,,foo"])
def test_a_bad_allow_list_names_the_item(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an address range"):
        EgressPolicy.parse(bad)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "127.1", "[::1]", "::1"]
)
async def test_every_spelling_of_loopback_is_refused(host: str) -> None:
    with pytest.raises(EgressRefused, match="loopback") as refused:
        await vet(host, 80, EgressPolicy())
    assert not refused.value.temporary
    assert await vet(host, 80, EgressPolicy.parse("loopback"))


async def test_a_name_that_does_not_resolve_is_a_temporary_refusal() -> None:
    with pytest.raises(EgressRefused, match="cannot be resolved") as refused:
        await vet("no-such-host.invalid", 443, EgressPolicy())
    assert refused.value.temporary


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data.git", "link-local"),
        ("http://localhost:6379/a/b.git", "loopback"),
        ("http://[::1]:22/a/b.git", "loopback"),
        ("http://0x7f000001/a/b.git", "loopback"),
        ("http://127.0.0.1:8000/api/v1/a.git", "loopback"),  # the server's own API
        ("ssh://git@10.0.0.5/a/b.git", "private"),
        ("git@192.168.0.10:a/b.git", "private"),
        ("git://[fe80::1]/a/b.git", "link-local"),
    ],
)
def test_connect_refuses_special_addresses(client: TestClient, url: str, kind: str) -> None:
    assert client.post("/api/v1/clusters", json={"name": "c1"}).status_code == 201
    r = client.put("/api/v1/clusters/c1/gitops", json={"url": url})
    assert r.status_code == 422, r.text
    assert kind in r.json()["detail"]
    assert client.get("/api/v1/clusters/c1/gitops/status").json()["git_repo"] is None  # nothing stored


def test_endpoint_gives_the_host_git_connects_to() -> None:
    assert endpoint("https://github.com/a/b.git") == ("https", "github.com", 443)
    assert endpoint("http://[::1]:8022/a/b") == ("http", "::1", 8022)
    assert endpoint("git@host.example:a/b") == ("ssh", "host.example", 22)
    assert endpoint("ssh://git@h.example:2222/a/b") == ("ssh", "h.example", 2222)
    assert endpoint("git://h.example/a/b") == ("git", "h.example", 9418)
    assert endpoint("file:///srv/a.git") is None


@pytest.fixture
def remote(tmp_path: Path) -> object:
    with GitServer(tmp_path / "repos") as srv:
        url = srv.create_repo("org/platform.git")
        WorkTree(tmp_path / "work", url).commit_and_push({"a.yaml": "a: 1\n"}, "first")
        yield url


async def test_git_refuses_a_loopback_repository_unless_allowed(tmp_path: Path, remote: str) -> None:
    with pytest.raises(GitError, match="loopback") as refused:
        await Git(tmp_path / "strict", egress_policy=EgressPolicy()).ls_remote(remote, "main", None)
    assert refused.value.reason == "refused"
    assert not refused.value.temporary
    allowed = Git(tmp_path / "loose", egress_policy=EgressPolicy.parse("loopback"))
    assert await allowed.ls_remote(remote, "main", None) == await allowed.fetch(remote, "main", None)


async def test_git_connects_to_the_checked_address_and_never_resolves_again(
    tmp_path: Path, remote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that git itself could not resolve works when the check pinned its address: so a name
    that resolves elsewhere after the check (DNS rebinding) cannot lead git anywhere else."""
    checked: list[str] = []

    async def pinned(host: str, port: int, policy: EgressPolicy) -> list[str]:
        checked.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(egress, "vet", pinned)
    unresolvable = remote.replace("127.0.0.1", "git.moorage-test.invalid")
    git = Git(tmp_path / "cache", egress_policy=EgressPolicy())
    tip = await git.fetch(unresolvable, "main", None)
    assert len(tip) == 40
    assert checked == ["git.moorage-test.invalid"]
