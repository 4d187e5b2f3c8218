from pathlib import Path
from typing import Any

import pytest

from moorage.agent.jobs import MAX_BUNDLE_FILES, BundleError, _redacted, load_bundle, write_bundle

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gitops-repo"


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.yaml", "a/../../b.yaml", ""])
def test_paths_outside_the_bundle_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BundleError, match="not a relative path"):
        write_bundle({name: "x"}, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=f"at most {MAX_BUNDLE_FILES}"):
        write_bundle({f"f{i}.yaml": "" for i in range(MAX_BUNDLE_FILES + 1)}, tmp_path)


def test_the_example_repository_loads_from_a_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLE / "keys" / "test-only.agekey"))
    files = {str(p.relative_to(EXAMPLE)): p.read_text() for p in EXAMPLE.rglob("*") if p.is_file()}
    cluster, plan, _ = load_bundle({"files": files, "root": "import-cluster.yaml"})
    assert cluster.name == "demo-cluster"
    assert {"webapp", "stateful"} <= set(cluster.addons)
    assert len(plan.order) == len(cluster.addons) + len(cluster.manifests)


def test_an_invalid_bundle_names_the_problem() -> None:
    text = "apiVersion: v1\nkind: ImportCluster\nmetadata: {name: x}\nspec:\n  stackz: []\n"
    files = {"import-cluster.yaml": text}
    with pytest.raises(BundleError, match="did you mean 'stacks'"):
        load_bundle({"files": files})


def test_secret_values_are_masked_in_resource_browsing() -> None:
    secret: dict[str, Any] = {
        "kind": "Secret",
        "data": {"password": "aHVudGVyMg=="},
        "metadata": {"name": "s"},
    }
    assert _redacted(secret)["data"] == {"password": "********"}
    assert secret["data"]["password"] == "aHVudGVyMg=="  # the original is untouched
