"""When an add-on's release is up to date, and how a pending change is described."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from moorage.engine.addons import Desired, _change_summary, in_sync
from moorage.helm.storage import Release
from moorage.spec.content import ResolvedAddon, Sensitive
from moorage.spec.models import AddonSettings, JobConfiguration

VALUES = {"replicaCount": 2, "auth": {"password": "hunter22"}, "ports": [80, 443], "pin": 1234}


def addon(
    *,
    namespace: str = "apps",
    chart_name: str = "podinfo",
    chart_version: str = "6.7.0",
    values: Any = VALUES,
    secret_paths: frozenset[tuple[str | int, ...]] = frozenset(),
) -> ResolvedAddon:
    return ResolvedAddon(
        name="podinfo",
        stack="web",
        chart_name=chart_name,
        chart_version=chart_version,
        registry_name="podinfo",
        registry_url="https://stefanprodan.github.io/podinfo",
        namespace=namespace,
        values=Sensitive(values, secret_paths),
        settings=AddonSettings.model_validate({}),
        job_configuration=JobConfiguration.model_validate({}),
        encrypted=bool(secret_paths),
    )


def release(**changes: Any) -> Release:
    base = Release(
        name="podinfo",
        namespace="apps",
        revision=4,
        status="deployed",
        chart_name="podinfo",
        chart_version="6.7.0",
        app_version="6.7.0",
        last_deployed=None,
        # as Helm stores them: every number a float64, keys in another order
        values={"ports": [80.0, 443.0], "pin": 1234.0, "auth": {"password": "hunter22"}, "replicaCount": 2.0},
        manifest="",
        secret_name="sh.helm.release.v1.podinfo.v4",
        labels={"owner": "helm", "name": "podinfo", "status": "deployed", "version": "4"},
    )
    return dataclasses.replace(base, **changes)


DESIRED = Desired.of(addon())


def test_in_sync_when_everything_matches() -> None:
    assert in_sync(release(), DESIRED)


@pytest.mark.parametrize(
    "current",
    [
        None,
        release(status="failed"),
        release(status="pending-upgrade"),
        release(status="superseded"),
        release(status="uninstalling"),
        release(namespace="old-apps"),
        release(chart_name="podinfo-fork"),
        release(chart_version="6.6.0"),
        release(values={**release().values, "replicaCount": 3.0}),
        release(values={**release().values, "auth": {"password": "changed"}}),
        release(values={**release().values, "extra": True}),
        release(values={}),
    ],
    ids=[
        "no-release",
        "failed",
        "pending",
        "superseded",
        "uninstalling",
        "namespace",
        "chart-name",
        "chart-version",
        "value-changed",
        "secret-changed",
        "value-added",
        "no-values",
    ],
)
def test_not_in_sync(current: Release | None) -> None:
    assert not in_sync(current, DESIRED)


def test_empty_values_match_a_release_without_config() -> None:
    empty = Desired.of(addon(values=None))
    assert empty.values == {}
    assert in_sync(release(values={}), empty)
    assert not in_sync(release(), empty)


@pytest.mark.parametrize(
    ("current", "desired", "summary"),
    [
        (None, DESIRED, "install podinfo 6.7.0 into apps"),
        (release(namespace="old"), DESIRED, "move podinfo 6.7.0 from namespace old to apps"),
        (
            release(namespace="old", status="failed", chart_version="6.0.0"),
            DESIRED,
            "move podinfo 6.7.0 from namespace old to apps",
        ),
        (release(status="failed"), DESIRED, "upgrade podinfo 6.7.0 (release was failed)"),
        (release(status="pending-install"), DESIRED, "upgrade podinfo 6.7.0 (release was pending-install)"),
        (
            release(status="failed", chart_version="6.0.0"),
            DESIRED,
            "upgrade podinfo 6.7.0 (release was failed)",
        ),
        (release(chart_version="6.5.4"), DESIRED, "upgrade podinfo 6.5.4 → 6.7.0"),
        (
            release(chart_name="podinfo-old", chart_version="1.0.0"),
            DESIRED,
            "upgrade podinfo-old 1.0.0 → 6.7.0",
        ),
        (release(values={}), DESIRED, "upgrade podinfo 6.7.0 (values changed)"),
        (release(), Desired.of(addon(chart_version="7.0.0")), "upgrade podinfo 6.7.0 → 7.0.0"),
    ],
)
def test_change_summary(current: Release | None, desired: Desired, summary: str) -> None:
    assert _change_summary(current, desired) == summary


def test_change_summary_never_shows_values() -> None:
    text = " ".join(_change_summary(r, DESIRED) for r in (None, release(values={}), release(status="failed")))
    assert "hunter22" not in text
    assert "1234" not in text


def test_desired_collects_secret_strings_for_masking() -> None:
    desired = Desired.of(
        addon(
            secret_paths=frozenset(
                {("auth", "password"), ("pin",), ("missing", "path"), ("ports", 9), ("auth",)}
            )
        )
    )
    assert desired.values == VALUES
    assert sorted(desired.secrets) == ["1234", "hunter22"]  # containers and missing paths skipped
    assert "hunter22" not in repr(desired.addon.values)
