"""Running a plan: entries start when everything they depend on (their parents and every entry of a
lower deploy wave) succeeded, at most `concurrency` at a time; a failure blocks its dependents."""

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from moorage.engine import addons, argocd, inventory, manifests, migrate
from moorage.engine import removed as removed_addons
from moorage.engine.context import ADDON_LABEL, EngineContext
from moorage.engine.outcome import EntryOutcome, EntryStatus, SyncResult
from moorage.engine.removed import current_release as current_release  # moved; still imported from here
from moorage.helm.cli import HelmError
from moorage.helm.storage import Release, latest, read_releases
from moorage.spec.content import ResolvedCluster
from moorage.spec.graph import Plan, ResourceRef

Progress = Callable[[EntryOutcome], None]


def _blocked(ref: ResourceRef, plan: Plan, outcomes: Mapping[str, EntryOutcome]) -> EntryOutcome | None:
    step = plan.steps[ref]
    for parent in step.parents:
        if not outcomes[str(parent)].ok:
            return EntryOutcome(
                str(ref),
                EntryStatus.BLOCKED,
                f"blocked: parent {parent} did not succeed ({outcomes[str(parent)].status})",
                reason="blocked_by_parent",
            )
    for dep in sorted(plan.dependencies(ref)):
        if not outcomes[str(dep)].ok:
            wave = plan.steps[dep].wave
            return EntryOutcome(
                str(ref),
                EntryStatus.BLOCKED,
                f"blocked: {dep} in deploy wave {wave} did not succeed ({outcomes[str(dep)].status})",
                reason="blocked_by_wave",
            )
    return None


async def sync(
    ctx: EngineContext, cluster: ResolvedCluster, plan: Plan, progress: Progress | None = None
) -> SyncResult:
    """Make the cluster match the definition once."""
    started = time.monotonic()
    stored, _ = await read_releases(ctx.kube)
    releases = latest(stored)
    inventories = await inventory.read(ctx.kube, cluster.name)
    # Moorage's Argo CD Applications of add-ons now on the native engine: to migrate (engine/migrate.py)
    applications = {
        name: app
        for app in await argocd.owned_applications(ctx, cluster.name)
        if (name := app["metadata"]["labels"].get(ADDON_LABEL, "")) in cluster.addons
        and not argocd.uses_argocd(cluster.addons[name], cluster.default_engine)
    }
    outcomes: dict[str, EntryOutcome] = {}
    finished = {ref: asyncio.Event() for ref in plan.order}
    slots = asyncio.Semaphore(max(1, ctx.options.concurrency))

    async def run(ref: ResourceRef) -> None:
        try:
            for dep in plan.dependencies(ref):
                await finished[dep].wait()
            outcome = _blocked(ref, plan, outcomes)
            if outcome is None:
                async with slots:
                    outcome = await _deploy(ctx, cluster, ref, releases, inventories, applications)
        except Exception as e:  # one entry's unexpected failure must not take the others down
            outcome = EntryOutcome(
                str(ref), EntryStatus.FAILED, f"{type(e).__name__}: {e}", reason="internal_error"
            )
        outcomes[str(ref)] = outcome
        finished[ref].set()
        if progress:
            progress(outcome)

    await asyncio.gather(*(run(ref) for ref in plan.order))
    result = SyncResult(outcomes={str(ref): outcomes[str(ref)] for ref in plan.order})
    selective = ctx.options.only is not None  # an add-on sync prunes nothing else
    if ctx.options.prune_manifests and not ctx.options.dry_run and not selective:
        for entry in sorted(set(inventories) - set(cluster.manifests)):
            removed = EntryOutcome(
                f"manifest/{entry}", EntryStatus.APPLIED, "removed from the definition: pruned"
            )
            await manifests.prune_items(
                ctx, cluster.name, entry, inventories[entry], set(), removed, entry_removed=True
            )
            if not removed.kept:
                await inventory.remove(ctx.kube, cluster.name, entry)
            result.pruned_entries.append(entry)
            result.outcomes[removed.ref] = removed
            if progress:
                progress(removed)
    if ctx.options.prune_addons and not ctx.options.dry_run and not selective:
        for decision in removed_addons.decide(releases, cluster):
            try:
                outcome = await _remove_addon(ctx, cluster, decision)
            except Exception as e:  # one release's unexpected failure must not stop the others
                release = decision.release
                outcome = EntryOutcome(
                    f"addon/{release.name}",
                    EntryStatus.FAILED,
                    f"removed from the definition: {type(e).__name__}: {e}",
                    reason="internal_error",
                )
            if outcome.ref in result.outcomes:  # the same name in two namespaces
                outcome.ref = f"addon/{decision.release.namespace}/{decision.release.name}"
            if decision.uninstall and outcome.status is EntryStatus.APPLIED:
                result.pruned_addons.append(decision.release.name)
            result.outcomes[outcome.ref] = outcome
            if progress:
                progress(outcome)
    if ctx.options.prune_addons and not ctx.options.dry_run and not selective:
        for outcome in await argocd.remove_missing(ctx, cluster):
            result.outcomes.setdefault(outcome.ref, outcome)
            if outcome.pruned:
                result.pruned_addons.append(outcome.ref.removeprefix("addon/"))
            if progress:
                progress(outcome)
    result.seconds = time.monotonic() - started
    return result


