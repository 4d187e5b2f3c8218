"""The reconcile sweep over every add-on of a cluster: recover stuck releases, detect drift, self-heal,
prune orphans; returns the heartbeat record. Reads come from release storage and batched LISTs;
only changes run `helm`."""

import asyncio
import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moorage.engine import addons, argocd, fights, heal, objects, prune, windows
from moorage.engine.context import EngineContext
from moorage.engine.diff import DEFAULT_OWN_MANAGERS, IgnoreRule, ResourceDrift, diff_resource
from moorage.engine.health import (
    DEFAULT_PROGRESS_DEADLINE,
    AddonHealth,
    Checks,
    Context,
    Health,
    HealthStatus,
    addon_health,
    assess,
    is_workload,
    owned_pods,
    with_pods,
)
from moorage.engine.outcome import Heartbeat
from moorage.engine.removed import current_release
from moorage.helm.cli import HelmError
from moorage.helm.storage import Release, latest, mark_failed, read_releases
from moorage.kube import errors as kube_errors
from moorage.spec.content import ResolvedAddon, ResolvedCluster

# Helm and Moorage itself, including the prune guard's annotation: fields they own are never drift.
OWN_MANAGERS = DEFAULT_OWN_MANAGERS | {prune.GUARD_MANAGER}


@dataclass
class AddonReport:
    """What one sweep found and did for one add-on (the CLI's `diff` and `sweep` show these)."""

    name: str
    namespace: str
    release: str | None  # "rev 3 deployed", or None when not installed
    drift: list[ResourceDrift] = field(default_factory=list)
    healed: bool = False
    heal_skipped: str | None = None  # why drift was not healed
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    recovered: str | None = None
    errors: list[str] = field(default_factory=list)
    # self-heal (engine/heal.py): objects re-applied from the stored manifest (no new Helm revision),
    # those of them that were missing, and fields left alone because another manager keeps setting them
    reapplied: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    conflicts: list[fights.Conflict] = field(default_factory=list)
    health: AddonHealth | None = None  # of the release's resources, before any heal
    current: Release | None = None  # the release the sweep looked at
    # the ArgoCD engine's add-ons: Argo CD heals and prunes them; the sweep only reads their Application
    engine: str = "native"
    application: dict[str, Any] | None = None


def ignore_rules(addon: ResolvedAddon) -> list[IgnoreRule]:
    return [IgnoreRule.from_spec(r) for r in addon.settings.ignore_differences]


@dataclass
class Scan:
    """One batched look at the cluster: each add-on's current release, the objects of its deployed
    manifest, and those objects live (None when missing); plus, per namespace holding a workload
    that is not Healthy, its Pods (and ReplicaSets, for Deployments), so health can name the pod
    and container that keep such a workload from working."""

    release_of: dict[str, Release | None]
    desired: dict[str, list[dict[str, Any]]]
    live: dict[objects.ObjectKey, dict[str, Any] | None]
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: Checks | None = None  # user health checks (EngineContext.checks)

    def drift(self, addon: ResolvedAddon) -> list[ResourceDrift]:
        rules = ignore_rules(addon)
        found = []
        for obj in self.desired.get(addon.name, []):
            drift = diff_resource(obj, self.live.get(objects.key_of(obj)), rules, own_managers=OWN_MANAGERS)
            if drift is not None:
                found.append(drift)
        return found

    def health(self, addon: ResolvedAddon, now: datetime) -> AddonHealth | None:
        """The worst health of the release's resources (a workload that is not Healthy judged with
        its pods as well); None when it is not installed here."""
        if addon.name not in self.desired:
            return None
        pod_ctx = Context(now=now, progress_deadline=DEFAULT_PROGRESS_DEADLINE)
        found = []
        for key in sorted(objects.key_of(o) for o in self.desired[addon.name]):
            live = self.live.get(key)
            health = assess(live, now, checks=self.checks)
            if live is not None and health.status is not HealthStatus.HEALTHY and is_workload(live):
                pods = owned_pods(live, self.children.get(key.namespace, []))
                health = with_pods(health, live, pods, pod_ctx)
            found.append((str(key), health))
        return addon_health(found, strict=addon.settings.strict_health_check)


