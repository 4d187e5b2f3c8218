"""Which Applications the agent counts as Moorage's: none where it may not see any."""

from types import SimpleNamespace
from typing import Any

import pytest

from moorage.engine import argocd, argocd_app
from moorage.engine.context import ADDON_LABEL
from moorage.kube import errors


class Kube:
    def __init__(self, found: list[dict[str, Any]] | Exception) -> None:
        self.found = found

    async def list(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


@pytest.mark.parametrize(
    "failure",
    [
        errors.UnknownKind("no API resource serves Application"),
        errors.Forbidden("applications.argoproj.io is forbidden"),
    ],
)
async def test_without_the_crd_or_the_right_to_list_there_are_none(failure: Exception) -> None:
    ctx = SimpleNamespace(kube=Kube(failure))
    assert await argocd.owned_applications(ctx, "c1") == []  # type: ignore[arg-type]


async def test_other_failures_are_not_taken_for_none() -> None:
    ctx = SimpleNamespace(kube=Kube(errors.Unavailable("the API server is not answering")))
    with pytest.raises(errors.Unavailable):
        await argocd.owned_applications(ctx, "c1")  # type: ignore[arg-type]


async def test_only_moorages_applications_count() -> None:
    labels = {argocd_app.MANAGED_BY_LABEL: argocd_app.MANAGED_BY, ADDON_LABEL: "webapp"}
    ours = {"metadata": {"name": "a", "labels": labels}}
    theirs = {"metadata": {"name": "b", "labels": {ADDON_LABEL: "webapp"}}}
    ctx = SimpleNamespace(kube=Kube([ours, theirs]))
    assert await argocd.owned_applications(ctx, "c1") == [ours]  # type: ignore[arg-type]
