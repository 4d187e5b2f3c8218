"""Where a credential may be sent: bindings, matching, plain-HTTP refusal (pure)."""

import pytest

from moorage.server import credhosts


@pytest.mark.parametrize(
    ("binding", "stored"),
    [
        ("GitHub.com", "github.com"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("https://Charts.example.com/team/", "https://charts.example.com/team"),
        ("oci://ghcr.io/acme", "oci://ghcr.io/acme"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_normalize(binding: str, stored: str) -> None:
    assert credhosts.normalize(binding) == stored


@pytest.mark.parametrize(
    "binding",
    [
        "",
        "a b",
        "https://u:p@x.example/",
        "https://x.example/?a=1",
        "ftp://x.example/",
        "bad_host!",
        "x:port",
    ],
)
def test_normalize_refuses(binding: str) -> None:
    with pytest.raises(credhosts.BindingError):
        credhosts.normalize(binding)


@pytest.mark.parametrize(
    ("binding", "url", "ok"),
    [
        ("github.com", "https://github.com/acme/x.git", True),
        ("github.com", "git@github.com:acme/x.git", True),
        ("github.com", "https://github.com.evil.example/x.git", False),
        ("github.com", "https://evil.example/github.com/x.git", False),
        ("github.com", "https://user@evil.example/x.git", False),
        ("registry:5000", "oci://registry:5000/charts", True),
        ("registry:5000", "oci://registry:5001/charts", False),
        ("https://charts.example.com/team", "https://charts.example.com/team/stable", True),
        ("https://charts.example.com/team", "https://charts.example.com/team", True),
        ("https://charts.example.com/team", "https://charts.example.com/teamster", False),
        ("https://charts.example.com/team", "http://charts.example.com/team", False),
        ("oci://ghcr.io/acme", "oci://ghcr.io/acme/charts", True),
        ("oci://ghcr.io/acme", "oci://ghcr.io/other", False),
    ],
)
def test_matches(binding: str, url: str, ok: bool) -> None:
    assert credhosts.matches(credhosts.normalize(binding), url) is ok


def test_plain_http_only_to_allowed_loopback() -> None:
    bound = ["127.0.0.1:5000", "http://charts.example.com"]
    assert credhosts.refusal("c", bound, "oci://127.0.0.1:5000/charts", loopback_http=True) is None
    assert "plain HTTP" in (
        credhosts.refusal("c", bound, "oci://127.0.0.1:5000/x", loopback_http=False) or ""
    )
    assert "plain HTTP" in (
        credhosts.refusal("c", bound, "http://charts.example.com/", loopback_http=True) or ""
    )
    assert credhosts.refusal("c", ["x.example"], "git://x.example/a", loopback_http=True) is not None
