"""The ArgoCD engine: an add-on whose engine is `argo_cd` becomes an Argo CD Application (see
engine/argocd_app.py for its shape), which the Argo CD running in the cluster syncs. The engine
applies it (server-side, field manager `moorage`), waits for Argo CD to report it Synced and
Healthy, and deletes it when the add-on leaves the definition; Argo CD's own finalizer decides
whether the resources go too (only when the add-on may be pruned). Applications Moorage did not
create are never touched, even under an add-on's name."""

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from moorage.engine import argocd_app, windows
from moorage.engine.addons import waiting_reason
from moorage.engine.context import ADDON_LABEL, CLUSTER_LABEL, EngineContext
from moorage.engine.health import has_rule
from moorage.engine.health.types import HealthStatus
from moorage.engine.outcome import EntryOutcome, EntryStatus
from moorage.helm.storage import Release
from moorage.kube import errors as kube_errors
from moorage.spec.content import ResolvedAddon, ResolvedCluster
from moorage.spec.migration import eligibility
from moorage.spec.protocol import AddonObservation

ENGINE = "argo_cd"
POLL_SECONDS = 1.0
KIND = (argocd_app.API_VERSION, "Application")


def uses_argocd(addon: ResolvedAddon, default_engine: str | None) -> bool:
    return (addon.settings.engine or default_engine or "ankra_native") == ENGINE


async def current(ctx: EngineContext, name: str) -> dict[str, Any] | None:
    """The Application named `name` in Argo CD's namespace (None: absent, or no Argo CD CRD)."""
    try:
        return await ctx.kube.get(*KIND, name, argocd_app.NAMESPACE)
    except kube_errors.NotFound:
        return None


def _spec_matches(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    if live is None:
        return False
    spec, want = live.get("spec") or {}, desired["spec"]
    return all(spec.get(k) == v for k, v in want.items())


async def deploy(
    ctx: EngineContext, addon: ResolvedAddon, cluster: str, release: Release | None = None
) -> EntryOutcome:
    """Make the add-on's Application match its definition and wait until Argo CD synced it.
    `release`: the add-on's Helm release from the native engine (a move back to Argo CD), which is
    forgotten once Argo CD reports the add-on Synced and Healthy; its objects stay, now Argo CD's."""
    started = time.monotonic()
    ref = f"addon/{addon.name}"
    refused = argocd_app.refusal(addon)
    if refused:
        return EntryOutcome(
            ref, EntryStatus.FAILED, f"engine argo_cd refused: {refused}", reason="engine_refused"
        )
    values = addon.values.reveal() or {}
    desired = argocd_app.application(addon, cluster, values)
    try:
        live = await current(ctx, addon.name)
    except kube_errors.UnknownKind:
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            "engine argo_cd: Argo CD is not installed in this cluster (no Application CRD); install Argo CD "
            "in namespace argocd, or set the add-on's engine to ankra_native",
            reason="engine_missing",
        )
    except kube_errors.KubeError as e:
        return EntryOutcome(
            ref, EntryStatus.FAILED, f"reading Application {addon.name}: {e}", reason="apply_failed"
        )
    if live is not None and not argocd_app.owned(live):
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            f"an Application {argocd_app.NAMESPACE}/{addon.name} exists that Moorage did not create; "
            "rename the add-on or remove that Application",
            reason="ownership_conflict",
        )
    source = desired["spec"]["source"]
    state = argocd_app.state_of(live or {}, addon.chart_version, source)
    if _spec_matches(live, desired) and state.done and release is None:
        return EntryOutcome(
            ref,
            EntryStatus.UNCHANGED,
            f"Application {addon.name} is up to date (Argo CD: Synced, Healthy)",
            health=str(state.health),
        )
    waiting = waiting_reason(ctx.options, addon)
    if waiting is not None:
        return EntryOutcome(ref, EntryStatus.WAITING, waiting[1], reason=waiting[0])
    creating = live is None
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
    verb = "create" if creating else "update"
    what = f"{verb} Application {addon.name} ({addon.chart_name} {addon.chart_version})"
    if ctx.options.dry_run:
        return EntryOutcome(ref, EntryStatus.PLANNED, f"would {what}")
    if not addon.settings.sync_policy.automated:
        # a manual add-on syncs when asked (`moorage addons sync`): one operation, as `argocd app sync`
        desired["operation"] = {
            "sync": {"revision": addon.chart_version},
            "initiatedBy": {"username": "moorage"},
        }
    try:
        secret = argocd_app.repository_secret(addon)
        if secret is not None:
            await ctx.kube.apply(secret, field_manager=ctx.field_manager, force=True)
        await ctx.kube.apply(desired, field_manager=ctx.field_manager, force=True)
    except kube_errors.KubeError as e:
        return EntryOutcome(ref, EntryStatus.FAILED, f"{what} failed: {e}", reason="apply_failed")
    timeout = ctx.options.timeout_seconds or (
        addon.job_configuration.create_job_timeout if creating else addon.job_configuration.update_job_timeout
    )
    state = await _wait(ctx, addon, source, timeout)
    outcome = EntryOutcome(
        ref,
        EntryStatus.APPLIED if state.done else EntryStatus.FAILED,
        what if state.done else f"{what}: Argo CD did not report it Synced and Healthy within {timeout} s",
        reason=None if state.done else "unhealthy",
        health=str(state.health),
        health_reason=state.message or f"Argo CD: {state.sync}, {state.health}",
        attempts=1,
        seconds=time.monotonic() - started,
    )
    if not state.done and state.message:
        outcome.message += f" ({state.message})"
    if state.done and release is not None:
        forgotten = await forget_release(ctx, release)
        outcome.message += f"; moved from the native engine: Helm release {release.namespace}/{release.name} "
        outcome.message += f"forgotten ({forgotten} revision(s)), its objects kept"
        outcome.reason = "moved_to_argocd"
    return outcome


