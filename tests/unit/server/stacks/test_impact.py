"""What an edit changes in the cluster, from the definition before and after it (pure): releases
created, changed (and what of them) or removed, and manifest objects created, changed or removed."""

from pathlib import Path

import pytest

from moorage.server.bundle import validate_tree
from moorage.server.stacks import edits as E
from moorage.server.stacks.impact import impact
from moorage.spec.content import ResolvedCluster

ROOT = "import-cluster.yaml"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n"


def resolved(repo: Path) -> ResolvedCluster:
    found = validate_tree(repo, ROOT).resolved
    assert found is not None
    return found


def after(repo: Path, *edits: E.Edit) -> ResolvedCluster:
    ws = E.Workspace(repo, ROOT)
    for edit in edits:
        ws.apply(edit)
    ws.write_back()
    return resolved(repo)


@pytest.mark.parametrize(
    ("edits", "releases", "objects"),
    [
        (
            [E.SetChartVersion("apps", "webapp", "1.1.0")],
            [("webapp", "changed", ["chart webapp 1.0.0 → webapp 1.1.0"])],
            [],
        ),
        (
            [
                E.AddEntry(
                    "platform",
                    "addon",
                    {
                        "name": "redis",
                        "chart_name": "redis",
                        "chart_version": "2.0.0",
                        "registry_name": "local",
                        "namespace": "cache",
                    },
                )
            ],
            [("redis", "created", None)],
            [],
        ),
        ([E.RemoveEntry("platform", "addon", "hooked")], [("hooked", "removed", None)], []),
        (
            [E.ChangeEntry("platform", "addon", "hooked", {"settings": {"strict_health_check": True}})],
            [("hooked", "changed", ["settings"])],
            [],
        ),
        (
            [E.AddEntry("platform", "manifest", {"name": "extra", "namespace": "apps", "manifest": CM})],
            [],
            [("ConfigMap", "apps", "extra", "created")],
        ),
        ([E.RemoveEntry("platform", "manifest", "ns-hooks")], [], [("Namespace", None, "hooks", "removed")]),
    ],
)
def test_impact_names_what_changes_in_the_cluster(
    repo: Path,
    edits: list[E.Edit],
    releases: list[tuple[str, str, list[str] | None]],
    objects: list[tuple[str, str | None, str, str]],
) -> None:
    before = resolved(repo)
    found = impact(before, after(repo, *edits))
    assert [(r["release"], r["change"], r.get("what")) for r in found["releases"]] == releases
    assert [(o["kind"], o["namespace"], o["name"], o["change"]) for o in found["objects"]] == objects


def test_a_values_change_names_values_and_never_a_value(repo: Path) -> None:
    before = resolved(repo)
    (repo / "values" / "webapp.yaml").write_text("replicaCount: 9\ngreeting: a-very-private-word\n")
    found = impact(before, resolved(repo))
    assert found["releases"] == [
        {
            "release": "webapp",
            "namespace": "apps",
            "change": "changed",
            "chart": "webapp 1.0.0",
            "what": ["values"],
        }
    ]
    assert "a-very-private-word" not in str(found)


def test_without_a_definition_before_everything_is_created(repo: Path) -> None:
    found = impact(None, resolved(repo))
    assert {r["change"] for r in found["releases"]} == {"created"}
    assert impact(None, None) == {"releases": [], "objects": []}
