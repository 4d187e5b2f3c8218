"""The lines `moorage stacks … --preview` prints for a release's chart objects (grouped created,
changed with field paths, removed), or why they were not rendered."""

from moorage.cli.stack_commands import release_objects


def test_a_rendered_release_lists_its_objects_by_change_with_field_paths() -> None:
    release = {
        "release": "web",
        "rendered": True,
        "objects": {
            "created": [{"kind": "ConfigMap", "namespace": "apps", "name": "extra", "api_version": "v1"}],
            "changed": [
                {"kind": "Deployment", "namespace": "apps", "name": "web", "paths": ["spec.replicas"]},
                {
                    "kind": "ClusterRole",
                    "namespace": None,
                    "name": "r",
                    "paths": ["rules[0]"],
                    "paths_omitted": 4,
                },
            ],
            "removed": [{"kind": "Service", "namespace": "apps", "name": "old"}],
            "unchanged": 2,
            "omitted": 1,
        },
        "note": "some objects exist outside the release",
    }
    assert release_objects(release) == [
        "created ConfigMap apps/extra",
        "changed Deployment apps/web: spec.replicas",
        "changed ClusterRole r: rules[0] and 4 more",
        "removed Service apps/old",
        "… and 1 more objects",
        "(2 unchanged)",
        "some objects exist outside the release",
    ]


def test_no_change_and_not_rendered_are_said() -> None:
    empty = {"created": [], "changed": [], "removed": [], "unchanged": 3, "omitted": 0}
    assert release_objects({"rendered": True, "objects": empty}) == ["no object changes"]
    assert release_objects({"rendered": False, "reason": "chart not found"}) == [
        "objects not rendered: chart not found"
    ]
    assert release_objects({"release": "saved, not a preview"}) == []