async def _remove_addon(
    ctx: EngineContext, cluster: ResolvedCluster, decision: removed_addons.Decision
) -> EntryOutcome:
    """Apply one decision of engine/removed.py: uninstall the release, or say why it stays."""
    started = time.monotonic()
    release = decision.release
    ref, where = f"addon/{release.name}", f"release {release.namespace}/{release.name}"
    if decision.uninstall:
        # decided on the storage read when the sync began: decide again on the release as it is now
        stored, _ = await read_releases(ctx.kube, release.namespace, release.name)
        fresh = latest(stored).get((release.namespace, release.name))
        if fresh is None:
            return EntryOutcome(ref, EntryStatus.UNCHANGED, f"removed from the definition: {where} is gone")
        again = removed_addons.decide({(fresh.namespace, fresh.name): fresh}, cluster)
        if not again:
            return EntryOutcome(
                ref,
                EntryStatus.UNCHANGED,
                f"removed from the definition: {where} no longer belongs to this definition",
            )
        decision = again[0]
    if not decision.uninstall:
        return EntryOutcome(
            ref,
            EntryStatus.UNCHANGED,
            f"removed from the definition: {where} {decision.reason}",
            reason=decision.code,
            kept=[f"{where}: {decision.reason}"],
        )
    try:
        await ctx.helm.uninstall(
            release.name, release.namespace, timeout_seconds=ctx.options.timeout_seconds or 300
        )
    except HelmError as e:
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            f"removed from the definition: uninstalling {where} failed: {e}",
            reason="uninstall_failed",
            seconds=time.monotonic() - started,
        )
    return EntryOutcome(
        ref,
        EntryStatus.APPLIED,
        f"removed from the definition: uninstalled {where}",
        reason=decision.code,
        pruned=[where],
        seconds=time.monotonic() - started,
    )


async def _deploy(
    ctx: EngineContext,
    cluster: ResolvedCluster,
    ref: ResourceRef,
    releases: Mapping[tuple[str, str], Release],
    inventories: Mapping[str, list[inventory.Item]],
    applications: Mapping[str, dict[str, Any]],
) -> EntryOutcome:
    selected = ctx.options.only
    if selected is not None and not (ref.kind == "addon" and ref.name in selected):
        return EntryOutcome(str(ref), EntryStatus.UNCHANGED, "not part of this add-on sync")
    if ref.kind == "addon":
        addon = cluster.addons[ref.name]
        current = current_release(releases, addon, cluster.name)
        if argocd.uses_argocd(addon, cluster.default_engine):
            return await argocd.deploy(ctx, addon, cluster.name, current)
        if ref.name in applications:  # it ran on the ArgoCD engine: move it to a Helm release first
            return await migrate.from_argocd(ctx, addon, applications[ref.name], current, cluster.name)
        return await addons.deploy(ctx, addon, current, cluster.name)
    if ref.kind == "manifest":
        return await manifests.deploy(
            ctx, cluster.manifests[ref.name], inventories.get(ref.name), cluster.name
        )
    return EntryOutcome(
        str(ref), EntryStatus.UNCHANGED, f"{ref.kind} entries are not deployed by the native engine"
    )
