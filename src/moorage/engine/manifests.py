"""Deploying one raw-manifest entry with server-side apply, keeping its inventory and pruning what it
no longer holds."""

import time
from collections.abc import Mapping
from typing import Any

from moorage.engine import inventory, objects, prune
from moorage.engine.context import EngineContext
from moorage.engine.outcome import EntryOutcome, EntryStatus
from moorage.kube import errors
from moorage.spec.content import ResolvedManifest

# Namespaces and CRDs first, so that what lives in them (or is of their kinds) can be applied.
_FIRST = {("", "Namespace"): 0, ("apiextensions.k8s.io", "CustomResourceDefinition"): 1}


def _ordered(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=lambda o: _FIRST.get((objects.key_of(o).group, str(o.get("kind"))), 2))


def _owned(obj: Mapping[str, Any], entry: str, cluster: str) -> dict[str, Any]:
    copy = dict(obj)
    meta = dict(copy.get("metadata") or {})
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        inventory.OWNER_ANNOTATION: inventory.owner_value(entry, cluster),
    }
    copy["metadata"] = meta
    return copy


async def desired_objects(
    ctx: EngineContext, manifest: ResolvedManifest, cluster: str
) -> list[dict[str, Any]]:
    raw = manifest.objects.reveal() or []
    with_ns = await objects.with_namespaces(ctx.kube, raw, manifest.namespace or ctx.kube.config.namespace)
    return [_owned(o, manifest.name, cluster) for o in with_ns]


async def _ensure_namespaces(ctx: EngineContext, objs: list[dict[str, Any]]) -> None:
    declared = {
        o["metadata"]["name"] for o in objs if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"
    }
    needed = {o["metadata"].get("namespace") for o in objs} - declared - {None, ""}
    for name in sorted(needed):
        if await ctx.kube.get("v1", "Namespace", name) is None:
            await ctx.kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                field_manager=ctx.field_manager,
            )


async def deploy(
    ctx: EngineContext, manifest: ResolvedManifest, previous: list[inventory.Item] | None, cluster: str
) -> EntryOutcome:
    started = time.monotonic()
    ref = f"manifest/{manifest.name}"
    try:
        desired = _ordered(await desired_objects(ctx, manifest, cluster))
    except errors.UnknownKind as e:
        # the kind may come from a CRD in this same entry: apply that first, then resolve again
        crds = [o for o in (manifest.objects.reveal() or []) if o.get("kind") == "CustomResourceDefinition"]
        if not crds:
            return EntryOutcome(ref, EntryStatus.FAILED, str(e), reason="unknown_kind")
        for crd in crds:
            await ctx.kube.apply(
                _owned(crd, manifest.name, cluster), field_manager=ctx.field_manager, force=manifest.force
            )
        desired = _ordered(await desired_objects(ctx, manifest, cluster))

    live = await objects.fetch_live(ctx.kube, desired)
    changed = [o for o in desired if _differs(o, live.get(objects.key_of(o)))]
    if ctx.options.dry_run:
        status = EntryStatus.PLANNED if changed else EntryStatus.UNCHANGED
        return EntryOutcome(ref, status, f"would apply {len(changed)} of {len(desired)} object(s)")

    applied: list[inventory.Item] = []
    try:
        await _ensure_namespaces(ctx, desired)
        for obj in desired:
            result = await ctx.kube.apply(obj, field_manager=ctx.field_manager, force=manifest.force)
            applied.append(
                inventory.Item(str(obj["apiVersion"]), objects.key_of(obj), result["metadata"]["uid"])
            )
    except errors.KubeError as e:
        return EntryOutcome(
            ref, EntryStatus.FAILED, str(e), reason="apply_failed", seconds=time.monotonic() - started
        )

    outcome = EntryOutcome(
        ref,
        EntryStatus.APPLIED if changed else EntryStatus.UNCHANGED,
        f"applied {len(changed)} changed object(s) of {len(desired)}"
        if changed
        else f"{len(desired)} object(s) up to date",
    )
    await inventory.ensure_namespace(ctx.kube, ctx.field_manager)
    if previous and ctx.options.prune_manifests:
        await prune_items(ctx, cluster, manifest.name, previous, {i.key for i in applied}, outcome)
    await inventory.write(ctx.kube, cluster, manifest.name, applied, ctx.field_manager)
    outcome.seconds = time.monotonic() - started
    return outcome


def _differs(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying would change anything: a desired field missing or different in the live object."""
    if live is None:
        return True

    def subset(want: Any, have: Any) -> bool:
        if isinstance(want, Mapping):
            return isinstance(have, Mapping) and all(
                k in have and subset(v, have[k]) for k, v in want.items()
            )
        if isinstance(want, list):
            return isinstance(have, list) and len(want) == len(have) and all(map(subset, want, have))
        return bool(want == have or str(want) == str(have))

    return not subset(desired, live)


async def prune_items(
    ctx: EngineContext,
    cluster: str,
    entry: str,
    previous: list[inventory.Item],
    desired: set[objects.ObjectKey],
    outcome: EntryOutcome,
    *,
    entry_removed: bool = False,
) -> None:
    """Delete what the entry applied before and no longer holds, when ownership is proven.

    An entry that still exists but renders nothing is left alone (doubt); an entry removed from the
    definition (`entry_removed`) loses everything it held."""
    gone = [i for i in previous if i.key not in desired]
    if not gone:
        return
    owner = {inventory.OWNER_ANNOTATION: inventory.owner_value(entry, cluster)}
    candidates = [prune.Candidate(i.api_version, i.key, i.uid, owner) for i in gone]
    live = await objects.fetch_live(ctx.kube, [_stub(i) for i in gone])
    decisions = prune.decide(candidates, {_REMOVED_ENTRY} if entry_removed else desired, live)
    for d in decisions:
        if d.delete:
            key = d.candidate.key
            deleted = await ctx.kube.delete(
                d.candidate.api_version, key.kind, key.name, key.namespace or None, uid=d.uid
            )
            if deleted:
                outcome.pruned.append(str(key))
        elif d.reason not in ("already gone", "kept: still desired"):
            outcome.kept.append(f"{d.candidate.key}: {d.reason}")


# Stands for "the entry itself is gone" in the desired set, which prune.decide refuses to see empty.
_REMOVED_ENTRY = objects.ObjectKey("moorage.dev", "RemovedEntry", "", "")


def _stub(item: inventory.Item) -> dict[str, Any]:
    meta = {"name": item.key.name} | ({"namespace": item.key.namespace} if item.key.namespace else {})
    return {"apiVersion": item.api_version, "kind": item.key.kind, "metadata": meta}