async def forget_release(ctx: EngineContext, release: Release) -> int:
    """Delete the Helm storage Secrets of `release` (never its objects): Argo CD manages them now."""
    secrets = await ctx.kube.list(
        "v1", "Secret", release.namespace, label_selector=f"owner=helm,name={release.name}"
    )
    for secret in secrets:
        meta = secret["metadata"]
        await ctx.kube.delete("v1", "Secret", meta["name"], release.namespace, uid=meta.get("uid"))
    return len(secrets)


async def _wait(
    ctx: EngineContext, addon: ResolvedAddon, source: Mapping[str, Any], timeout: float
) -> argocd_app.AppState:
    deadline = time.monotonic() + timeout
    state = argocd_app.state_of({}, addon.chart_version, source)
    while True:
        with contextlib.suppress(kube_errors.KubeError):  # the next look may answer; the deadline bounds it
            state = argocd_app.state_of(await current(ctx, addon.name) or {}, addon.chart_version, source)
        failed = state.operation in ("Failed", "Error") and not addon.settings.retry_policy.limit
        if state.done or failed or time.monotonic() >= deadline:
            return state
        await ctx.sleep(POLL_SECONDS)


async def owned_applications(ctx: EngineContext, cluster: str) -> list[dict[str, Any]]:
    """Moorage's Applications for this cluster: none when Argo CD's CRD is not installed, nor when the
    agent may not list Applications (narrow RBAC: it cannot have made any, and deletes nothing)."""
    try:
        found = await ctx.kube.list(*KIND, argocd_app.NAMESPACE, label_selector=f"{CLUSTER_LABEL}={cluster}")
    except (kube_errors.NotFound, kube_errors.UnknownKind, kube_errors.Forbidden):
        return []
    return [a for a in found if argocd_app.owned(a)]


