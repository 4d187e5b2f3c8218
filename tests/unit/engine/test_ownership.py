"""Who owns an existing object, and which take-overs an add-on may make (engine/ownership.py)."""

import pytest

from moorage.engine.objects import ObjectKey
from moorage.engine.ownership import Claim, OwnershipConflict, decide, owner_of

KEY = ObjectKey("", "ConfigMap", "apps", "web-config")


def _live(**annotations: str) -> dict[str, object]:
    return {"metadata": {"name": "web-config", "annotations": annotations}}


@pytest.mark.parametrize(
    ("annotations", "owner", "ours"),
    [
        ({}, "", False),
        ({"unrelated": "x"}, "", False),
        (
            {"meta.helm.sh/release-name": "other", "meta.helm.sh/release-namespace": "apps"},
            "Helm release apps/other",
            False,
        ),
        (
            {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "elsewhere"},
            "Helm release elsewhere/web",
            False,
        ),
        (
            {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "old"},
            "this add-on's release in old",
            True,
        ),
        ({"moorage.dev/owner": "demo/manifest/settings"}, "manifest entry 'settings'", False),
    ],
)
def test_owner_of(annotations: dict[str, str], owner: str, ours: bool) -> None:
    assert owner_of(_live(**annotations), "web", ["apps", "old"]) == (owner, ours)


def test_unowned_and_own_objects_are_taken() -> None:
    claims = [Claim(KEY, ""), Claim(KEY, "this add-on's release in old", ours=True)]
    assert decide(claims, allowed=False, addon="web") == claims
    assert [c.describe() for c in claims] == [
        "ConfigMap apps/web-config",
        "ConfigMap apps/web-config (from this add-on's release in old)",
    ]


def test_others_objects_are_refused_naming_the_owner() -> None:
    claims = [Claim(KEY, ""), Claim(KEY, "Helm release apps/other")]
    with pytest.raises(OwnershipConflict) as caught:
        decide(claims, allowed=False, addon="web")
    assert str(caught.value) == (
        "the chart of add-on web would take over objects that others own: "
        "ConfigMap apps/web-config (owned by Helm release apps/other); "
        "remove them from the other owner, or set settings.take_ownership: true on the add-on"
    )
    assert decide(claims, allowed=True, addon="web") == claims


def test_many_refusals_are_summed_up() -> None:
    claims = [Claim(ObjectKey("", "Secret", "apps", f"s{i}"), "manifest entry 'm'") for i in range(8)]
    with pytest.raises(OwnershipConflict, match="and 3 more"):
        decide(claims, allowed=False, addon="web")
