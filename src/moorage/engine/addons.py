"""Deploying one Helm add-on: skip when nothing changed, honour the sync window, `helm upgrade
--install` with retries, check health, and move the release when its namespace changed."""

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from moorage.engine import objects, ownership, pruneguard, windows
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL, PRUNE_LABEL, EngineContext, Options
from moorage.engine.health import AddonHealth, addon_health, assess
from moorage.engine.moves import clean_up_old_release
from moorage.engine.outcome import EntryOutcome, EntryStatus
from moorage.engine.retry import RetryPolicy, run_with_retry
from moorage.helm.cli import ChartRef, HelmError
from moorage.helm.storage import Release, latest, read_releases, values_digest
from moorage.kube import errors as kube_errors
from moorage.spec.content import ResolvedAddon

_ADOPTABLE = "cannot be imported into the current release"


class UnhealthyError(Exception):
    """The release deployed but its resources are not healthy enough (strict health check)."""


@dataclass(frozen=True)
class Desired:
    addon: ResolvedAddon
    values: dict[str, Any]
    digest: str
    secrets: tuple[str, ...]

    @classmethod
    def of(cls, addon: ResolvedAddon) -> "Desired":
        values = addon.values.reveal() or {}
        return cls(addon, values, values_digest(values), tuple(_secret_strings(addon)))


def _secret_strings(addon: ResolvedAddon) -> Iterable[str]:
    def at(node: Any, path: tuple[Any, ...]) -> Any:
        for part in path:
            node = node[part]
        return node

    data = addon.values.reveal()
    for path in addon.values.secret_paths:
        try:
            value = at(data, tuple(path))
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, str | int | float):
            yield str(value)


def chart_ref(addon: ResolvedAddon) -> ChartRef:
    if not addon.registry_url:
        raise HelmError(
            f"add-on {addon.name} has no registry URL to fetch chart {addon.chart_name} from", temporary=False
        )
    return ChartRef(addon.chart_name, addon.chart_version, addon.registry_url)


def prune_label(addon: ResolvedAddon) -> str:
    """The PRUNE_LABEL value for the add-on's settings: "true" when a removal may uninstall it."""
    policy = addon.settings.sync_policy
    return "true" if policy.automated and policy.auto_prune else "false"


def release_labels(addon: ResolvedAddon, cluster: str) -> dict[str, str]:
    """The labels every release Moorage installs or upgrades carries (see engine/context.py)."""
    return {CLUSTER_LABEL: cluster, ADDON_LABEL: addon.name, PRUNE_LABEL: prune_label(addon)}


def _prune_label_stale(release: Release, addon: ResolvedAddon) -> bool:
    # A release recorded with the other auto_prune setting must be upgraded, or a later removal
    # would follow the old setting. A release without the label (deployed before it existed) is not
    # upgraded for it alone: a removal keeps it, on doubt.
    recorded = release.labels.get(PRUNE_LABEL)
    return recorded is not None and recorded != prune_label(addon)


def waiting_reason(options: Options, addon: ResolvedAddon) -> tuple[str, str] | None:
    """(reason code, message) when a change of this add-on must wait for a person, else None."""
    if addon.name in options.held:
        return "rollback_held", (
            "rolled back by hand: held until `moorage addons resume` or a commit that changes it"
        )
    if options.only is None and options.automated_only and not addon.settings.sync_policy.automated:
        return "manual_sync", "changes waiting for a manual sync (sync_policy.automated is off)"
    return None


def in_sync(release: Release | None, desired: Desired) -> bool:
    return (
        release is not None
        and release.status == "deployed"
        and release.namespace == desired.addon.namespace
        and release.chart_name == desired.addon.chart_name
        and release.chart_version == desired.addon.chart_version
        and values_digest(release.values) == desired.digest
        and not _prune_label_stale(release, desired.addon)
    )


async def release_health(ctx: EngineContext, release: Release, strict: bool) -> AddonHealth:
    """Health of every resource in the release's manifest, from live objects."""
    desired = await objects.with_namespaces(
        ctx.kube, objects.parse_manifest(release.manifest), release.namespace
    )
    live = await objects.fetch_live(ctx.kube, desired)
    now = ctx.clock()
    healths = [(str(key), assess(live[key], now, checks=ctx.checks)) for key in sorted(live)]
    return addon_health(healths, strict=strict)


def _timeout(ctx: EngineContext, addon: ResolvedAddon, creating: bool) -> int:
    if ctx.options.timeout_seconds is not None:
        return ctx.options.timeout_seconds
    jobs = addon.job_configuration
    return jobs.create_job_timeout if creating else jobs.update_job_timeout


