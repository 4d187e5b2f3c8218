"""Namespace moves: after the release is installed in its new namespace, remove what the old release
left behind — its objects and its stored revisions — but keep PVCs (data is not migrated) and say so."""

from moorage.engine import objects
from moorage.engine.context import EngineContext
from moorage.helm.storage import Release, read_releases
from moorage.kube.client import describe

KEEP_KINDS = frozenset(
    {("", "PersistentVolumeClaim"), ("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")}
)


async def clean_up_old_release(ctx: EngineContext, old: Release) -> tuple[list[str], list[str]]:
    """Delete the old release's objects (by UID, only those still carrying its ownership annotations)
    and its storage Secrets. Returns (removed, kept-with-reason)."""
    removed: list[str] = []
    kept: list[str] = []
    desired = await objects.with_namespaces(ctx.kube, objects.parse_manifest(old.manifest), old.namespace)
    live = await objects.fetch_live(ctx.kube, desired)
    for obj in desired:
        key = objects.key_of(obj)
        found = live.get(key)
        if found is None:
            continue
        meta = found.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        if (key.group, key.kind) in KEEP_KINDS:
            kept.append(f"{key}: kept (data is not migrated to namespace moves)")
            continue
        if annotations.get("meta.helm.sh/release-namespace") != old.namespace:
            kept.append(f"{key}: kept (not owned by the old release any more)")
            continue
        if await ctx.kube.delete(
            str(obj["apiVersion"]), key.kind, key.name, key.namespace or None, uid=meta.get("uid")
        ):
            removed.append(str(key))
    # PVCs made from StatefulSet volumeClaimTemplates are not in the manifest: report them too
    for pvc in await ctx.kube.list("v1", "PersistentVolumeClaim", old.namespace):
        labels = (pvc.get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/instance") == old.name:
            kept.append(f"{describe('PersistentVolumeClaim', pvc['metadata']['name'], old.namespace)}: kept")
    releases, _ = await read_releases(ctx.kube, old.namespace, old.name)
    for revision in releases:
        await ctx.kube.delete("v1", "Secret", revision.secret_name, old.namespace)
    return removed, kept
