"""Drift seen in seconds, not at the next sweep: the agent watches the kinds Helm charts ship most
(cluster-wide, only objects Helm manages) and wakes the sweep when one of them is changed, deleted or
created. Status updates (a Deployment's replicas becoming ready) do not count: only a new
generation, changed labels or annotations, or any change to a kind without a status."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from moorage.kube.client import KubeClient
from moorage.kube.errors import KubeError

log = logging.getLogger("moorage.agent.watch")

# kinds with a status that their controllers keep writing: only a spec or metadata change counts
WITH_STATUS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))
# kinds whose every change is someone's edit
WITHOUT_STATUS = (("v1", "ConfigMap"), ("v1", "Service"), ("v1", "ServiceAccount"))
MANAGED_BY_HELM = "app.kubernetes.io/managed-by=Helm"
RETRY_SECONDS = 5.0


def fingerprint(obj: Mapping[str, Any], has_status: bool) -> tuple[Any, ...]:
    """What must differ between two versions of an object for the change to be someone's edit."""
    meta = obj.get("metadata") or {}
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    annotations = tuple(sorted((meta.get("annotations") or {}).items()))
    if has_status:
        return (meta.get("generation"), labels, annotations)
    return (meta.get("resourceVersion"),)


def is_edit(event: Mapping[str, Any], seen: dict[str, tuple[Any, ...]], has_status: bool) -> bool:
    """Whether a watch event is a change worth a sweep; remembers what it saw (pure but for `seen`)."""
    kind, obj = event.get("type"), event.get("object")
    if not isinstance(obj, Mapping) or kind not in ("ADDED", "MODIFIED", "DELETED"):
        return False
    uid = str((obj.get("metadata") or {}).get("uid") or "")
    if kind == "DELETED":
        seen.pop(uid, None)
        return True
    now = fingerprint(obj, has_status)
    before = seen.get(uid)
    seen[uid] = now
    return kind == "ADDED" or before != now


async def _follow(
    kube: KubeClient, api_version: str, kind: str, has_status: bool, wake: Callable[[], None]
) -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    while True:
        try:
            version = await kube.list_version(api_version, kind, MANAGED_BY_HELM)
            for obj in await kube.list(api_version, kind, label_selector=MANAGED_BY_HELM):
                seen[str(obj["metadata"].get("uid"))] = fingerprint(obj, has_status)
            while True:
                async for event in kube.watch(
                    api_version, kind, resource_version=version, label_selector=MANAGED_BY_HELM
                ):
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old
                        raise KubeError(f"watch {kind}: {(event.get('object') or {}).get('message')}")
                    meta = (event.get("object") or {}).get("metadata") or {}
                    version = str(meta.get("resourceVersion") or version)
                    if is_edit(event, seen, has_status):
                        wake()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the API server restarting, RBAC, a dropped stream: list again
            log.info("watching %s: %s; again in %.0fs", kind, e, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)


async def watch_changes(kube: KubeClient, wake: Callable[[], None]) -> None:
    """Run until cancelled: one watch per kind, `wake()` on every edit of a Helm-managed object."""
    tasks = [
        asyncio.create_task(_follow(kube, api_version, kind, has_status, wake), name=f"watch-{kind}")
        for kinds, has_status in ((WITH_STATUS, True), (WITHOUT_STATUS, False))
        for api_version, kind in kinds
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
