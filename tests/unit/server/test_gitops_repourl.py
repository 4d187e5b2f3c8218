"""The rules for repository URLs, identities, links, branches, file paths and revisions."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.server.gitops import repourl
from moorage.server.gitops.repourl import (
    PROVIDERS,
    Provider,
    RepoIdentity,
    RepoInputError,
    check_branch,
    check_repo_path,
    check_revision,
    check_url,
    commit_url,
    files_url,
    identity_from_fields,
    identity_of,
    scheme_of,
    web_url,
)

SHA = "3f786850e387550fdab836ed7e6dc881de23001b"

# --------------------------------------------------------------------------- check_url


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/platform.git",
        "http://127.0.0.1:8080/org/cluster-config.git",
        "https://bitbucket.example.com/scm/PROJ/repo.git",
        "https://x-token-auth@bitbucket.org/ws/slug.git",
        "ssh://git@github.com/acme/platform.git",
        "ssh://git@bitbucket.example.com:7999/proj/repo.git",
        "ssh://git@[2001:db8::1]:22/acme/platform.git",
        "git://git.example.com/acme/platform.git",
        "git@github.com:acme/platform.git",
        "git@[2001:db8::1]:acme/platform.git",
        "git@[git.example.com:2222]:acme/platform.git",
        "git@git_host-1.example.com:acme/platform.git",
        "HTTPS://GitHub.com/Acme/Platform",
        "https://github.com/acme/platform.git?ref=x#frag",
    ],
)
def test_check_url_accepts(url: str) -> None:
    assert check_url(url) == url


def test_check_url_strips_surrounding_whitespace() -> None:
    assert check_url("  https://github.com/acme/platform.git\n") == "https://github.com/acme/platform.git"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://github.com/" + "a" * 2048, "longer than 2048"),
        ("https://github.com/acme/plat form.git", "spaces or control"),
        ("https://github.com/acme/platform\x00.git", "spaces or control"),
        ("https://github.com/acme/\u202eplatform.git", "spaces or control"),
        ("https://github.com/acme%0a/platform.git", "encoded control"),
        ("-uhttps://github.com/acme/x", "must not start with '-'"),
        ("--upload-pack=touch /tmp/pwned", "must not start with '-'"),
        ("ext::sh -c touch% /tmp/pwned", "remote helpers are not allowed"),
        ("ext::ssh", "remote helpers are not allowed"),
        ("fd::17", "remote helpers are not allowed"),
        ("foo::bar", "remote helpers are not allowed"),
        ("file:///srv/repo.git", "MOORAGE_GIT_ALLOW_FILE=1"),
        ("FILE:///srv/repo.git", "MOORAGE_GIT_ALLOW_FILE=1"),
        ("/srv/repo.git", "use a URL; local repositories need file:// and MOORAGE_GIT_ALLOW_FILE=1"),
        ("./repo", "use a URL; local repositories need file://"),
        ("../x", "use a URL; local repositories need file://"),
        ("C:\\x", "use a URL; local repositories need file://"),
        ("C:/x", "use a URL; local repositories need file://"),
        ("~/repo", "use a URL; local repositories need file://"),
        ("repo.git", "use a URL; local repositories need file://"),
        ("github.com/acme/platform", "use a URL; local repositories need file://"),
        ("ftp://example.com/acme/platform.git", "use https://, http://, ssh://, git:// or user@host:path"),
        ("git+ssh://example.com/acme/platform.git", "is not allowed"),
        ("mailto:someone", "use https://, http://, ssh://, git:// or user@host:path"),
        ("https:github.com/acme/platform", "not supported"),
        ("https://user:s3cret@github.com/acme/platform.git", "moorage credentials create"),
        ("ssh://git:s3cret@github.com/acme/platform.git", "instead of the URL"),
        ("https://user:@github.com/acme/platform.git", "instead of the URL"),
        ("user:s3cret@github.com:acme/platform.git", "instead of the URL"),
        ("https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/a/b.git", "instead of the URL"),
        ("https:///acme/platform.git", "no host"),
        ("ssh:///acme/platform.git", "no host"),
        ("git://:9418/acme/platform.git", "no host"),
        ("https://github.com", "no repository path"),
        ("https://github.com/", "no repository path"),
        ("git@github.com:", "no repository path"),
        ("git@github.com:-x/y", "path must not start with '-'"),
        ("ssh://-oProxyCommand=x/acme/platform", "host must not start with '-'"),
        ("ssh://-oProxyCommand=x@host/acme/platform", "user name must not start with '-'"),
        ("git@-oProxyCommand=x:acme/platform", "host must not start with '-'"),
        # issue 18 item 12: the bracketed scp-like host once hid the '-' from the check
        ("user@[-oProxyCommand=id]:a/b", "host must not start with '-'"),
        ("git@[-oProxyCommand=id:22]:acme/platform", "host must not start with '-'"),
        ("ssh://git@[-oProxyCommand=id]/a/b", "malformed"),
        ("git@[a=b]:acme/platform", "the host may hold only letters, digits"),
        ("git@[host;id]:acme/platform", "the host may hold only letters, digits"),
        ("git@host=x:acme/platform", "the host may hold only letters, digits"),
        ("https://github.com:99999/acme/platform", "malformed"),
        ("https://github.com:port/acme/platform", "malformed"),
        ("http://[::1/acme/platform", "malformed"),
        ("https://github.com\\@evil.example/acme/x", "must not contain '\\'"),
    ],
)
def test_check_url_refuses(url: str, says: str) -> None:
    with pytest.raises(RepoInputError) as caught:
        check_url(url)
    assert says in caught.value.message
    assert str(caught.value) == caught.value.message


def test_file_urls_need_the_admin_switch() -> None:
    assert check_url("file:///srv/repo.git", allow_file=True) == "file:///srv/repo.git"
    with pytest.raises(RepoInputError, match="no repository path"):
        check_url("file:///", allow_file=True)
    with pytest.raises(RepoInputError, match="local path"):
        check_url("/srv/repo.git", allow_file=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:hunter2-Secret@github.com/acme/platform.git",
        "http://alice:hunter2-Secret@127.0.0.1:8080/org/x.git",
        "ssh://git:hunter2-Secret@github.com/acme/platform.git",
        "alice:hunter2-Secret@github.com:acme/platform.git",
        "https://alice:hunter2-Secret@github.com:99999/acme/platform.git",
        "https://alice:hunter2-Secret@/acme/platform.git",
        "ftp://alice:hunter2-Secret@example.com/x.git",
        "https://alice:hunter2-Secret@github.com/acme/plat form.git",
        "ext::alice:hunter2-Secret@github.com",
        "-alice:hunter2-Secret@github.com:acme/x",
    ],
)
def test_messages_never_contain_the_password(url: str) -> None:
    with pytest.raises(RepoInputError) as caught:
        check_url(url)
    assert "hunter2" not in caught.value.message
    assert "hunter2" not in str(caught.value)


def _refusal(url: str, *, allow_file: bool = False) -> RepoInputError | None:
    """The error check_url raises, if any (anything else propagates and fails the test)."""
    try:
        check_url(url, allow_file=allow_file)
    except RepoInputError as error:
        return error
    return None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_check_url_only_returns_or_refuses(text: str) -> None:
    error = _refusal(text)
    if error is None:
        assert check_url(text) == text.strip()
    else:
        assert error.message


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["https://", "http://", "ssh://", "git://", "file://", "", "git@"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
)
def test_check_url_on_url_shaped_text(prefix: str, rest: str) -> None:
    for allow_file in (False, True):
        error = _refusal(prefix + rest, allow_file=allow_file)
        assert error is None or error.message


# --------------------------------------------------------------------------- scheme_of


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("https://github.com/a/b.git", "https"),
        ("HTTP://example.com/a/b", "http"),
        ("ssh://git@example.com/a/b", "ssh"),
        ("git://example.com/a/b", "git"),
        ("file:///tmp/a/b", "file"),
        ("git@github.com:a/b.git", "ssh"),
    ],
)
def test_scheme_of(url: str, scheme: str) -> None:
    assert scheme_of(url) == scheme


@pytest.mark.parametrize("url", ["/srv/repo", "ftp://x/y", "foo:bar", ""])
def test_scheme_of_refuses_what_is_not_a_supported_url(url: str) -> None:
    with pytest.raises(RepoInputError):
        scheme_of(url)


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize(
    ("url", "identity"),
    [
        ("https://github.com/Acme/Platform.git", "acme/platform"),
        ("git@github.com:acme/platform.git", "acme/platform"),
        ("https://bitbucket.example.com/scm/PROJ/repo.git", "proj/repo"),
        ("http://127.0.0.1:8080/org/cluster-config.git", "org/cluster-config"),
        ("file:///tmp/x/org/repo.git", "org/repo"),
        ("https://github.com/acme/platform/", "acme/platform"),
        ("https://github.com/acme/platform.git///", "acme/platform"),
        ("ssh://git@bitbucket.example.com:7999/proj/repo.git", "proj/repo"),
        ("https://user@bitbucket.org/ws/slug.GIT", "ws/slug"),
        ("https://github.com/acme/platform?x=1#y", "acme/platform"),
    ],
)
def test_identity_of(url: str, identity: str) -> None:
    found = identity_of(url)
    assert found is not None
    assert str(found) == identity


@pytest.mark.parametrize(
    "url",
    ["https://github.com/platform.git", "https://github.com/", "git@github.com:x", "/srv/a/b", "", "a/.git"],
)
def test_identity_of_needs_two_segments(url: str) -> None:
    assert identity_of(url) is None


def test_identity_compares_case_insensitively() -> None:
    assert RepoIdentity("Acme", "Platform") == RepoIdentity("acme", "platform")
    assert RepoIdentity("Acme", "Platform").owner == "acme"


@pytest.mark.parametrize(
    ("provider", "fields", "identity"),
    [
        ("github", {"repository": "Acme/Platform"}, "acme/platform"),
        ("github", {"repository": " acme/platform.git "}, "acme/platform"),
        ("bitbucket_cloud", {"workspace": "WS", "repo_slug": "slug"}, "ws/slug"),
        ("bitbucket_data_center", {"project_key": "PROJ", "repo_slug": "repo"}, "proj/repo"),
        ("bitbucket_data_center", {"project_key": "~alice", "repo_slug": "repo"}, "~alice/repo"),
    ],
)
def test_identity_from_fields(provider: Provider, fields: dict[str, str], identity: str) -> None:
    assert str(identity_from_fields(provider, **fields)) == identity


@pytest.mark.parametrize("provider", PROVIDERS)
def test_identity_from_fields_none_when_not_given(provider: Provider) -> None:
    assert identity_from_fields(provider) is None
    assert identity_from_fields(provider, repository="", workspace=" ", repo_slug=None) is None


@pytest.mark.parametrize(
    ("provider", "fields", "says"),
    [
        ("github", {"repository": "platform"}, "exactly one '/'"),
        ("github", {"repository": "acme/platform/extra"}, "exactly one '/'"),
        ("github", {"repository": "/platform"}, "must not be empty"),
        ("github", {"repository": "acme/.."}, "must not be empty, '.' or '..'"),
        ("github", {"repository": "ac me/platform"}, "spaces"),
        ("github", {"repository": "acme/" + "x" * 300}, "longer than 255"),
        ("github", {"workspace": "ws"}, "does not apply to github"),
        ("bitbucket_cloud", {"workspace": "ws"}, "give repo_slug"),
        ("bitbucket_cloud", {"repo_slug": "slug"}, "give workspace"),
        ("bitbucket_cloud", {"workspace": "ws", "repo_slug": "a/b"}, "must not contain '/'"),
        ("bitbucket_cloud", {"repository": "ws/slug"}, "does not apply"),
        ("bitbucket_data_center", {"project_key": "P", "workspace": "w"}, "does not apply"),
        ("bitbucket_data_center", {"project_key": "P"}, "give repo_slug"),
    ],
)
def test_identity_from_fields_refuses(provider: Provider, fields: dict[str, str], says: str) -> None:
    with pytest.raises(RepoInputError) as caught:
        identity_from_fields(provider, **fields)
    assert says in caught.value.message


# --------------------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("url", "provider", "instance_url", "web"),
    [
        ("https://github.com/Acme/Platform.git", "github", None, "https://github.com/Acme/Platform"),
        ("https://alice@github.com/acme/platform.git/", "github", None, "https://github.com/acme/platform"),
        ("git@github.com:acme/platform.git", "github", None, "https://github.com/acme/platform"),
        (
            "ssh://git@ssh.github.com:443/acme/platform.git",
            "github",
            None,
            "https://github.com/acme/platform",
        ),
        ("git@bitbucket.org:ws/slug.git", "bitbucket_cloud", None, "https://bitbucket.org/ws/slug"),
        (
            "https://x-token-auth@bitbucket.org/ws/slug.git",
            "bitbucket_cloud",
            None,
            "https://bitbucket.org/ws/slug",
        ),
        (
            "http://127.0.0.1:8080/org/cluster-config.git",
            "github",
            None,
            "http://127.0.0.1:8080/org/cluster-config",
        ),
        ("https://github.com/acme/platform?x=1", "github", None, "https://github.com/acme/platform"),
        ("git@ghe.example.com:acme/platform.git", "github", None, None),
        (
            "git@ghe.example.com:acme/platform.git",
            "github",
            "https://ghe.example.com/",
            "https://ghe.example.com/acme/platform",
        ),
        ("file:///tmp/org/repo.git", "github", None, None),
        ("file:///tmp/org/repo.git", "bitbucket_data_center", "https://bb.example.com", None),
        ("ext::sh", "github", None, None),
        ("https://user:secret@github.com/a/b.git", "github", None, None),
        (
            "https://bitbucket.example.com/scm/PROJ/repo.git",
            "bitbucket_data_center",
            None,
            "https://bitbucket.example.com/projects/PROJ/repos/repo",
        ),
        (
            "https://example.com:8443/bitbucket/scm/PROJ/repo.git",
            "bitbucket_data_center",
            None,
            "https://example.com:8443/bitbucket/projects/PROJ/repos/repo",
        ),
        (
            "https://clone.example.com/scm/PROJ/repo.git",
            "bitbucket_data_center",
            "https://bitbucket.example.com/",
            "https://bitbucket.example.com/projects/PROJ/repos/repo",
        ),
        (
            "ssh://git@bitbucket.example.com:7999/proj/repo.git",
            "bitbucket_data_center",
            "https://bitbucket.example.com",
            "https://bitbucket.example.com/projects/proj/repos/repo",
        ),
        ("ssh://git@bitbucket.example.com:7999/proj/repo.git", "bitbucket_data_center", None, None),
    ],
)
def test_web_url(url: str, provider: Provider, instance_url: str | None, web: str | None) -> None:
    assert web_url(url, provider, instance_url=instance_url) == web


@pytest.mark.parametrize(
    ("provider", "commit"),
    [
        ("github", f"https://h/o/r/commit/{SHA}"),
        ("bitbucket_cloud", f"https://h/o/r/commits/{SHA}"),
        ("bitbucket_data_center", f"https://h/o/r/commits/{SHA}"),
    ],
)
def test_commit_url(provider: Provider, commit: str) -> None:
    assert commit_url("https://h/o/r", provider, SHA) == commit
    assert commit_url(None, provider, SHA) is None


@pytest.mark.parametrize(
    ("provider", "directory", "files"),
    [
        ("github", "clusters/dev", f"https://h/o/r/tree/{SHA}/clusters/dev"),
        ("github", "", f"https://h/o/r/tree/{SHA}"),
        ("github", ".", f"https://h/o/r/tree/{SHA}"),
        ("github", "/clusters/dev/", f"https://h/o/r/tree/{SHA}/clusters/dev"),
        ("github", "./clusters/my dev", f"https://h/o/r/tree/{SHA}/clusters/my%20dev"),
        ("bitbucket_cloud", "clusters/dev", f"https://h/o/r/src/{SHA}/clusters/dev"),
        ("bitbucket_cloud", ".", f"https://h/o/r/src/{SHA}"),
        ("bitbucket_data_center", "clusters/dev", f"https://h/o/r/browse/clusters/dev?at={SHA}"),
        ("bitbucket_data_center", "", f"https://h/o/r/browse?at={SHA}"),
    ],
)
def test_files_url(provider: Provider, directory: str, files: str) -> None:
    assert files_url("https://h/o/r", provider, SHA, directory) == files
    assert files_url(None, provider, SHA, directory) is None


# --------------------------------------------------------------------------- branch, path, revision


@pytest.mark.parametrize(
    "branch", ["main", "release/1.2", "feature/x-y_z", "v1.0", "a" * 255, "ünïcode", "a.b/c.d", "@x", "x@y"]
)
def test_check_branch_accepts(branch: str) -> None:
    assert check_branch(branch) == branch


@pytest.mark.parametrize(
    ("branch", "says"),
    [
        ("", "empty"),
        ("a" * 256, "longer than 255"),
        ("-main", "start with '-' or '/'"),
        ("/main", "start with '-' or '/'"),
        ("a..b", "'..'"),
        ("a@{1}", "'@{'"),
        ("a//b", "'//'"),
        ("a\x01b", "control characters"),
        ("a\x7fb", "control characters"),
        ("my branch", "spaces"),
        ("a~1", "~ ^ : ? * [ \\"),
        ("a^", "~ ^ : ? * [ \\"),
        ("a:b", "~ ^ : ? * [ \\"),
        ("a?", "~ ^ : ? * [ \\"),
        ("a*", "~ ^ : ? * [ \\"),
        ("a[b", "~ ^ : ? * [ \\"),
        ("a\\b", "~ ^ : ? * [ \\"),
        ("main/", "end with '/', '.' or '.lock'"),
        ("main.", "end with '/', '.' or '.lock'"),
        ("main.lock", "end with '/', '.' or '.lock'"),
        ("a.lock/b", "end with '.lock'"),
        (".hidden", "start with '.'"),
        ("a/.hidden", "start with '.'"),
        ("@", "reserved"),
        ("HEAD", "reserved"),
    ],
)
def test_check_branch_refuses(branch: str, says: str) -> None:
    with pytest.raises(RepoInputError) as caught:
        check_branch(branch)
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("path", "normalised"),
    [
        ("cluster.yaml", "cluster.yaml"),
        ("clusters/dev/cluster.yml", "clusters/dev/cluster.yml"),
        ("  clusters/dev.yaml\n", "clusters/dev.yaml"),
        ("my clusters/dev.yaml", "my clusters/dev.yaml"),
        ("a/.b/c.yaml", "a/.b/c.yaml"),
    ],
)
def test_check_repo_path_accepts(path: str, normalised: str) -> None:
    assert check_repo_path(path) == normalised


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("", "1 to 512"),
        ("   ", "1 to 512"),
        ("a/" * 256 + "c.yaml", "1 to 512"),
        ("a\x00.yaml", "control characters"),
        ("a\\b.yaml", "'\\'"),
        ("/etc/cluster.yaml", "relative"),
        ("-c.yaml", "must not start with '-'"),
        ("../cluster.yaml", "'..'"),
        ("a/../cluster.yaml", "'..'"),
        ("./cluster.yaml", "'.'"),
        ("a//cluster.yaml", "empty parts"),
        ("cluster.json", ".yaml or .yml"),
        ("clusters/", "empty parts"),
        ("cluster.yaml.txt", ".yaml or .yml"),
    ],
)
def test_check_repo_path_refuses(path: str, says: str) -> None:
    with pytest.raises(RepoInputError) as caught:
        check_repo_path(path)
    assert says in caught.value.message


@pytest.mark.parametrize(
    ("revision", "normalised"),
    [
        ("abcdef1", "abcdef1"),
        (SHA.upper(), SHA),
        ("a" * 40, "a" * 40),
        ("0123456789abcdef" * 4, "0123456789abcdef" * 4),
    ],
)
def test_check_revision_accepts(revision: str, normalised: str) -> None:
    assert check_revision(revision) == normalised


@pytest.mark.parametrize(
    "revision",
    ["", "abcdef", "a" * 41, "a" * 63, "a" * 65, "main", "HEAD~1", "-x", "abcdefg", f"{SHA}\n", " abcdef1"],
)
def test_check_revision_refuses(revision: str) -> None:
    with pytest.raises(RepoInputError, match=r"give a commit SHA \(7 to 40 hexadecimal characters\)"):
        check_revision(revision)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=70), st.text(alphabet="0123456789abcdefABCDEFg", max_size=70)))
def test_check_revision_accepts_exactly_the_hex_forms(text: str) -> None:
    is_hex = text != "" and all(ch in string.hexdigits for ch in text)
    if is_hex and (7 <= len(text) <= 40 or len(text) == 64):
        assert check_revision(text) == text.lower()
    else:
        with pytest.raises(RepoInputError):
            check_revision(text)


@pytest.mark.parametrize(
    ("provider", "web", "expected"),
    [
        (
            "github",
            "https://github.com/acme/platform",
            "https://github.com/acme/platform/blob/abc/addons/web%20app.yaml#L7",
        ),
        (
            "bitbucket_cloud",
            "https://bitbucket.org/ws/repo",
            "https://bitbucket.org/ws/repo/src/abc/addons/web%20app.yaml#lines-7",
        ),
        (
            "bitbucket_data_center",
            "https://git.example.com/projects/P/repos/r",
            "https://git.example.com/projects/P/repos/r/browse/addons/web%20app.yaml?at=abc#7",
        ),
    ],
)
def test_file_url_points_at_the_line(provider: repourl.Provider, web: str, expected: str) -> None:
    assert repourl.file_url(web, provider, "abc", "addons/web app.yaml", 7) == expected
    assert repourl.file_url(None, provider, "abc", "x.yaml", 1) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com",
        " https://git.example.com/ ",
        "https://bb.example.com:8443/bitbucket",
        "http://10.0.0.5",
    ],
)
def test_an_instance_url_names_a_host_and_no_repository(url: str) -> None:
    assert repourl.check_instance_url(url) == url.strip()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("", "1 to 2048 characters"),
        ("ftp://git.example.com", "https:// address with a host"),
        ("git.example.com", "https:// address with a host"),
        ("https://", "https:// address with a host"),
        ("https://ann:tok@git.example.com", "user, password, query or fragment"),
        ("https://git.example.com/?next=x", "user, password, query or fragment"),
        ("https://git.example.com/a b", "spaces, control characters"),
        ("https://git.example.com/%0a", "spaces, control characters"),
        ("https://git.example.com:99999", "malformed"),
        ("https://-x.example.com", "https:// address with a host"),
    ],
)
def test_a_bad_instance_url_is_refused_without_repeating_it(url: str, words: str) -> None:
    with pytest.raises(RepoInputError) as e:
        repourl.check_instance_url(url)
    assert words in e.value.message
    assert "tok" not in e.value.message
