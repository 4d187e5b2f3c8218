"""fetch_live's choice between one LIST of a kind and a GET per object, and what it returns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from moorage.engine import objects
from moorage.engine.objects import LIST_RATIO, fetch_live, key_of, list_selector, should_list
from moorage.kube import errors


def cm(name: str, namespace: str = "apps", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **extra}


def secret(name: str, type_: str = "Opaque") -> dict[str, Any]:
    meta = {"name": name, "namespace": "apps"}
    return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": meta}


class CountingKube:
    """A cluster of objects that counts GETs and LISTs; LIST may be forbidden, per kind."""

    def __init__(self, *live: dict[str, Any], forbid_list: tuple[str, ...] = ()) -> None:
        self.live = list(live)
        self.forbid_list = forbid_list
        self.gets: list[str] = []
        self.lists: list[tuple[str, str | None]] = []

    async def get(self, _api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        self.gets.append(f"{kind} {namespace}/{name}")
        for obj in self.live:
            meta = obj["metadata"]
            if obj["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
                return copy.deepcopy(obj)
        return None

    async def list(self, _api_version: str, kind: str, *, field_selector: str | None = None) -> Any:
        self.lists.append((kind, field_selector))
        if kind in self.forbid_list:
            raise errors.Forbidden(f"list {kind}: forbidden")
        found = [copy.deepcopy(o) for o in self.live if o["kind"] == kind]
        if field_selector == "type!=helm.sh/release.v1":
            found = [o for o in found if o.get("type") != "helm.sh/release.v1"]
        return found


@pytest.mark.parametrize(
    ("wanted", "kind_size", "listed"),
    [
        (0, None, False),
        (1, None, False),  # a single object: one GET is never worse than a LIST
        (1, 1, False),
        (2, None, True),  # a kind not listed yet: listed once, to learn its size
        (2, 2 * LIST_RATIO, True),
        (2, 2 * LIST_RATIO + 1, False),  # the collection is too big for what is wanted of it
        (20, 20, True),
        (20, 5000, False),
        (500, 5000, True),
    ],
)
def test_should_list(wanted: int, kind_size: int | None, listed: bool) -> None:
    assert should_list(wanted, kind_size) is listed


def test_secrets_are_listed_without_helms_release_records_unless_one_is_wanted() -> None:
    assert list_selector("v1", "Secret", [secret("a")]) == "type!=helm.sh/release.v1"
    assert list_selector("v1", "Secret", [secret("a"), secret("b", "helm.sh/release.v1")]) is None
    assert list_selector("v1", "ConfigMap", [cm("a")]) is None


async def test_twenty_objects_of_a_kind_cost_one_list_not_twenty_gets() -> None:
    wanted = [cm(f"c{i}") for i in range(20)]
    kube = CountingKube(*wanted[:15], cm("other", "elsewhere"))
    live = await fetch_live(kube, wanted)  # type: ignore[arg-type]
    assert kube.lists == [("ConfigMap", None)]
    assert kube.gets == []
    assert [k for k, v in live.items() if v is None] == [key_of(o) for o in wanted[15:]]
    assert live[key_of(wanted[0])] == wanted[0]
    assert key_of(cm("other", "elsewhere")) not in live  # only what was asked for


async def test_a_kind_too_big_for_what_is_wanted_is_read_by_gets_after_its_first_list() -> None:
    crowd = [cm(f"n{i}", "crowd") for i in range(2 * LIST_RATIO + 1)]
    wanted = [cm("a"), cm("b")]
    kube = CountingKube(*crowd, *wanted)
    first = await fetch_live(kube, wanted)  # type: ignore[arg-type]
    second = await fetch_live(kube, wanted)  # type: ignore[arg-type]
    assert kube.lists == [("ConfigMap", None)]
    assert sorted(kube.gets) == ["ConfigMap apps/a", "ConfigMap apps/b"]
    assert first == second == {key_of(o): o for o in wanted}


async def test_a_forbidden_list_falls_back_to_gets_and_is_not_tried_again() -> None:
    wanted = [secret("a"), secret("b")]
    kube = CountingKube(*wanted, forbid_list=("Secret",))
    first = await fetch_live(kube, wanted)  # type: ignore[arg-type]
    second = await fetch_live(kube, wanted)  # type: ignore[arg-type]
    assert kube.lists == [("Secret", "type!=helm.sh/release.v1")]
    assert len(kube.gets) == 4
    assert first == second == {key_of(o): o for o in wanted}


async def test_sizes_are_remembered_per_client() -> None:
    wanted = [cm("a"), cm("b")]
    one, other = CountingKube(*wanted), CountingKube(*wanted)
    await fetch_live(one, wanted)  # type: ignore[arg-type]
    await fetch_live(other, wanted)  # type: ignore[arg-type]
    assert objects._KIND_SIZES[one] == objects._KIND_SIZES[other] == {("v1", "ConfigMap"): 2}  # type: ignore[index]
