"""`glob:` patterns in encrypted_paths, as the Ankra CLI writes them (issue 16, item 6)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from moorage.spec.sops import find_sops, listed_matches
from tests.unit.spec.helpers import EXAMPLE_KEY, HEADER, Loader, issues

ROOT = "import-cluster.yaml"
RECIPIENT = next(
    line.split(": ", 1)[1] for line in EXAMPLE_KEY.read_text().splitlines() if line.startswith("# public key")
)

YAML_IO = ("--input-type", "yaml", "--output-type", "yaml", "/dev/stdin")
SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: apps}
stringData:
  DB_HOST: db.internal
  DB_PASSWORD: Sup3r-s3cret-value
  DB_USER: admin-user
  OTHER: kept-plain
"""


def _encrypt(text: str, regex: str) -> str:
    sops = find_sops()
    assert sops is not None
    done = subprocess.run(
        [sops, "encrypt", "--age", RECIPIENT, "--encrypted-regex", regex, *YAML_IO],
        input=text.encode(),
        capture_output=True,
        check=True,
        env={"SOPS_DISABLE_VERSION_CHECK": "1", "PATH": "/usr/bin:/bin"},
    )
    return done.stdout.decode()


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLE_KEY))


@pytest.mark.parametrize(
    ("entry", "paths"),
    [
        ("glob:stringData.DB_*", ["stringData.DB_HOST", "stringData.DB_PASSWORD", "stringData.DB_USER"]),
        ("glob:DB_*", ["stringData.DB_HOST", "stringData.DB_PASSWORD", "stringData.DB_USER"]),
        ("glob:*_PASSWORD", ["stringData.DB_PASSWORD"]),
        ("glob:data.DB_*", []),
        ("glob:*.OTHER", ["stringData.OTHER"]),
        ("stringData.DB_USER", ["stringData.DB_USER"]),
        ("DB_*", []),  # without glob: the name is literal
    ],
)
def test_listed_matches(entry: str, paths: list[str]) -> None:
    import yaml

    tree = yaml.safe_load(SECRET)
    assert [".".join(map(str, p)) for p, _ in listed_matches(tree, entry)] == paths


def _manifest_def(listed: str) -> str:
    return HEADER + (
        "  stacks:\n    - name: s\n      manifests:\n        - name: db\n          from_file: secret.yaml\n"
        f"          encrypted_paths: ['{listed}']\n"
    )


def test_glob_all_encrypted_is_valid(repo: Loader, key_env: None) -> None:
    enc = _encrypt(SECRET, "^DB_")
    result = repo({ROOT: _manifest_def("glob:stringData.DB_*"), "secret.yaml": enc})
    assert result.ok, result.report.to_text()
    assert not issues(result, "encrypted-paths")


def test_glob_finds_the_plaintext_key(repo: Loader, key_env: None) -> None:
    enc = _encrypt(SECRET, "^DB_(HOST|PASSWORD)$")  # DB_USER left in plaintext
    result = repo({ROOT: _manifest_def("glob:stringData.DB_*"), "secret.yaml": enc})
    found = issues(result, "plaintext-secret")
    assert [i.message for i in found if i.severity == "error"] == [
        "'stringData.DB_USER' is listed in encrypted_paths but is stored in plaintext"
    ], result.report.to_text()
    assert found[0].location is not None
    assert found[0].location.file == "secret.yaml"
    assert "admin-user" not in result.report.to_text()


def test_glob_matching_nothing_warns(repo: Loader, key_env: None) -> None:
    enc = _encrypt(SECRET, "^DB_")
    result = repo({ROOT: _manifest_def("glob:data.DB_*"), "secret.yaml": enc})
    assert [i.message for i in issues(result, "encrypted-paths")] == [
        "encrypted_paths entry 'glob:data.DB_*' matches no key in the content"
    ]


def test_empty_glob_is_an_error(repo: Loader, key_env: None) -> None:
    enc = _encrypt(SECRET, "^DB_")
    result = repo({ROOT: _manifest_def("glob:"), "secret.yaml": enc})
    assert not result.ok
    assert "empty pattern" in issues(result, "encrypted-paths")[0].message


def test_glob_marks_addon_values_secret(repo: Loader, key_env: None, tmp_path: Path) -> None:
    values = "db:\n  DB_PASSWORD: Sup3r-s3cret-value\n  DB_NAME: app\nreplicas: 2\n"
    body = (
        "  stacks:\n    - name: s\n      addons:\n        - name: a\n          chart_name: x\n"
        "          chart_version: '1'\n          registry_name: local\n          namespace: a\n"
        "          configuration: {from_file: v.yaml, encrypted_paths: ['glob:db.DB_*']}\n"
    )
    result = repo({ROOT: HEADER + body, "v.yaml": _encrypt(values, "^DB_")})
    assert result.ok, result.report.to_text()
    assert result.resolved is not None
    masked = result.resolved.addons["a"].values.masked()
    assert masked == {"db": {"DB_PASSWORD": "********", "DB_NAME": "********"}, "replicas": 2}
    assert result.resolved.addons["a"].values.reveal()["db"]["DB_PASSWORD"] == "Sup3r-s3cret-value"
