"""Moving an add-on from the ArgoCD engine to the native one without recreating anything. It is
declarative: the definition says `engine: ankra_native` (or drops argo_cd as the cluster default)
while Moorage's Application for the add-on still exists, and the next sync migrates it:

1. Argo CD stops acting on it: automated sync off, and the resources finalizer removed so that
   deleting the Application can never cascade (applied as Moorage's fields, then JSON-patched away
   where another field manager owns them);
2. an operation Argo CD has in flight settles first;
3. `helm upgrade --install --take-ownership` with the same chart and values (the objects the
   Application tracks are adopted, nobody else's);
4. the release must be `deployed`, and every object the Application tracked must have kept its UID;
5. only then is the Application deleted.

Every step is idempotent, so a migration interrupted anywhere (agent or server restart) finishes at
the next sync. Until step 5, the Application is still there to go back to."""

import time
from collections.abc import Mapping
from typing import Any

from moorage.engine import addons, argocd, argocd_app
from moorage.engine.context import EngineContext
from moorage.engine.outcome import EntryOutcome, EntryStatus
from moorage.helm.storage import Release
from moorage.kube import errors as kube_errors
from moorage.spec.content import ResolvedAddon
from moorage.spec.migration import source_problem

SETTLE_SECONDS = 120.0


def tracked(app: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(api_version, kind, namespace, name) of every object the Application tracks."""
    out = []
    for r in (app.get("status") or {}).get("resources") or []:
        group, version = r.get("group") or "", r.get("version") or "v1"
        out.append(
            (
                f"{group}/{version}" if group else version,
                r.get("kind", ""),
                r.get("namespace", ""),
                r.get("name", ""),
            )
        )
    return out


def ineligible(app: Mapping[str, Any]) -> str | None:
    """Why an Application cannot be migrated as it is, or None (the rules of spec/migration.py)."""
    return source_problem(app)


async def _uids(ctx: EngineContext, objects: list[tuple[str, str, str, str]]) -> dict[str, str]:
    uids = {}
    for api_version, kind, namespace, name in objects:
        try:
            live = await ctx.kube.get(api_version, kind, name, namespace or None)
        except kube_errors.KubeError:
            continue
        if live is not None:
            uids[f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"] = live["metadata"]["uid"]
    return uids


async def from_argocd(
    ctx: EngineContext, addon: ResolvedAddon, app: Mapping[str, Any], current: Release | None, cluster: str
) -> EntryOutcome:
    started = time.monotonic()
    ref, where = f"addon/{addon.name}", f"Application {argocd_app.NAMESPACE}/{addon.name}"
    why = ineligible(app)
    if why is not None:
        return EntryOutcome(
            ref, EntryStatus.FAILED, f"migrating from Argo CD refused: {why}", reason="not_migratable"
        )
    if ctx.options.dry_run:
        return EntryOutcome(ref, EntryStatus.PLANNED, f"would migrate from {where} to a Helm release")
    # 1. Argo CD lets go: our own fields without automated sync and without the finalizer
    frozen = argocd_app.application(addon, cluster, addon.values.reveal() or {})
    frozen["spec"]["syncPolicy"].pop("automated", None)
    frozen["metadata"].pop("finalizers", None)
    try:
        await ctx.kube.apply(frozen, field_manager=ctx.field_manager, force=True)
        live = await argocd.current(ctx, addon.name) or {}
        # fields another manager owns (a `kubectl edit`, an older Moorage) survive the apply: removed here
        if operations := argocd_app.let_go_operations(live):
            live = await ctx.kube.json_patch(*argocd.KIND, addon.name, argocd_app.NAMESPACE, operations)
        # 2. an operation in flight settles before helm touches the objects
        deadline = time.monotonic() + SETTLE_SECONDS
        while argocd_app.state_of(dict(live)).operation == "Running" and time.monotonic() < deadline:
            await ctx.sleep(argocd.POLL_SECONDS)
            live = await argocd.current(ctx, addon.name) or {}
        if argocd_app.state_of(dict(live)).operation == "Running":
            return EntryOutcome(
                ref,
                EntryStatus.FAILED,
                f"migration waits: {where} has a sync in flight",
                reason="argocd_busy",
            )
        finalizers = (live.get("metadata") or {}).get("finalizers") or []
        automated = "automated" in ((live.get("spec") or {}).get("syncPolicy") or {})
        if automated:
            return EntryOutcome(
                ref,
                EntryStatus.FAILED,
                f"migration stopped: {where} was put back on automated sync while it settled (another "
                "manager sets it); stop that manager, or Argo CD would fight Helm over the objects",
                reason="argocd_automated",
            )
        if argocd_app.RESOURCES_FINALIZER in finalizers:
            return EntryOutcome(
                ref,
                EntryStatus.FAILED,
                f"migration stopped: {where} was given {argocd_app.RESOURCES_FINALIZER} again (another "
                "manager sets it); stop that manager, or deleting the Application would delete the add-on's "
                "resources",
                reason="argocd_finalizer",
            )
        before = await _uids(ctx, tracked(live))
    except kube_errors.KubeError as e:
        return EntryOutcome(
            ref,
            EntryStatus.FAILED,
            f"migration: taking {where} off automated sync: {e}",
            reason="apply_failed",
        )
    # 3. Helm takes the objects over
    outcome = await addons.deploy(ctx, addon, current, cluster, migrating_from=addon.name)
    if not outcome.ok:
        outcome.message = (
            f"migration from {where} stopped, the Application stays (auto-sync off): {outcome.message}"
        )
        return outcome
    # 4. nothing was recreated
    after = await _uids(ctx, tracked(live))
    replaced = sorted(k for k, uid in before.items() if after.get(k) not in (None, uid))
    if replaced:
        outcome.status, outcome.reason = EntryStatus.FAILED, "recreated"
        outcome.message = (
            f"migration: {len(replaced)} object(s) were recreated ({', '.join(replaced[:5])}); {where} kept"
        )
        return outcome
    # 5. the Application goes (no finalizer: its resources stay, now Helm's)
    try:
        await ctx.kube.delete(
            *argocd.KIND, addon.name, argocd_app.NAMESPACE, uid=(live.get("metadata") or {}).get("uid")
        )
    except kube_errors.KubeError as e:
        outcome.status, outcome.reason = EntryStatus.FAILED, "apply_failed"
        outcome.message = f"migration: the release is deployed but deleting {where} failed: {e}"
        return outcome
    outcome.message = (
        f"migrated from Argo CD: {outcome.message}; {len(before)} object(s) kept their UIDs; {where} deleted"
    )
    outcome.reason = "migrated_from_argocd"
    outcome.seconds = time.monotonic() - started
    return outcome
