import urllib.error
import urllib.request
from pathlib import Path

import pytest

from moorage.devcluster.chartsources import serve_chart_repo


def fetch(url: str, etag: str | None = None) -> tuple[int, bytes, str | None]:
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read(), response.headers["ETag"]
    except urllib.error.HTTPError as e:
        return e.code, b"", e.headers.get("ETag")


def test_index_is_served_with_etag_and_revalidated(tmp_path: Path) -> None:
    (tmp_path / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    with serve_chart_repo(tmp_path) as repo:
        status, body, etag = fetch(f"{repo.url}/index.yaml")
        assert (status, body) == (200, b"apiVersion: v1\nentries: {}\n")
        assert etag
        assert fetch(f"{repo.url}/index.yaml", etag)[0] == 304
        (tmp_path / "index.yaml").write_text("apiVersion: v1\nentries: {a: []}\n")
        status, _, new_etag = fetch(f"{repo.url}/index.yaml", etag)
        assert status == 200
        assert new_etag != etag
        assert repo.requests.statuses("/index.yaml") == [200, 304, 200]


@pytest.mark.parametrize("path", ["/../secret", "/%2e%2e/secret", "/missing.tgz"])
def test_nothing_outside_the_root_is_served(tmp_path: Path, path: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "secret").write_text("no")
    with serve_chart_repo(root) as repo:
        assert fetch(repo.url + path)[0] == 404
