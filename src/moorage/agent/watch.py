"""Drift seen in seconds, not at the next sweep: the agent watches the kinds Helm charts ship most
(cluster-wide, only objects Helm manages) and wakes the sweep when one of them is changed, deleted or
created. Status updates (a Deployment's replicas becoming ready) do not count: only a new
generation, changed labels or annotations, or any change to a kind without a status.

Add-ons on the ArgoCD engine are not Helm's: their Applications (Moorage's own) are watched instead,
and there the status is what counts (Argo CD saying OutOfSync, then healing), so that drift Argo CD
heals within seconds is still seen and recorded. Without Argo CD's CRD that watch looks again only
every few minutes."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from moorage.kube.client import KubeClient
from moorage.kube.errors import KubeError, NotFound, UnknownKind

log = logging.getLogger("moorage.agent.watch")

# kinds with a status that their controllers keep writing: only a spec or metadata change counts
WITH_STATUS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))
# kinds whose every change is someone's edit
WITHOUT_STATUS = (("v1", "ConfigMap"), ("v1", "Service"), ("v1", "ServiceAccount"))
MANAGED_BY_HELM = "app.kubernetes.io/managed-by=Helm"
APPLICATION = ("argoproj.io/v1alpha1", "Application")
MANAGED_BY_MOORAGE = "app.kubernetes.io/managed-by=moorage"
RETRY_SECONDS = 5.0
NO_KIND_RETRY_SECONDS = 300.0  # Argo CD's CRD absent: look again rarely (an idle agent stays quiet)


def fingerprint(obj: Mapping[str, Any], has_status: bool) -> tuple[Any, ...]:
    """What must differ between two versions of an object for the change to be someone's edit."""
    meta = obj.get("metadata") or {}
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    annotations = tuple(sorted((meta.get("annotations") or {}).items()))
    if has_status:
        return (meta.get("generation"), labels, annotations)
    return (meta.get("resourceVersion"),)


def application_fingerprint(obj: Mapping[str, Any]) -> tuple[Any, ...]:
    """What Argo CD says of an Application: a change of it is worth a sweep (drift, heal, health)."""
    status = obj.get("status") or {}
    return (
        (obj.get("metadata") or {}).get("generation"),
        (status.get("sync") or {}).get("status"),
        (status.get("health") or {}).get("status"),
        (status.get("operationState") or {}).get("phase"),
    )


Fingerprint = Callable[[Mapping[str, Any]], tuple[Any, ...]]


def of_kind(has_status: bool) -> Fingerprint:
    """The fingerprint of a Helm-managed kind, with a status its controller keeps writing or not."""
    return functools.partial(fingerprint, has_status=has_status)


def is_edit(event: Mapping[str, Any], seen: dict[str, tuple[Any, ...]], of: Fingerprint) -> bool:
    """Whether a watch event is a change worth a sweep, comparing the fingerprints `of` gives;
    remembers what it saw (pure but for `seen`)."""
    kind, obj = event.get("type"), event.get("object")
    if not isinstance(obj, Mapping) or kind not in ("ADDED", "MODIFIED", "DELETED"):
        return False
    uid = str((obj.get("metadata") or {}).get("uid") or "")
    if kind == "DELETED":
        seen.pop(uid, None)
        return True
    now = of(obj)
    before = seen.get(uid)
    seen[uid] = now
    return kind == "ADDED" or before != now


async def _follow(
    kube: KubeClient,
    api_version: str,
    kind: str,
    wake: Callable[[], None],
    of: Fingerprint,
    selector: str = MANAGED_BY_HELM,
    seen_object: Callable[[Mapping[str, Any]], None] | None = None,
) -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    while True:
        try:
            version = await kube.list_version(api_version, kind, selector)
            for obj in await kube.list(api_version, kind, label_selector=selector):
                seen[str(obj["metadata"].get("uid"))] = of(obj)
            while True:
                async for event in kube.watch(
                    api_version, kind, resource_version=version, label_selector=selector
                ):
                    if event.get("type") == "ERROR":  # e.g. 410 Gone: the version is too old
                        raise KubeError(f"watch {kind}: {(event.get('object') or {}).get('message')}")
                    meta = (event.get("object") or {}).get("metadata") or {}
                    version = str(meta.get("resourceVersion") or version)
                    if is_edit(event, seen, of):
                        wake()
                        if seen_object is not None and event.get("type") != "DELETED":
                            seen_object(event.get("object") or {})
        except asyncio.CancelledError:
            raise
        except (UnknownKind, NotFound):  # the kind is not served (no Argo CD): rarely look again
            await asyncio.sleep(NO_KIND_RETRY_SECONDS)
        except Exception as e:  # the API server restarting, RBAC, a dropped stream: list again
            log.info("watching %s: %s; again in %.0fs", kind, e, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)


async def watch_changes(
    kube: KubeClient, wake: Callable[[], None], application: Callable[[Mapping[str, Any]], None] | None = None
) -> None:
    """Run until cancelled: one watch per kind, `wake()` on every edit of a Helm-managed object and
    every change of what Argo CD says of Moorage's Applications; those also go to `application`
    as the watch delivered them (Argo CD may heal before a sweep reads the Application again)."""
    tasks = [
        asyncio.create_task(
            _follow(kube, api_version, kind, wake, of_kind(has_status)),
            name=f"watch-{kind}",
        )
        for kinds, has_status in ((WITH_STATUS, True), (WITHOUT_STATUS, False))
        for api_version, kind in kinds
    ]
    tasks.append(
        asyncio.create_task(
            _follow(kube, *APPLICATION, wake, application_fingerprint, MANAGED_BY_MOORAGE, application),
            name="watch-Application",
        )
    )
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