async def migration_preview(ctx: EngineContext, offset: int, limit: int) -> dict[str, Any]:
    """One page of the cluster's Applications (every namespace) with their migration eligibility,
    flagging the kinds no health rule or user check of this agent judges (spec/migration.py)."""
    try:
        found = await ctx.kube.list(*KIND, None)
    except (kube_errors.NotFound, kube_errors.UnknownKind):
        found = []
    checks = ctx.checks

    def covered(group: str, kind: str) -> bool:
        return has_rule(group, kind) or (checks is not None and checks.for_kind(group, kind) is not None)

    found.sort(key=lambda a: ((a.get("metadata") or {}).get("namespace") or "", a["metadata"]["name"]))
    page = [eligibility(a, covered).to_dict() for a in found[offset : offset + limit]]
    return {"applications": page, "total": len(found), "offset": offset, "limit": limit}


async def remove_missing(ctx: EngineContext, cluster: ResolvedCluster) -> list[EntryOutcome]:
    """Delete the Applications of add-ons that left the definition. Argo CD deletes the resources
    only for Applications carrying its resources finalizer (the add-on could be pruned); the others
    leave their resources in place."""
    outcomes = []
    for app in await owned_applications(ctx, cluster.name):
        name = app["metadata"]["name"]
        addon_name = app["metadata"]["labels"].get(ADDON_LABEL, name)
        if addon_name in cluster.addons:
            continue  # still defined: on this engine, or migrating to the native one (engine/migrate.py)
        cascade = argocd_app.RESOURCES_FINALIZER in (app["metadata"].get("finalizers") or [])
        why = "removed from the definition"
        try:
            await ctx.kube.delete(*KIND, name, argocd_app.NAMESPACE, uid=app["metadata"].get("uid"))
        except kube_errors.KubeError as e:
            outcomes.append(
                EntryOutcome(
                    f"addon/{addon_name}", EntryStatus.FAILED, f"{why}: deleting Application {name}: {e}"
                )
            )
            continue
        where = f"Application {argocd_app.NAMESPACE}/{name}"
        outcomes.append(
            EntryOutcome(
                f"addon/{addon_name}",
                EntryStatus.APPLIED,
                f"{why}: deleted {where}" + ("" if cascade else " (its resources stay: auto_prune is off)"),
                pruned=[where],
                kept=[] if cascade else [f"resources of {where}: auto_prune is off"],
            )
        )
    return outcomes


def health_of(app: Mapping[str, Any] | None, addon: ResolvedAddon) -> tuple[HealthStatus, str]:
    """The add-on's health as Argo CD reports it, for the sweep and the state reports."""
    if app is None:
        return HealthStatus.MISSING, f"no Application {argocd_app.NAMESPACE}/{addon.name} yet"
    state = argocd_app.state_of(dict(app), addon.chart_version)
    return state.health, state.message or f"Argo CD: {state.sync}, {state.health}"


def _status(state: argocd_app.AppState) -> str:
    """A Helm-like release status for the lifecycle rules: what Argo CD is doing with the add-on."""
    if state.operation in ("Running", "Terminating"):
        return "pending-upgrade"
    if state.operation in ("Failed", "Error") and state.sync != "Synced":
        return "failed"
    return "deployed"