async def deploy(
    ctx: EngineContext,
    addon: ResolvedAddon,
    current: Release | None,
    cluster: str,
    *,
    migrating_from: str | None = None,
) -> EntryOutcome:
    """Make the add-on's release match its definition. `current` is its newest stored revision;
    `migrating_from` names the Argo CD Application whose objects it may take over."""
    started = time.monotonic()
    ref = f"addon/{addon.name}"
    desired = Desired.of(addon)
    if in_sync(current, desired):
        return EntryOutcome(
            ref, EntryStatus.UNCHANGED, f"release {addon.namespace}/{addon.name} is up to date"
        )
    waiting = waiting_reason(ctx.options, addon)
    if waiting is not None:
        return EntryOutcome(ref, EntryStatus.WAITING, waiting[1], reason=waiting[0])

    creating = current is None
    decision = windows.decide(
        windows.SyncWindow.from_spec(addon.settings.sync_window) if addon.settings.sync_window else None,
        ctx.clock(),
        windows.SyncAction.CREATE if creating else windows.SyncAction.UPDATE,
    )
    if not decision.allowed:
        opens = f"; it opens at {decision.retry_at.isoformat()}" if decision.retry_at else ""
        return EntryOutcome(
            ref, EntryStatus.CANCELLED, f"outside its sync window{opens}", reason="outside_sync_window"
        )

    what = _change_summary(current, desired)
    if ctx.options.dry_run:
        return EntryOutcome(ref, EntryStatus.PLANNED, f"would {what}")

    settings = addon.settings
    policy = RetryPolicy.from_spec(settings.retry_policy)
    timeout = _timeout(ctx, addon, creating)
    attempts = 0
    adopt = False
    adopted: list[str] = []

    async def install() -> None:
        await ctx.helm.upgrade_install(
            addon.name,
            addon.namespace,
            chart_ref(addon),
            desired.values,
            secrets=desired.secrets,
            history_max=settings.revision_history_limit,
            take_ownership=adopt,
            # adopting means taking the fields too: another manager's values would stop the apply
            force_conflicts=adopt,
            # helm v4 turns --wait to watcher whenever it may roll back: only under strict health
            rollback_on_failure=settings.strict_health_check,
            wait="watcher" if settings.strict_health_check else "hookOnly",
            timeout_seconds=timeout,
            description=f"moorage: {what}",
            labels=release_labels(addon, cluster),
        )

    async def attempt(number: int) -> AddonHealth:
        nonlocal attempts, adopt
        attempts = number
        if current is not None and current.namespace == addon.namespace:
            auto_prune = settings.sync_policy.automated and settings.sync_policy.auto_prune
            await pruneguard.set_guard(ctx, current, keep=not auto_prune)
        try:
            await install()
        except HelmError as e:
            if _ADOPTABLE not in str(e) or adopt:
                raise
            # Objects exist that the release does not own: ask who owns them before helm may take them.
            rendered = await ctx.helm.template(
                addon.name, addon.namespace, chart_ref(addon), desired.values, secrets=desired.secrets
            )
            previous = current.namespace if current is not None else None
            found = await ownership.claims(
                ctx.kube, rendered, addon.namespace, addon.name, previous, migrating_from
            )
            taken = ownership.decide(found, settings.take_ownership, addon.name)
            if not taken:
                raise
            adopt = True
            adopted[:] = [c.describe() for c in taken]
            await install()
        releases, _ = await read_releases(ctx.kube, addon.namespace, addon.name)
        new = latest(releases).get((addon.namespace, addon.name))
        if new is None:
            raise HelmError(
                f"helm reported success but release {addon.namespace}/{addon.name} is not stored",
                temporary=True,
            )
        health = await release_health(ctx, new, settings.strict_health_check)
        if not health.acceptable:
            raise UnhealthyError(f"{health.status}: {health.reason}")
        return health

    try:
        health = await run_with_retry(
            attempt,
            policy,
            is_retryable=lambda e: isinstance(e, HelmError | UnhealthyError | kube_errors.KubeError),
            sleep=ctx.sleep,
        )
    except ownership.OwnershipConflict as e:
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            f"{what} refused: {e}",
            reason="ownership_conflict",
            attempts=attempts,
            seconds=time.monotonic() - started,
        )
    except (HelmError, UnhealthyError, kube_errors.KubeError) as e:
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            f"{what} failed after {attempts} attempt(s): {e}",
            reason="unhealthy" if isinstance(e, UnhealthyError) else "apply_failed",
            health="Degraded",
            health_reason=str(e),
            attempts=attempts,
            seconds=time.monotonic() - started,
        )

    outcome = EntryOutcome(
        ref,
        EntryStatus.APPLIED,
        what,
        health=str(health.status),
        health_reason=health.reason,
        attempts=attempts,
        adopted=adopted,
    )
    if adopted:
        outcome.message += f"; adopted {len(adopted)} existing object(s): " + ", ".join(adopted[:5])
    if current is not None and current.namespace != addon.namespace:
        removed, kept = await clean_up_old_release(ctx, current)
        outcome.pruned.extend(removed)
        outcome.kept.extend(kept)
        outcome.message += f"; moved from namespace {current.namespace}"
    outcome.seconds = time.monotonic() - started
    return outcome


def _change_summary(current: Release | None, desired: Desired) -> str:
    addon = desired.addon
    chart = f"{addon.chart_name} {addon.chart_version}"
    if current is None:
        return f"install {chart} into {addon.namespace}"
    if current.namespace != addon.namespace:
        return f"move {chart} from namespace {current.namespace} to {addon.namespace}"
    if current.status != "deployed":
        return f"upgrade {chart} (release was {current.status})"
    if (current.chart_name, current.chart_version) != (addon.chart_name, addon.chart_version):
        return f"upgrade {current.chart_name} {current.chart_version} → {addon.chart_version}"
    if values_digest(current.values) == desired.digest and _prune_label_stale(current, addon):
        return f"upgrade {chart} (auto_prune is now {'on' if prune_label(addon) == 'true' else 'off'})"
    return f"upgrade {chart} (values changed)"
