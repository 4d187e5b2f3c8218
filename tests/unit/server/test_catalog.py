"""The chart catalog's pure parts and the untrusted parsers it relies on: index files, chart
archives, the global registries file, the diff of default values."""

import contextlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moorage.charts.archive import ArchiveError, read_chart
from moorage.charts.source import ChartSourceError, RegistryAuth, parse_index
from moorage.server.catalog import diff_values, load_registries


def archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_read_chart_keeps_the_top_charts_files_only() -> None:
    schema = {"type": "object"}
    data = archive(
        {
            "web/Chart.yaml": b"name: web\nversion: 1.0.0\ndependencies:\n- name: db\n  version: 2.0.0\n",
            "web/values.yaml": b"replicas: 2\n",
            "web/values.schema.json": json.dumps(schema).encode(),
            "web/README.md": b"# web\n",
            "web/charts/db/values.schema.json": b"not json",  # a subchart's: not read
        }
    )
    files = read_chart(data)
    assert files.chart["name"] == "web"
    assert files.values == {"replicas": 2}
    assert files.schema == schema
    assert files.readme == "# web\n"
    assert files.dependencies == [{"name": "db", "version": "2.0.0"}]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"web/values.yaml": b"a: 1\n"}, "no Chart.yaml"),
        ({"web/Chart.yaml": b"name: web\n", "web/values.schema.json": b"{"}, "not JSON"),
        ({"web/Chart.yaml": b"- a list\n"}, "not a mapping"),
    ],
)
def test_read_chart_refuses_broken_archives(files: dict[str, bytes], message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        read_chart(archive(files))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_read_chart_on_any_bytes_raises_only_archive_error(data: bytes) -> None:
    with contextlib.suppress(ArchiveError):
        read_chart(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=500).map(str.encode))
def test_parse_index_on_any_bytes_raises_only_chart_source_error(data: bytes) -> None:
    reason = "parsed"
    try:
        parse_index(data, "https://charts.example.com")
    except ChartSourceError as e:
        reason = e.reason
    assert reason in ("parsed", "invalid")


def test_parse_index_reads_versions_and_dates() -> None:
    index = b"""apiVersion: v1
entries:
  web:
    - version: 1.1.0
      created: "2026-11-30T10:00:00Z"
      description: a web app
      keywords: [web, http]
      digest: abc
      urls: [web-1.1.0.tgz]
    - version: 1.0.0
    - not-a-mapping
"""
    charts = parse_index(index, "r")
    assert [v.version for v in charts["web"]] == ["1.1.0", "1.0.0"]
    assert charts["web"][0].created == "2026-11-30T10:00:00Z"
    assert charts["web"][0].keywords == ["web", "http"]


def test_a_registry_auth_never_shows_its_secret() -> None:
    auth = RegistryAuth("robot", "s3cret-password", client_key="-----BEGIN PRIVATE KEY-----x")
    assert "s3cret" not in repr(auth)
    assert "s3cret" not in str(auth)
    assert RegistryAuth.from_dict(auth.to_dict()) == auth


def test_the_diff_of_default_values() -> None:
    old: dict[str, Any] = {"replicas": 1, "image": {"tag": "1.0", "pull": "IfNotPresent"}, "gone": True}
    new: dict[str, Any] = {"replicas": 2, "image": {"tag": "1.1", "pull": "IfNotPresent"}, "added": {"x": 1}}
    assert diff_values(old, new) == [
        {"path": "added", "change": "added", "to": {"x": 1}},
        {"path": "gone", "change": "removed", "from": True},
        {"path": "image.tag", "change": "changed", "from": "1.0", "to": "1.1"},
        {"path": "replicas", "change": "changed", "from": 1, "to": 2},
    ]


def test_the_global_registries_file(tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    path.write_text(
        "registries:\n  - name: team\n    url: https://charts.example.com/team\n"
        "    credential_name: team-charts\n"
    )
    (registry,) = load_registries(path)
    assert (registry.name, registry.credential_name) == ("team", "team-charts")
    assert load_registries(None) == []
    for text, message in (
        ("registries:\n  - name: a\n    url: ftp://x\n", "invalid"),
        ("registries:\n  - name: a\n    url: https://x\n    password: p\n", "invalid"),
        ("registries:\n  - {name: a, url: 'https://x'}\n  - {name: a, url: 'https://y'}\n", "unique"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_registries(path)


async def test_an_index_pointing_at_a_forbidden_address_is_not_followed(tmp_path: Path) -> None:
    """SSRF through a chart index: the archive URL leads to a link-local address; the server's egress
    policy is checked for every connection of a fetch, not only the registry's host."""
    from moorage.devcluster.chartsources import serve_chart_repo
    from moorage.server.catalog import Catalog, CatalogError, GlobalRegistry
    from moorage.server.egress import EgressPolicy
    from moorage.server.registries import vet_for

    entry = {"name": "web", "version": "1.0.0", "urls": ["http://169.254.169.254/latest/meta-data.tgz"]}
    (tmp_path / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"web": [entry]}}))
    with serve_chart_repo(tmp_path) as repo:

        async def anonymous(_registry: GlobalRegistry) -> RegistryAuth | None:
            return None

        catalog = Catalog(
            [GlobalRegistry(name="r", url=repo.url)], anonymous, vet=vet_for(EgressPolicy.parse("loopback"))
        )
        assert (await catalog.search("web"))["total"] == 1  # the registry itself is allowed (loopback)
        with pytest.raises(CatalogError, match="may not connect there"):
            await catalog.show("r", "web", "1.0.0")
        refused = Catalog([GlobalRegistry(name="r", url=repo.url)], anonymous, vet=vet_for(EgressPolicy()))
        found = await refused.search("web")
        assert found["total"] == 0
        assert "may not connect there" in found["errors"][0]["message"]


async def test_a_fetch_connects_to_the_address_it_checked(tmp_path: Path) -> None:
    """The checked address is the one connected to (no second resolution): a registry named
    `localhost` is reached at the address the egress check resolved, with its name in Host."""
    from moorage.devcluster.chartsources import serve_chart_repo
    from moorage.server.catalog import Catalog, GlobalRegistry

    (tmp_path / "index.yaml").write_text(json.dumps({"apiVersion": "v1", "entries": {"web": []}}))
    seen: list[tuple[str, int]] = []

    pinned = ["127.0.0.1"]

    async def vet(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return pinned

    async def anonymous(_registry: GlobalRegistry) -> RegistryAuth | None:
        return None

    with serve_chart_repo(tmp_path) as repo:
        port = int(repo.url.rsplit(":", 1)[1])
        catalog = Catalog([GlobalRegistry(name="r", url=f"http://localhost:{port}")], anonymous, vet=vet)
        found = await catalog.search("")
        # and only there: an address where nothing listens, though localhost would answer
        pinned[0] = "127.0.0.2"
        elsewhere = await Catalog(
            [GlobalRegistry(name="r", url=f"http://localhost:{port}")], anonymous, vet=vet
        ).search("")
    assert found["errors"] == []
    assert found["total"] == 1
    assert seen == [("localhost", port), ("localhost", port)]
    assert "unreachable" in elsewhere["errors"][0]["message"]
