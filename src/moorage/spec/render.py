"""The resolved plan as plain data (and YAML text): what deploys, in which order, with secrets masked.

Output is deterministic: same repository, same bytes.
"""

from __future__ import annotations

from typing import Any

import yaml

from moorage.spec.content import ResolvedCluster
from moorage.spec.graph import Plan, ResourceRef


def _objects_summary(objects: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        item = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name")}
        if meta.get("namespace"):
            item["namespace"] = meta["namespace"]
        out.append(item)
    return out


def render_plan(plan: Plan, resolved: ResolvedCluster, *, full_objects: bool = False) -> dict[str, Any]:
    def describe(ref: ResourceRef) -> dict[str, Any]:
        step = plan.steps[ref]
        item: dict[str, Any] = {"kind": ref.kind, "name": ref.name, "stack": step.stack}
        if step.parents:
            item["parents"] = [str(p) for p in step.parents]
        if ref.kind == "manifest" and ref.name in resolved.manifests:
            m = resolved.manifests[ref.name]
            objects = m.objects.masked()
            item["namespace"] = m.namespace
            item["objects"] = objects if full_objects else _objects_summary(objects)
            if m.force:
                item["force"] = True
            if m.encrypted:
                item["encrypted"] = True
        elif ref.kind == "addon" and ref.name in resolved.addons:
            a = resolved.addons[ref.name]
            item.update(
                {
                    "chart": a.chart_name,
                    "version": a.chart_version,
                    "registry": a.registry_name,
                    "registry_url": a.registry_url,
                    "namespace": a.namespace,
                    "values": a.values.masked(),
                }
            )
            if a.encrypted:
                item["encrypted"] = True
        return item

    groups = []
    for group in plan.groups:
        groups.append(
            {
                "wave": group.wave if group.wave is not None else "unordered",
                "stacks": list(group.stacks),
                "layers": [[describe(ref) for ref in layer] for layer in group.layers],
            }
        )
    return {
        "cluster": resolved.name,
        "waves": groups,
        "order": [str(r) for r in plan.order],
        "teardown": [str(r) for r in plan.teardown_order],
    }


def render_yaml(plan: Plan, resolved: ResolvedCluster, *, full_objects: bool = False) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(
        render_plan(plan, resolved, full_objects=full_objects),
        Dumper=dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
