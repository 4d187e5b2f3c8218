"""When the prune guard's withdrawal may skip reading the release's live objects."""

import pytest

from moorage.engine.context import PRUNE_LABEL
from moorage.engine.pruneguard import guard_withdrawn
from moorage.helm.storage import Release


def release(status: str, labels: dict[str, str]) -> Release:
    return Release(
        "app", "apps", 2, status, "c", "1.0.0", "", None, {}, "", "sh.helm.release.v1.app.v2", labels
    )


@pytest.mark.parametrize(
    ("status", "labels", "withdrawn"),
    [
        ("deployed", {PRUNE_LABEL: "true"}, True),  # deployed with auto_prune on: the guard went first
        ("deployed", {PRUNE_LABEL: "false"}, False),  # guarded before that upgrade
        ("deployed", {}, False),  # from before the label: on doubt, read
        ("failed", {PRUNE_LABEL: "true"}, False),  # an upgrade that failed may have run after a guard
        ("pending-upgrade", {PRUNE_LABEL: "true"}, False),
    ],
)
def test_only_a_release_deployed_with_auto_prune_on_is_known_unguarded(
    status: str, labels: dict[str, str], withdrawn: bool
) -> None:
    assert guard_withdrawn(release(status, labels)) is withdrawn
