"""Which releases of add-ons removed from the definition are uninstalled, kept, or left for later."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from moorage.engine.addons import Desired, _change_summary, in_sync, prune_label, release_labels
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL, PRUNE_LABEL
from moorage.engine.removed import Action, current_release, decide
from moorage.helm.storage import Release
from moorage.spec.content import ResolvedAddon, ResolvedCluster, Sensitive
from moorage.spec.models import AddonSettings, JobConfiguration

CLUSTER = "prod"


def addon(name: str, namespace: str = "apps", **settings: Any) -> ResolvedAddon:
    return ResolvedAddon(
        name=name,
        stack="web",
        chart_name="podinfo",
        chart_version="6.7.0",
        registry_name="podinfo",
        registry_url="https://stefanprodan.github.io/podinfo",
        namespace=namespace,
        values=Sensitive({}, frozenset()),
        settings=AddonSettings.model_validate(settings),
        job_configuration=JobConfiguration.model_validate({}),
        encrypted=False,
    )


def release(name: str, namespace: str = "apps", *, prune: str | None = "true", **changes: Any) -> Release:
    labels = {"owner": "helm", "name": name, "status": "deployed", "version": "3"}
    labels |= {CLUSTER_LABEL: CLUSTER, ADDON_LABEL: name}
    if prune is not None:
        labels[PRUNE_LABEL] = prune
    base = Release(
        name=name,
        namespace=namespace,
        revision=3,
        status="deployed",
        chart_name="podinfo",
        chart_version="6.7.0",
        app_version="6.7.0",
        last_deployed=datetime(2026, 1, 1, tzinfo=UTC),
        values={},
        manifest="",
        secret_name=f"sh.helm.release.v1.{name}.v3",
        labels=labels,
    )
    return dataclasses.replace(base, **changes)


def unlabelled(r: Release, *names: str) -> Release:
    return dataclasses.replace(r, labels={k: v for k, v in r.labels.items() if k not in names})


def cluster(*addons: ResolvedAddon) -> ResolvedCluster:
    return ResolvedCluster(name=CLUSTER, addons={a.name: a for a in addons})


def by_key(*releases: Release) -> dict[tuple[str, str], Release]:
    return {(r.namespace, r.name): r for r in releases}


@pytest.mark.parametrize(
    ("stored", "action", "code", "says"),
    [
        (release("gone"), Action.UNINSTALL, "pruned", "auto_prune was on"),
        (release("gone", status="failed"), Action.UNINSTALL, "pruned", "auto_prune was on"),
        (release("gone", prune="false"), Action.KEEP, "auto_prune_off", "auto_prune was off"),
        (release("gone", prune=None), Action.DOUBT, "prune_doubt", "no moorage.dev/auto-prune label"),
        (release("gone", prune="yes"), Action.DOUBT, "prune_doubt", "'yes'"),
        (release("gone", prune="True"), Action.DOUBT, "prune_doubt", "'True'"),
        (release("gone", prune=""), Action.DOUBT, "prune_doubt", "''"),
        (release("gone", status="pending-install"), Action.WAIT, "release_busy", "pending-install"),
        (release("gone", status="pending-upgrade"), Action.WAIT, "release_busy", "pending-upgrade"),
        (release("gone", status="pending-rollback"), Action.WAIT, "release_busy", "pending-rollback"),
        (release("gone", status="uninstalling"), Action.WAIT, "release_busy", "uninstalling"),
        # pending wins over the label: whatever holds the release finishes first
        (release("gone", prune="false", status="pending-upgrade"), Action.WAIT, "release_busy", "pending"),
        (release("gone", prune=None, status="pending-install"), Action.WAIT, "release_busy", "pending"),
    ],
)
def test_decision_for_a_removed_addon(stored: Release, action: Action, code: str, says: str) -> None:
    (decision,) = decide(by_key(stored, release("web")), cluster(addon("web")))
    assert decision.release is stored
    assert decision.action is action
    assert decision.uninstall is (action is Action.UNINSTALL)
    assert decision.code == code
    assert says in decision.reason


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(release("web"), id="the current release of a defined add-on"),
        pytest.param(release("web", status="failed"), id="a failed current release"),
        pytest.param(
            release("other", labels={CLUSTER_LABEL: "staging", PRUNE_LABEL: "true"}), id="other cluster"
        ),
        pytest.param(unlabelled(release("manual"), CLUSTER_LABEL, ADDON_LABEL), id="unlabelled"),
        pytest.param(unlabelled(release("half"), CLUSTER_LABEL), id="add-on label without cluster label"),
        pytest.param(
            release("empty", labels={CLUSTER_LABEL: "", PRUNE_LABEL: "true"}), id="empty cluster label"
        ),
        pytest.param(release("web", "old-apps"), id="move source of a defined add-on"),
        pytest.param(
            release("web", "older-apps", prune="false"), id="any other namespace of a defined add-on"
        ),
    ],
)
def test_never_considered(stored: Release) -> None:
    assert decide(by_key(stored), cluster(addon("web"))) == []


def test_move_source_is_the_current_release_and_is_not_removed() -> None:
    web = addon("web", namespace="new-apps")
    old = release("web", "old-apps")
    assert current_release(by_key(old), web, CLUSTER) is old
    assert decide(by_key(old), cluster(web)) == []


def test_a_namesake_of_another_definition_is_not_taken_for_a_move() -> None:
    web = addon("web", namespace="new-apps")
    theirs = release("web", "old-apps", labels={CLUSTER_LABEL: "staging", PRUNE_LABEL: "true"})
    assert current_release(by_key(theirs), web, CLUSTER) is None
    assert decide(by_key(theirs), cluster(web)) == []


def test_every_removed_release_is_decided_in_order() -> None:
    stored = by_key(
        release("web"),
        release("zeta", "b"),
        release("alpha", "b", prune="false"),
        release("alpha", "a", prune=None),
        release("mid", status="pending-upgrade"),
        release("theirs", labels={CLUSTER_LABEL: "staging", PRUNE_LABEL: "true"}),
    )
    decisions = decide(stored, cluster(addon("web")))
    assert [(d.release.namespace, d.release.name, d.action) for d in decisions] == [
        ("a", "alpha", Action.DOUBT),
        ("apps", "mid", Action.WAIT),
        ("b", "alpha", Action.KEEP),
        ("b", "zeta", Action.UNINSTALL),
    ]


def test_nothing_to_decide_without_releases() -> None:
    assert decide({}, cluster(addon("web"))) == []
    assert decide({}, cluster()) == []


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        ({}, "true"),  # automated and auto_prune default on
        ({"sync_policy": {"auto_prune": False}}, "false"),
        ({"sync_policy": {"automated": False}}, "false"),
        ({"sync_policy": {"automated": False, "auto_prune": True}}, "false"),
        ({"sync_policy": {"automated": {"prune": True}}}, "true"),
        ({"sync_policy": {"automated": {"prune": False}}}, "false"),
    ],
)
def test_release_labels_record_the_prune_setting(settings: dict[str, Any], label: str) -> None:
    web = addon("web", **settings)
    assert prune_label(web) == label
    assert release_labels(web, CLUSTER) == {CLUSTER_LABEL: CLUSTER, ADDON_LABEL: "web", PRUNE_LABEL: label}


def test_a_release_recorded_with_the_other_prune_setting_is_upgraded() -> None:
    on, off = addon("web"), addon("web", sync_policy={"auto_prune": False})
    assert in_sync(release("web", prune="true"), Desired.of(on))
    assert in_sync(release("web", prune="false"), Desired.of(off))
    assert not in_sync(release("web", prune="false"), Desired.of(on))
    assert not in_sync(release("web", prune="true"), Desired.of(off))
    assert _change_summary(release("web", prune="false"), Desired.of(on)) == (
        "upgrade podinfo 6.7.0 (auto_prune is now on)"
    )
    assert _change_summary(release("web", prune="true"), Desired.of(off)) == (
        "upgrade podinfo 6.7.0 (auto_prune is now off)"
    )


def test_a_release_without_the_prune_label_is_not_upgraded_for_it_alone() -> None:
    assert in_sync(release("web", prune=None), Desired.of(addon("web")))
    assert in_sync(release("web", prune=None), Desired.of(addon("web", sync_policy={"auto_prune": False})))
