"""What the agent reports of each add-on: its release, health, drift and how it compares with the
definition (`moorage.spec.protocol.AddonObservation`). `observation` is pure; `observe` takes one
batched look at the cluster. Secret values never enter an observation: drift values of Secrets are
masked by the diff, and a definition difference names value paths, never values."""

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from moorage.engine import addons, argocd
from moorage.engine.context import EngineContext
from moorage.engine.diff import ResourceDrift
from moorage.engine.health import AddonHealth
from moorage.engine.sweep import AddonReport, scan
from moorage.helm.storage import Release, latest, read_releases
from moorage.spec.content import MASK, ResolvedAddon, ResolvedCluster
from moorage.spec.lifecycle import Cause
from moorage.spec.protocol import MAX_DRIFT_CHANGES, MAX_VALUE_CHARS, AddonObservation

# keys whose values are masked even when the definition does not mark them as SOPS secrets
_SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "api_key", "privatekey", "credential")


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return (
            value
            if not isinstance(value, str) or len(value) <= MAX_VALUE_CHARS
            else value[:MAX_VALUE_CHARS] + "…"
        )
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def drift_for_wire(drift: Iterable[ResourceDrift]) -> tuple[list[dict[str, Any]], int]:
    """Drift as the wire carries it: at most MAX_DRIFT_CHANGES field changes (values shortened);
    the second value counts the changes left out."""
    out: list[dict[str, Any]] = []
    budget, omitted = MAX_DRIFT_CHANGES, 0
    for resource in drift:
        changes = []
        for change in resource.changes:
            if budget <= 0:
                omitted += 1
                continue
            budget -= 1
            changes.append(
                {
                    "path": change.path,
                    "want": _short(change.desired),
                    "live": _short(change.live),
                    "change": change.change,
                }
            )
        if len(out) < MAX_DRIFT_CHANGES:
            out.append(
                {
                    "api_version": resource.api_version,
                    "kind": resource.kind,
                    "namespace": resource.namespace,
                    "name": resource.name,
                    "drift_type": resource.drift_type,
                    "changes": changes,
                }
            )
        else:
            omitted += max(1, len(resource.changes))
    return out, omitted


