"""Which watch events wake the sweep: edits yes, a controller's status updates no."""

from typing import Any

from moorage.agent.watch import application_fingerprint, is_edit, of_kind


def deployment(
    uid: str = "u1", generation: int = 1, labels: dict[str, str] | None = None, rv: str = "1"
) -> dict[str, Any]:
    meta = {"uid": uid, "generation": generation, "labels": labels or {"app": "web"}, "resourceVersion": rv}
    return {"kind": "Deployment", "metadata": meta, "status": {"readyReplicas": int(rv)}}


def test_status_updates_of_a_workload_do_not_wake_the_sweep() -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    is_edit({"type": "ADDED", "object": deployment()}, seen, of_kind(True))
    assert not is_edit({"type": "MODIFIED", "object": deployment(rv="2")}, seen, of_kind(True))
    assert is_edit({"type": "MODIFIED", "object": deployment(generation=2, rv="3")}, seen, of_kind(True))
    assert is_edit(
        {"type": "MODIFIED", "object": deployment(generation=2, labels={"a": "b"}, rv="4")},
        seen,
        of_kind(True),
    )
    assert not is_edit({"type": "BOOKMARK", "object": deployment(rv="5")}, seen, of_kind(True))


def test_any_change_of_a_kind_without_status_counts_and_so_do_deletes() -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    cm = {"kind": "ConfigMap", "metadata": {"uid": "c1", "resourceVersion": "7"}}
    is_edit({"type": "ADDED", "object": cm}, seen, of_kind(False))
    assert not is_edit({"type": "MODIFIED", "object": cm}, seen, of_kind(False))  # replayed
    changed = {"kind": "ConfigMap", "metadata": {"uid": "c1", "resourceVersion": "8"}}
    assert is_edit({"type": "MODIFIED", "object": changed}, seen, of_kind(False))
    assert is_edit({"type": "DELETED", "object": changed}, seen, of_kind(False))
    assert "c1" not in seen


def test_malformed_events_are_ignored() -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    assert not is_edit({"type": "MODIFIED", "object": "nonsense"}, seen, of_kind(True))
    assert not is_edit({}, seen, of_kind(True))


def test_what_argo_cd_says_of_an_application_is_what_counts() -> None:
    def app(sync: str, health: str = "Healthy", phase: str = "Succeeded", rv: str = "1") -> dict[str, object]:
        return {
            "metadata": {"uid": "a1", "generation": 3, "resourceVersion": rv},
            "status": {
                "sync": {"status": sync},
                "health": {"status": health},
                "operationState": {"phase": phase},
            },
        }

    seen: dict[str, tuple[object, ...]] = {}
    of = application_fingerprint
    assert is_edit({"type": "ADDED", "object": app("Synced")}, seen, of)
    assert not is_edit({"type": "MODIFIED", "object": app("Synced", rv="2")}, seen, of)  # reconciledAt only
    assert is_edit({"type": "MODIFIED", "object": app("OutOfSync", rv="3")}, seen, of)  # drift seen
    assert is_edit({"type": "MODIFIED", "object": app("OutOfSync", phase="Running", rv="4")}, seen, of)
    assert is_edit({"type": "MODIFIED", "object": app("Synced", rv="5")}, seen, of)  # healed
    assert is_edit({"type": "MODIFIED", "object": app("Synced", health="Degraded", rv="6")}, seen, of)
