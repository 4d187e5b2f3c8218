"""With `auto_prune` off, nothing of a release may be deleted by an upgrade that drops it from the
chart. Helm skips deleting an object whose live annotations say `helm.sh/resource-policy: keep`, so
before such an upgrade Moorage sets that annotation on the release's live objects under a field
manager of its own; with `auto_prune` on it withdraws it again (server-side apply of an object
without the field removes what that manager owned). A chart's own `keep` is never touched."""

from typing import Any

from moorage.engine import objects
from moorage.engine.context import PRUNE_LABEL, EngineContext
from moorage.engine.prune import GUARD_MANAGER, guarded_by_us
from moorage.helm.storage import Release
from moorage.kube import errors

KEEP = {"helm.sh/resource-policy": "keep"}


def guard_withdrawn(release: Release) -> bool:
    """Whether the release's objects carry no guard of ours for certain: it was deployed with
    auto_prune on (`PRUNE_LABEL` "true"), and every such upgrade withdrew the guard first. Then
    withdrawing it again needs no read of the live objects. (A guard set before an upgrade that
    stored no revision at all is left; the sweep prunes what it keeps, as prune.decide allows.)"""
    return release.status == "deployed" and release.labels.get(PRUNE_LABEL) == "true"


async def set_guard(ctx: EngineContext, release: Release, keep: bool) -> None:
    if not keep and guard_withdrawn(release):
        return
    desired = await objects.with_namespaces(
        ctx.kube, objects.parse_manifest(release.manifest), release.namespace
    )
    live = await objects.fetch_live(ctx.kube, desired)
    for obj in desired:
        found = live.get(objects.key_of(obj))
        if found is None:
            continue
        annotations = (found.get("metadata") or {}).get("annotations") or {}
        if keep and annotations.get("helm.sh/resource-policy") == "keep":
            continue  # already kept (by the chart, or by an earlier guard)
        if not keep and not guarded_by_us(found):
            continue
        meta: dict[str, Any] = {"name": obj["metadata"]["name"]}
        if obj["metadata"].get("namespace"):
            meta["namespace"] = obj["metadata"]["namespace"]
        if keep:
            meta["annotations"] = KEEP
        patch = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}
        try:
            await ctx.kube.apply(patch, field_manager=GUARD_MANAGER, force=False)
        except errors.Conflict:
            continue  # the chart (or someone) owns the annotation already: theirs to decide
