"""prune.decide: one table row per rule of the module docstring, plus the "never delete on doubt"
property over arbitrary candidates and live objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from moorage.engine.objects import ObjectKey
from moorage.engine.prune import ALLOW_ANNOTATION, GUARD_MANAGER, Candidate, Decision, decide, guarded_by_us

UID = "0b7c6c1e-4d1f-4a53-9a53-2f6f2f2c1a01"
OTHER_UID = "9e8d7c6b-5a49-4837-8261-5f4e3d2c1b0a"
CM = ObjectKey("", "ConfigMap", "apps", "old-config")
STILL = ObjectKey("apps", "Deployment", "apps", "web")  # keeps the desired set non-empty
HELM_OWNER = {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "apps"}
INVENTORY_OWNER = {"moorage.dev/owner": "manifest/base"}

PVC = ObjectKey("", "PersistentVolumeClaim", "apps", "data")
NS = ObjectKey("", "Namespace", "", "apps")
CRD = ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")
API_VERSIONS = {
    "": "v1",
    "apps": "apps/v1",
    "apiextensions.k8s.io": "apiextensions.k8s.io/v1",
    "example.com": "example.com/v1",
}


def live_obj(
    key: ObjectKey,
    *,
    uid: str = UID,
    annotations: Mapping[str, str] | None = None,
    managed: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": key.name,
        "uid": uid,
        "resourceVersion": "4711",
        "creationTimestamp": "2026-05-01T10:00:00Z",
        "annotations": dict(annotations if annotations is not None else HELM_OWNER),
    }
    if key.namespace:
        meta["namespace"] = key.namespace
    if managed is not None:
        meta["managedFields"] = managed
    if deleting:
        meta["deletionTimestamp"] = "2026-05-02T10:00:00Z"
        meta["finalizers"] = ["kubernetes.io/pvc-protection"]
    return {"apiVersion": API_VERSIONS[key.group], "kind": key.kind, "metadata": meta}


def annotation_entry(manager: str, operation: str, *names: str) -> dict[str, Any]:
    """A managedFields entry owning the given annotations, as the API server writes it."""
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": "2026-05-01T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{n}": {} for n in names}}},
    }


HELM_APPLY_WITH_KEEP = annotation_entry(
    "helm", "Apply", "meta.helm.sh/release-name", "meta.helm.sh/release-namespace", "helm.sh/resource-policy"
)
HELM_APPLY = annotation_entry("helm", "Apply", "meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
GUARD_APPLY = annotation_entry(GUARD_MANAGER, "Apply", "helm.sh/resource-policy")
KEEP = {"helm.sh/resource-policy": "keep"}


def one(
    candidate: Candidate,
    live: Mapping[str, Any] | None,
    desired: set[ObjectKey] | None = None,
) -> Decision:
    [decision] = decide([candidate], {STILL} if desired is None else desired, {candidate.key: live})
    assert decision.candidate is candidate
    return decision


def helm_candidate(key: ObjectKey = CM) -> Candidate:
    return Candidate(API_VERSIONS[key.group], key, None, HELM_OWNER)


def inventory_candidate(key: ObjectKey = CM, uid: str | None = UID) -> Candidate:
    return Candidate(API_VERSIONS[key.group], key, uid, INVENTORY_OWNER)


# --------------------------------------------------------------------------- table


@pytest.mark.parametrize(
    ("candidate", "live", "desired", "reason"),
    [
        pytest.param(
            helm_candidate(),
            live_obj(CM),
            set(),
            "kept: the desired set is empty, which looks like a mistake, not an intent",
            id="empty-desired-set",
        ),
        pytest.param(helm_candidate(), live_obj(CM), {CM, STILL}, "kept: still desired", id="still-desired"),
        pytest.param(helm_candidate(), None, None, "already gone", id="already-gone"),
        pytest.param(
            inventory_candidate(),
            live_obj(CM, annotations=INVENTORY_OWNER, deleting=True),
            None,
            "already being deleted",
            id="being-deleted",
        ),
        pytest.param(
            inventory_candidate(),
            live_obj(CM, uid=OTHER_UID, annotations=INVENTORY_OWNER),
            None,
            "kept: a different object with this name exists (UID changed); ownership not proven",
            id="uid-changed",
        ),
        pytest.param(
            Candidate("v1", CM, None, {}),
            live_obj(CM),
            None,
            "kept: ownership not proven",
            id="no-uid-no-owner",
        ),
        pytest.param(
            helm_candidate(),
            live_obj(CM, annotations={}),
            None,
            "kept: annotation meta.helm.sh/release-name is not 'web'; ownership not proven",
            id="owner-annotations-missing",
        ),
        pytest.param(
            helm_candidate(),
            live_obj(CM, annotations={**HELM_OWNER, "meta.helm.sh/release-namespace": "other"}),
            None,
            "kept: annotation meta.helm.sh/release-namespace is not 'apps'; ownership not proven",
            id="owner-annotation-mismatch",
        ),
        pytest.param(
            inventory_candidate(),
            live_obj(CM, annotations={"moorage.dev/owner": "manifest/other"}),
            None,
            "kept: annotation moorage.dev/owner is not 'manifest/base'; ownership not proven",
            id="uid-matches-but-owner-annotation-mismatch",
        ),
        pytest.param(
            helm_candidate(),
            live_obj(CM, annotations={**HELM_OWNER, **KEEP}, managed=[HELM_APPLY_WITH_KEEP]),
            None,
            "kept: helm.sh/resource-policy is keep",
            id="chart-keep",
        ),
        pytest.param(
            helm_candidate(),
            live_obj(CM, annotations={**HELM_OWNER, **KEEP}),
            None,
            "kept: helm.sh/resource-policy is keep",
            id="keep-without-managed-fields",
        ),
        pytest.param(
            helm_candidate(),
            live_obj(
                CM,
                annotations={**HELM_OWNER, **KEEP},
                managed=[
                    HELM_APPLY,
                    annotation_entry(GUARD_MANAGER, "Apply", "example.com/other"),  # not the policy
                ],
            ),
            None,
            "kept: helm.sh/resource-policy is keep",
            id="guard-manager-owns-something-else",
        ),
    ],
)
def test_kept(
    candidate: Candidate, live: dict[str, Any] | None, desired: set[ObjectKey] | None, reason: str
) -> None:
    decision = one(candidate, live, desired)
    assert decision == Decision(candidate, False, reason, None)


def test_deleted_when_owned_by_the_release_and_no_longer_desired() -> None:
    candidate = helm_candidate()
    assert one(candidate, live_obj(CM, uid=OTHER_UID)) == Decision(
        candidate, True, "no longer desired", uid=OTHER_UID
    )


def test_deleted_when_recorded_uid_and_owner_annotation_match() -> None:
    candidate = inventory_candidate()
    assert one(candidate, live_obj(CM, annotations=INVENTORY_OWNER)) == Decision(
        candidate, True, "no longer desired", uid=UID
    )


def test_uid_alone_proves_ownership() -> None:
    candidate = Candidate("v1", CM, UID, {})
    assert one(candidate, live_obj(CM, annotations={})).delete is True


def test_keep_set_by_the_prune_guard_does_not_stop_prune() -> None:
    candidate = helm_candidate()
    live = live_obj(CM, annotations={**HELM_OWNER, **KEEP}, managed=[HELM_APPLY, GUARD_APPLY])
    assert guarded_by_us(live)
    assert one(candidate, live) == Decision(candidate, True, "no longer desired", uid=UID)


def test_other_resource_policy_values_do_not_keep() -> None:
    live = live_obj(CM, annotations={**HELM_OWNER, "helm.sh/resource-policy": "delete"})
    assert one(helm_candidate(), live).delete is True


@pytest.mark.parametrize("key", [PVC, NS, CRD], ids=["pvc", "namespace", "crd"])
@pytest.mark.parametrize(
    ("allow", "deleted"),
    [(None, False), ("true", True), ("false", False), ("True", False), ("yes", False)],
)
def test_protected_kinds(key: ObjectKey, allow: str | None, deleted: bool) -> None:
    annotations = dict(HELM_OWNER) | ({ALLOW_ANNOTATION: allow} if allow is not None else {})
    decision = one(helm_candidate(key), live_obj(key, annotations=annotations))
    assert decision.delete is deleted
    if not deleted:
        assert decision.reason == (
            f'kept: {key.kind} is never pruned unless annotated {ALLOW_ANNOTATION}: "true"'
        )
        assert decision.uid is None


def test_same_kind_name_in_another_group_is_not_protected() -> None:
    key = ObjectKey("example.com", "Namespace", "", "apps")
    candidate = Candidate("example.com/v1", key, None, HELM_OWNER)
    assert one(candidate, live_obj(key, annotations=HELM_OWNER)).delete


def test_allow_prune_does_not_override_a_chart_keep() -> None:
    live = live_obj(
        PVC,
        annotations={**HELM_OWNER, **KEEP, ALLOW_ANNOTATION: "true"},
        managed=[HELM_APPLY_WITH_KEEP],
    )
    assert one(helm_candidate(PVC), live).reason == "kept: helm.sh/resource-policy is keep"


def test_decide_keeps_order_and_looks_up_each_candidate() -> None:
    a, b = ObjectKey("", "ConfigMap", "apps", "a"), ObjectKey("", "Secret", "apps", "b")
    candidates = [helm_candidate(a), helm_candidate(b), helm_candidate(STILL)]
    decisions = decide(candidates, {STILL}, {a: None, b: live_obj(b)})
    assert [(d.candidate.key, d.delete, d.reason) for d in decisions] == [
        (a, False, "already gone"),
        (b, True, "no longer desired"),
        (STILL, False, "kept: still desired"),
    ]


def test_candidate_missing_from_live_map_counts_as_gone() -> None:
    assert decide([helm_candidate()], {STILL}, {})[0].reason == "already gone"


# --------------------------------------------------------------------------- guarded_by_us


def test_guarded_by_us_needs_the_guard_manager_to_own_the_policy_annotation() -> None:
    assert not guarded_by_us(live_obj(CM))
    assert not guarded_by_us(live_obj(CM, managed=[HELM_APPLY_WITH_KEEP]))
    assert not guarded_by_us(live_obj(CM, managed=[annotation_entry("kubectl-annotate", "Update", *KEEP)]))
    assert guarded_by_us(live_obj(CM, managed=[GUARD_APPLY]))
    assert not guarded_by_us({"metadata": {"managedFields": [{"manager": GUARD_MANAGER}]}})
    assert not guarded_by_us({})


def test_chart_keep_shared_with_the_guard_is_still_the_charts() -> None:
    live = live_obj(CM, annotations={**HELM_OWNER, **KEEP}, managed=[HELM_APPLY_WITH_KEEP, GUARD_APPLY])
    decision = one(helm_candidate(), live)
    assert decision.delete is False
    assert decision.reason == "kept: helm.sh/resource-policy is keep"


# --------------------------------------------------------------------------- property

KINDS = [
    ObjectKey("", "ConfigMap", "apps", "a"),
    ObjectKey("", "ConfigMap", "apps", "b"),
    ObjectKey("apps", "Deployment", "apps", "a"),
    PVC,
    NS,
    CRD,
]
UIDS = st.sampled_from([UID, OTHER_UID, "11111111-2222-3333-4444-555555555555"])
OWNER_KEYS = ["meta.helm.sh/release-name", "meta.helm.sh/release-namespace", "moorage.dev/owner"]
SMALL_TEXT = st.sampled_from(["web", "apps", "other", "manifest/base", "true", "keep", ""])


@st.composite
def candidates(draw: st.DrawFn) -> Candidate:
    key = draw(st.sampled_from(KINDS))
    owner = draw(st.dictionaries(st.sampled_from(OWNER_KEYS), SMALL_TEXT, max_size=3))
    return Candidate(API_VERSIONS[key.group], key, draw(st.none() | UIDS), owner)


@st.composite
def live_objects(draw: st.DrawFn, candidate: Candidate) -> dict[str, Any] | None:
    """Often the very object the candidate recorded, often a near miss, sometimes nothing."""
    if draw(st.integers(0, 9)) == 0:
        return None
    annotations = dict(candidate.owner) if draw(st.integers(0, 3)) else {}
    annotations |= draw(
        st.dictionaries(
            st.sampled_from([*OWNER_KEYS, ALLOW_ANNOTATION, "helm.sh/resource-policy"]),
            SMALL_TEXT,
            max_size=4,
        )
    )
    managed = draw(st.sampled_from([None, [HELM_APPLY_WITH_KEEP], [GUARD_APPLY], [HELM_APPLY, GUARD_APPLY]]))
    same_uid = candidate.uid is not None and draw(st.integers(0, 3)) > 0
    uid = candidate.uid if same_uid else draw(st.none() | UIDS)
    obj = live_obj(
        candidate.key, annotations=annotations, managed=managed, deleting=draw(st.integers(0, 4)) == 0
    )
    if uid is None:
        del obj["metadata"]["uid"]
    else:
        obj["metadata"]["uid"] = uid
    return obj


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[Candidate], set[ObjectKey], dict[ObjectKey, dict[str, Any] | None]]:
    cands = draw(st.lists(candidates(), max_size=6))
    desired = draw(st.sets(st.sampled_from(KINDS), max_size=2))
    if draw(st.integers(0, 9)):
        desired.add(STILL)
    live = {c.key: draw(live_objects(c)) for c in cands}
    return cands, desired, live


@settings(max_examples=100)
@given(scenarios())
def test_never_deletes_on_doubt(
    scenario: tuple[list[Candidate], set[ObjectKey], dict[ObjectKey, dict[str, Any] | None]],
) -> None:
    cands, desired, live = scenario
    decisions = decide(cands, desired, live)
    assert [d.candidate for d in decisions] == cands
    for d in decisions:
        event("delete" if d.delete else d.reason.split(";")[0][:40])
        if not d.delete:
            assert d.uid is None
            continue
        obj = live[d.candidate.key]
        assert obj is not None
        meta = obj["metadata"]
        annotations = meta["annotations"]
        assert desired, "deleted although the desired set is empty"
        assert d.candidate.key not in desired
        assert "deletionTimestamp" not in meta
        if d.candidate.uid is not None:
            assert meta.get("uid") == d.candidate.uid, "deleted a namesake with another UID"
        else:
            assert d.candidate.owner, "deleted without any proof of ownership"
        for name, value in d.candidate.owner.items():
            assert annotations.get(name) == value, f"deleted although {name} does not match"
        assert d.uid == meta.get("uid")
        if (d.candidate.key.group, d.candidate.key.kind) in {(k.group, k.kind) for k in (PVC, NS, CRD)}:
            assert annotations.get(ALLOW_ANNOTATION) == "true"
        if annotations.get("helm.sh/resource-policy") == "keep":
            assert guarded_by_us(obj)


@settings(max_examples=40)
@given(st.lists(candidates(), max_size=5), st.data())
def test_empty_desired_set_never_deletes(cands: list[Candidate], data: st.DataObject) -> None:
    live = {c.key: data.draw(live_objects(c)) for c in cands}
    assert not any(d.delete for d in decide(cands, set(), live))