def differences(live: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    """Which parts of the Application's spec differ from `want`, by name (never values)."""
    spec = live.get("spec") or {}
    out = []
    for key in sorted(want):
        if key == "source":
            have, source = spec.get("source") or {}, want["source"]
            for part in ("repoURL", "chart", "targetRevision"):
                if have.get(part) != source.get(part):
                    out.append(f"source.{part}: {have.get(part)!r} → {source.get(part)!r}")
            if (have.get("helm") or None) != source.get("helm") or have.get("plugin") != source.get("plugin"):
                out.append("values differ")
        elif spec.get(key) != want[key]:
            out.append(f"{key} differs")
    return out


def _timestamp(value: Any) -> datetime | None:
    """An RFC 3339 time of Argo CD's status (`2026-12-02T10:00:03Z`), None when absent or unreadable."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _drifted(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A drift entry (no field changes: Argo CD's status names the resource only)."""
    group, version = resource.get("group") or "", resource.get("version") or ""
    return {
        "api_version": f"{group}/{version}" if group else version,
        "kind": resource.get("kind", ""),
        "namespace": resource.get("namespace", ""),
        "name": resource.get("name", ""),
        "drift_type": "missing" if (resource.get("health") or {}).get("status") == "Missing" else "modified",
        "changes": [],
    }


def healed_drift(app: Mapping[str, Any], heal: argocd_app.SelfHeal) -> list[dict[str, Any]]:
    """The resources a self-heal reverted, as drift entries (their version and namespace from the
    Application's resource list, which names every resource it tracks)."""
    tracked = {
        (r.get("group") or "", r.get("kind") or "", r.get("name") or ""): r
        for r in ((app.get("status") or {}).get("resources") or [])
    }
    return [
        {
            **_drifted(tracked.get(key) or {"group": key[0], "kind": key[1], "name": key[2]}),
            "drift_type": "modified",
        }
        for key in heal.resources
    ]


def before_heal(
    addon: ResolvedAddon, app: Mapping[str, Any], heal: argocd_app.SelfHeal, *, cause: str, commit: str | None
) -> AddonObservation:
    """The add-on as Argo CD found it when it started `heal`: out of sync by the resources it reverted.
    Reported before the Application's current state when the heal was over before Moorage saw the
    OutOfSync status (Argo CD can find and revert drift between two of its status writes)."""
    found = observation(addon, app, cause=cause, commit=commit)
    return found.model_copy(update={"drift": healed_drift(app, heal)[:100], "helm_status": "deployed"})


def observation(
    addon: ResolvedAddon,
    app: Mapping[str, Any] | None,
    *,
    cause: str,
    commit: str | None = None,
    last_error: str | None = None,
) -> AddonObservation:
    """The add-on as Argo CD reports it, in the same terms as a native add-on's observation."""
    policy = addon.settings.sync_policy
    base = AddonObservation(
        name=addon.name,
        namespace=addon.namespace,
        engine=ENGINE,
        chart=addon.chart_name,
        version=addon.chart_version,
        registry_url=addon.registry_url or "",
        strict_health=False,
        automated=policy.automated,
        self_heal=policy.automated and policy.self_heal,
        last_error=last_error[:4000] if last_error else None,
        commit=commit,
        defined_at=addon.defined_at[:600],
        cause=cause,
    )
    if app is None:
        return base
    state = argocd_app.state_of(dict(app), addon.chart_version)
    status = app.get("status") or {}
    history = status.get("history") or []
    drift = [_drifted(r) for r in (status.get("resources") or []) if r.get("status") == "OutOfSync"][:100]
    heal = argocd_app.self_heal(app)
    healing = heal is not None and heal.running
    if healing and heal is not None and not drift:
        drift = healed_drift(app, heal)
    diff = (
        []
        if argocd_app.refusal(addon)
        else differences(app, argocd_app.spec_for(addon, addon.values.reveal() or {}))
    )
    deployed_at = _timestamp(
        (status.get("operationState") or {}).get("finishedAt") or status.get("reconciledAt")
    )
    return base.model_copy(
        update={
            "installed": True,
            "release_chart": ((app.get("spec") or {}).get("source") or {}).get("chart", ""),
            "release_version": state.revision,
            "revision": history[-1].get("id") if history and isinstance(history[-1].get("id"), int) else None,
            # a self-heal running is drift being reverted, not a deploy: the drift is the reason
            "helm_status": "deployed" if healing else _status(state),
            "last_deployed": deployed_at,
            "health": str(state.health),
            "health_reason": (state.message or f"Argo CD: {state.sync}, {state.health}")[:4000],
            "drift": drift,
            "definition_matches": not diff and state.revision in ("", addon.chart_version),
            "definition_diff": diff[:100],
        }
    )