def _value_paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Paths where two values trees differ (the paths only)."""
    if isinstance(a, dict) and isinstance(b, dict):
        paths: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                paths.append(sub)
            else:
                paths.extend(_value_paths(a[key], b[key], sub))
        return paths
    return [] if a == b else [prefix or "(root)"]


def definition_diff(release: Release, addon: ResolvedAddon) -> list[str]:
    """What differs between the deployed release and the definition, in words; [] when in sync."""
    desired = addons.Desired.of(addon)
    if addons.in_sync(release, desired):
        return []
    diff: list[str] = []
    if release.namespace != addon.namespace:
        diff.append(f"namespace {release.namespace} → {addon.namespace}")
    if (release.chart_name, release.chart_version) != (addon.chart_name, addon.chart_version):
        diff.append(
            f"chart {release.chart_name} {release.chart_version} → {addon.chart_name} {addon.chart_version}"
        )
    paths = _value_paths(release.values, desired.values)
    if paths:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        diff.append(f"values changed at {shown}")
    if release.status != "deployed":
        diff.append(f"release is {release.status}")
    return diff or ["release labels differ from the definition's settings"]


def _suspended(health: AddonHealth | None) -> list[str]:
    if health is None:
        return []
    return [f"{name}: {h.reason}" for name, h in health.resources if str(h.status) == "Suspended"]


def observation(
    addon: ResolvedAddon,
    release: Release | None,
    drift: Iterable[ResourceDrift],
    health: AddonHealth | None,
    *,
    cause: Cause,
    commit: str | None = None,
    last_error: str | None = None,
    conflicts: Iterable[Mapping[str, Any]] = (),
    deploying: bool = False,
) -> AddonObservation:
    policy = addon.settings.sync_policy
    installed = release is not None and release.namespace == addon.namespace
    wire_drift, omitted = drift_for_wire(drift) if installed else ([], 0)
    diff = definition_diff(release, addon) if release is not None else []
    return AddonObservation(
        name=addon.name,
        namespace=addon.namespace,
        chart=addon.chart_name,
        version=addon.chart_version,
        registry_url=addon.registry_url or "",
        installed=installed,
        release_chart=release.chart_name if release else "",
        release_version=release.chart_version if release else "",
        revision=release.revision if release else None,
        helm_status=release.status if release else None,
        last_deployed=release.last_deployed if release else None,
        health=str(health.status) if health is not None else None,
        health_reason=(health.reason if health is not None else "")[:4000],
        suspended=_suspended(health)[:100],
        strict_health=addon.settings.strict_health_check,
        automated=policy.automated,
        self_heal=policy.automated and policy.self_heal,
        drift=wire_drift,
        drift_omitted=omitted,
        definition_matches=not diff,
        definition_diff=diff[:100],
        conflicts=[dict(c) for c in conflicts][:100],
        last_error=last_error[:4000] if last_error else None,
        deploying=deploying,
        commit=commit,
        defined_at=addon.defined_at[:600],
        cause=str(cause),
    )


def from_report(
    addon: ResolvedAddon, report: AddonReport, *, commit: str | None, cause: Cause = Cause.SWEEP
) -> AddonObservation:
    """The observation of one add-on as a sweep found it (before any heal)."""
    if report.engine == argocd.ENGINE:
        last_error = "; ".join(report.errors) or None
        return argocd.observation(
            addon, report.application, cause=str(cause), commit=commit, last_error=last_error
        )
    conflicts = [
        {
            "resource": c.resource,
            "path": c.path,
            "manager": c.manager,
            "ignore_entry": c.ignore_entry,
            "heals": c.heals,
            "since": c.since.isoformat(),
        }
        for c in report.conflicts
    ]
    return observation(
        addon,
        report.current,
        report.drift,
        report.health,
        cause=cause,
        commit=commit,
        last_error="; ".join(report.errors) or None,
        conflicts=conflicts,
    )


async def observe(
    ctx: EngineContext,
    cluster: ResolvedCluster,
    *,
    cause: Cause,
    commit: str | None = None,
    errors: Mapping[str, str] | None = None,
    only: Collection[str] | None = None,
) -> list[AddonObservation]:
    """Every (or `only` these) add-on of the definition as the cluster is now: one LIST of Helm's
    release storage and one batched fetch of the deployed objects."""
    stored, _ = await read_releases(ctx.kube)
    found = await scan(ctx, cluster, latest(stored), only)
    now = ctx.clock()
    errors = errors or {}
    wanted = [a for n, a in cluster.addons.items() if only is None or n in only]
    on_argocd = {a.name for a in wanted if argocd.uses_argocd(a, cluster.default_engine)}
    apps: dict[str, dict[str, Any]] = {}
    if on_argocd:
        apps = {a["metadata"]["name"]: a for a in await argocd.owned_applications(ctx, cluster.name)}
    return [
        argocd.observation(
            addon, apps.get(addon.name), cause=str(cause), commit=commit, last_error=errors.get(addon.name)
        )
        if addon.name in on_argocd
        else observation(
            addon,
            found.release_of[name],
            found.drift(addon),
            found.health(addon, now),
            cause=cause,
            commit=commit,
            last_error=errors.get(name),
        )
        for name, addon in cluster.addons.items()
        if only is None or name in only
    ]


def masked_values(values: Any, addon: ResolvedAddon | None) -> Any:
    """Deployed values with every secret masked: the SOPS paths of the definition, keys that name a
    secret, and — when the agent does not hold the add-on's definition — every value (on doubt)."""
    secret_paths = addon.values.secret_paths if addon is not None else frozenset()

    def walk(node: Any, path: tuple[Any, ...]) -> Any:
        if path in secret_paths:
            return MASK
        if (
            path
            and isinstance(path[-1], str)
            and any(w in path[-1].lower().replace("-", "_") for w in _SECRET_WORDS)
        ):
            return MASK if not isinstance(node, dict | list) or node else node
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if addon is None:
            return MASK
        return node

    return walk(values, ())
