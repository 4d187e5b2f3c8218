"""apiextensions.k8s.io/CustomResourceDefinition: ``Established`` and ``NamesAccepted``.

``NamesAccepted=False`` (a name conflict) and ``NonStructuralSchema=True`` are Degraded at
once; a CRD not yet established is Progressing, Degraded after ``progress_deadline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    section,
    text,
    with_deadline,
)


def assess(obj: Mapping[str, Any], ctx: Context) -> Health:
    conds = conditions(obj)
    names = find(conds, "NamesAccepted")
    if names is not None and names.false:
        return Health(HealthStatus.DEGRADED, f"names not accepted: {names.describe()}")
    structural = find(conds, "NonStructuralSchema")
    if structural is not None and structural.true:
        return Health(HealthStatus.DEGRADED, f"schema is not structural: {structural.describe()}")
    established = find(conds, "Established")
    if established is not None and established.true:
        spec = section(obj, "spec")
        plural = text(section(spec, "names").get("plural"))
        group = text(spec.get("group"))
        served = f": serving {plural}.{group}" if plural and group else ""
        return Health(HealthStatus.HEALTHY, f"established{served}")
    why = f": {established.describe()}" if established is not None else ""
    return with_deadline(
        Health(HealthStatus.PROGRESSING, f"waiting for the CRD to be established{why}"), obj, ctx, conds=conds
    )
