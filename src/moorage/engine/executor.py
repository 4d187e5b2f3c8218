"""Running a plan: entries start when everything they depend on (their parents and every entry of a
lower deploy wave) succeeded, at most `concurrency` at a time; a failure blocks its dependents."""

import asyncio
import time
from collections.abc import Callable, Mapping

from moorage.engine import addons, inventory, manifests
from moorage.engine.context import CLUSTER_LABEL, EngineContext
from moorage.engine.outcome import EntryOutcome, EntryStatus, SyncResult
from moorage.helm.storage import Release, latest, read_releases
from moorage.spec.content import ResolvedAddon, ResolvedCluster
from moorage.spec.graph import Plan, ResourceRef

Progress = Callable[[EntryOutcome], None]


def current_release(
    releases: Mapping[tuple[str, str], Release], addon: ResolvedAddon, cluster: str
) -> Release | None:
    """The add-on's release: in its namespace if there is one, else one this definition deployed
    under the same name in another namespace (a namespace move). Releases Moorage did not deploy
    for this definition are never taken for a move."""
    if (addon.namespace, addon.name) in releases:
        return releases[(addon.namespace, addon.name)]
    elsewhere = [
        r
        for (_, name), r in releases.items()
        if name == addon.name and r.labels.get(CLUSTER_LABEL) == cluster
    ]
    return max(
        elsewhere,
        key=lambda r: (r.last_deployed.timestamp() if r.last_deployed else 0.0, r.revision),
        default=None,
    )


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
                    outcome = await _deploy(ctx, cluster, ref, releases, inventories)
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
    if ctx.options.prune_manifests and not ctx.options.dry_run:
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
    result.seconds = time.monotonic() - started
    return result


async def _deploy(
    ctx: EngineContext,
    cluster: ResolvedCluster,
    ref: ResourceRef,
    releases: Mapping[tuple[str, str], Release],
    inventories: Mapping[str, list[inventory.Item]],
) -> EntryOutcome:
    if ref.kind == "addon":
        addon = cluster.addons[ref.name]
        return await addons.deploy(ctx, addon, current_release(releases, addon, cluster.name), cluster.name)
    if ref.kind == "manifest":
        return await manifests.deploy(
            ctx, cluster.manifests[ref.name], inventories.get(ref.name), cluster.name
        )
    return EntryOutcome(
        str(ref), EntryStatus.UNCHANGED, f"{ref.kind} entries are not deployed by the native engine"
    )