async def scan(
    ctx: EngineContext,
    cluster: ResolvedCluster,
    releases: Mapping[tuple[str, str], Release],
    only: Collection[str] | None = None,
) -> Scan:
    """Every (or `only` these) installed add-on's deployed objects, fetched live in one batch, and
    the pods of workloads that are not Healthy (one LIST per namespace)."""
    desired_by_addon: dict[str, list[dict[str, Any]]] = {}
    release_of: dict[str, Release | None] = {}
    for name, addon in cluster.addons.items():
        if only is not None and name not in only:
            continue
        release = current_release(releases, addon, cluster.name)
        release_of[name] = release
        if release is None or release.namespace != addon.namespace:
            continue
        desired_by_addon[name] = await objects.with_namespaces(
            ctx.kube, objects.parse_manifest(release.manifest), release.namespace
        )
    everything = [o for objs in desired_by_addon.values() for o in objs]
    live = await objects.fetch_live(ctx.kube, everything)

    # Pods (and ReplicaSets, for Deployments) only where a workload is not Healthy: none when all are.
    now = ctx.clock()
    wanted: set[tuple[str, str, str]] = set()
    for key, obj in live.items():
        if obj is None or not key.namespace or not is_workload(obj):
            continue
        if assess(obj, now).status is HealthStatus.HEALTHY:
            continue
        wanted.add(("v1", "Pod", key.namespace))
        if key.kind == "Deployment":
            wanted.add(("apps/v1", "ReplicaSet", key.namespace))
    children: dict[str, list[dict[str, Any]]] = {}

    async def listed(api_version: str, kind: str, namespace: str) -> None:
        try:
            found = await ctx.kube.list(api_version, kind, namespace)
        except kube_errors.KubeError:
            return  # its workloads keep their own health
        children.setdefault(namespace, []).extend(found)

    await asyncio.gather(*(listed(*w) for w in sorted(wanted)))
    return Scan(release_of, desired_by_addon, live, children, ctx.checks)


async def detect_drift(
    ctx: EngineContext, cluster: ResolvedCluster, releases: Mapping[tuple[str, str], Release]
) -> dict[str, tuple[Release | None, list[ResourceDrift]]]:
    """Drift of every installed add-on against its deployed manifest, with one batched live fetch."""
    found = await scan(ctx, cluster, releases)
    return {name: (found.release_of[name], found.drift(addon)) for name, addon in cluster.addons.items()}


async def _recover(
    ctx: EngineContext, cluster: str, addon: ResolvedAddon, release: Release, report: AddonReport
) -> bool:
    """A release pending for too long: unlock it, upgrade with the desired input, else roll back."""
    age = (ctx.clock() - release.last_deployed).total_seconds() if release.last_deployed else None
    if age is None or age < ctx.options.stuck_after_seconds:
        return False
    if not ctx.options.recover_stuck:
        report.errors.append(f"{release.status} for {int(age)}s: left alone (stuck-release recovery is off)")
        return False
    await mark_failed(ctx.kube, release, f"unlocked by Moorage: {release.status} for {int(age)}s")
    outcome = await addons.deploy(ctx, addon, release_after_unlock(release), cluster)
    if outcome.ok:
        report.recovered = f"{release.status} for {int(age)}s: upgraded again ({outcome.message})"
        return True
    stored, _ = await read_releases(ctx.kube, release.namespace, release.name)
    deployed = [r for r in stored if r.status in ("deployed", "superseded") and r.revision < release.revision]
    if not deployed:
        report.errors.append(
            f"stuck release could not be upgraded and has no earlier revision: {outcome.message}"
        )
        return False
    target = max(deployed, key=lambda r: r.revision)
    try:
        await ctx.helm.rollback(release.name, release.namespace, target.revision)
    except HelmError as e:
        report.errors.append(f"stuck release: upgrade failed ({outcome.message}) and rollback failed ({e})")
        return False
    report.recovered = f"{release.status} for {int(age)}s: rolled back to revision {target.revision}"
    return True


def release_after_unlock(release: Release) -> Release:
    return dataclasses.replace(release, status="failed")


async def _heal(ctx: EngineContext, cluster: str, addon: ResolvedAddon, report: AddonReport) -> None:
    policy = addon.settings.sync_policy
    if not (policy.automated and policy.self_heal):
        report.heal_skipped = "self_heal is off"
        return
    window = windows.SyncWindow.from_spec(addon.settings.sync_window) if addon.settings.sync_window else None
    decision = windows.decide(window, ctx.clock(), windows.SyncAction.SELF_HEAL)
    if not decision.allowed:
        report.heal_skipped = "outside_sync_window"
        return
    # The deployed revision, re-read: heal puts back what it holds, with no helm run (no new revision).
    try:
        stored, _ = await read_releases(ctx.kube, addon.namespace, addon.name)
    except kube_errors.KubeError as e:
        report.errors.append(f"self-heal: {e}")
        return
    release = current_release(latest(stored), addon, cluster)
    if release is None or release.status != "deployed" or release.namespace != addon.namespace:
        report.heal_skipped = "the release changed during the sweep"
        return
    now, detector = ctx.clock(), ctx.fights
    held = (
        detector.observe(addon.name, release.revision, fights.drifting_fields(report.drift), now)
        if detector is not None
        else frozenset()
    )
    outcome = await heal.reapply_release(
        ctx, release, addon, report.drift, hold=held, own_managers=OWN_MANAGERS
    )
    report.errors += outcome.errors
    report.reapplied, report.recreated = outcome.applied, outcome.created
    if detector is not None:
        detector.healed(addon.name, outcome.healed, now)
        for key, found in outcome.held.items():
            detector.describe(addon.name, key, found.manager, found.ignore_entry)
        report.conflicts = detector.conflicts(addon.name)
    report.healed = bool(outcome.applied)
    if not outcome.applied and not outcome.errors:
        report.heal_skipped = (
            "every drifted field is in conflict with another field manager" if held else "no drift left"
        )


