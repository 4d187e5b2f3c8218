"""spec.git_repository as a clone URL, and a connection that points elsewhere (issue 16, item 6)."""

import pytest

from moorage.spec.gitsource import clone_url, mismatch
from moorage.spec.models import GitRepository

URL_OK = "https://github.com/acme/platform.git"


def _repo(**fields: str) -> GitRepository:
    return GitRepository.model_validate({"credential_name": "git", "branch": "main", **fields})


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"repository": "acme/platform"}, "https://github.com/acme/platform.git"),
        (
            {"provider": "bitbucket_cloud", "workspace": "acme", "repo_slug": "platform"},
            "https://bitbucket.org/acme/platform.git",
        ),
        (
            {
                "provider": "bitbucket_data_center",
                "project_key": "OPS",
                "repo_slug": "platform",
                "instance_url": "https://git.acme.example/",
            },
            "https://git.acme.example/scm/OPS/platform.git",
        ),
    ],
)
def test_clone_url(fields: dict[str, str], url: str) -> None:
    repo = _repo(**fields)
    assert clone_url(repo) == url
    assert mismatch(repo, url, "main") == ""


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/platform.git",
        "https://github.com/Acme/Platform",
        "git@github.com:acme/platform.git",
        "ssh://git@github.com/acme/platform.git",
        "http://127.0.0.1:9999/acme/platform.git",  # a mirror or a test server with the same path
    ],
)
def test_same_repository(url: str) -> None:
    assert mismatch(_repo(repository="acme/platform"), url, "main") == ""


def test_other_repository_and_branch() -> None:
    repo = _repo(repository="acme/platform")
    assert mismatch(repo, "https://github.com/acme/other.git", "dev") == (
        "the definition's spec.git_repository names repository acme/platform "
        "(connected: https://github.com/acme/other.git) and branch main (connected: dev)"
    )
    assert (
        mismatch(repo, URL_OK, "dev")
        == "the definition's spec.git_repository names branch main (connected: dev)"
    )
    assert mismatch(repo, "https://github.com/notacme/platform.git", "main") != ""