async def _prune_orphans(
    ctx: EngineContext,
    addon: ResolvedAddon,
    history: Sequence[Release],
    current: Release,
    report: AddonReport,
) -> None:
    """Objects of earlier revisions that the current manifest no longer holds (left behind by a
    failed upgrade, a keep policy, or anything else), deleted only when still owned by the release."""
    policy = addon.settings.sync_policy
    auto_prune = policy.automated and policy.auto_prune
    now_objects = await objects.with_namespaces(
        ctx.kube, objects.parse_manifest(current.manifest), current.namespace
    )
    desired = {objects.key_of(o) for o in now_objects}
    earlier: dict[objects.ObjectKey, dict[str, Any]] = {}
    for old in history:
        if old.revision >= current.revision:
            continue
        try:
            for obj in await objects.with_namespaces(
                ctx.kube, objects.parse_manifest(old.manifest), old.namespace
            ):
                earlier.setdefault(objects.key_of(obj), obj)
        except kube_errors.UnknownKind:
            continue
    gone = {k: o for k, o in earlier.items() if k not in desired}
    if not gone:
        return
    owner = {"meta.helm.sh/release-name": current.name, "meta.helm.sh/release-namespace": current.namespace}
    live = await objects.fetch_live(ctx.kube, list(gone.values()))
    candidates = [prune.Candidate(str(o["apiVersion"]), k, None, owner) for k, o in gone.items()]
    for d in prune.decide(candidates, desired, live):
        key = d.candidate.key
        if d.delete and not auto_prune:
            report.kept.append(f"{key}: orphaned, kept because auto_prune is off")
        elif d.delete:
            if await ctx.kube.delete(
                d.candidate.api_version, key.kind, key.name, key.namespace or None, uid=d.uid
            ):
                report.pruned.append(str(key))
        elif d.reason != "already gone":
            report.kept.append(f"{key}: {d.reason}")


async def sweep(ctx: EngineContext, cluster: ResolvedCluster) -> tuple[Heartbeat, list[AddonReport]]:
    started_at, started = ctx.clock(), time.monotonic()
    stored, problems = await read_releases(ctx.kube)
    releases = latest(stored)
    reports: dict[str, AddonReport] = {}
    for name, addon in cluster.addons.items():
        release = current_release(releases, addon, cluster.name)
        reports[name] = AddonReport(
            name, addon.namespace, f"rev {release.revision} {release.status}" if release else None
        )

    recovered = 0
    for name, addon in cluster.addons.items():
        release = current_release(releases, addon, cluster.name)
        if (
            release is not None
            and release.pending
            and await _recover(ctx, cluster.name, addon, release, reports[name])
        ):
            recovered += 1
    if recovered:
        stored, problems = await read_releases(ctx.kube)
        releases = latest(stored)

    found = await scan(ctx, cluster, releases)
    now = ctx.clock()
    on_argocd = {n for n, a in cluster.addons.items() if argocd.uses_argocd(a, cluster.default_engine)}
    if on_argocd:
        apps = {a["metadata"]["name"]: a for a in await argocd.owned_applications(ctx, cluster.name)}
        for name in on_argocd:
            addon, app = cluster.addons[name], apps.get(name)
            status, reason = argocd.health_of(app, addon)
            reports[name].engine, reports[name].application = argocd.ENGINE, app
            reports[name].release = "Argo CD Application" if app is not None else None
            reports[name].health = addon_health(
                [(f"Application {name}", Health(status, reason))], strict=False
            )
    heals = []
    for name, addon in cluster.addons.items():
        if name in on_argocd:
            continue
        release, drift = found.release_of[name], found.drift(addon)
        reports[name].drift = drift
        reports[name].health = found.health(addon, now)
        reports[name].current = release
        if drift and release is not None and release.status == "deployed":
            heals.append(_heal(ctx, cluster.name, cluster.addons[name], reports[name]))
    slots = asyncio.Semaphore(max(1, ctx.options.concurrency))

    async def bounded(job: Any) -> None:
        async with slots:
            await job

    await asyncio.gather(*(bounded(h) for h in heals))

    for name, addon in cluster.addons.items():
        release = current_release(releases, addon, cluster.name)
        if release is None or release.status != "deployed" or name in on_argocd:
            continue
        history = [r for r in stored if r.name == release.name and r.namespace == release.namespace]
        try:
            await _prune_orphans(ctx, addon, history, release, reports[name])
        except kube_errors.KubeError as e:
            reports[name].errors.append(f"prune: {e}")

    beat = Heartbeat(
        last_sweep_at=started_at,
        sweep_duration_seconds=time.monotonic() - started,
        addons_inspected=len(cluster.addons),
        drifted=sum(1 for r in reports.values() if r.drift),
        healed=sum(1 for r in reports.values() if r.healed),
        pruned=sum(len(r.pruned) for r in reports.values()),
        recovered=recovered,
        errors=problems + [f"{r.name}: {e}" for r in reports.values() for e in r.errors],
    )
    return beat, list(reports.values())
