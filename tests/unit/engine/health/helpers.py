"""Shared fixture builders for the health rule tables: objects as the API server returns them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from moorage.engine.health import Health, HealthStatus, assess

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
H, P, D, S, M, U = (
    HealthStatus.HEALTHY,
    HealthStatus.PROGRESSING,
    HealthStatus.DEGRADED,
    HealthStatus.SUSPENDED,
    HealthStatus.MISSING,
    HealthStatus.UNKNOWN,
)

#: (test id, live object, expected status, a substring the reason must contain)
Case = tuple[str, dict[str, Any], HealthStatus, str]


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def later(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def cond(
    type_: str, status: str, reason: str = "", message: str = "", age: float = 1, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "status": status, "lastTransitionTime": ago(age)}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    out.update(extra)
    return out


def obj(
    api: str,
    kind: str,
    *,
    spec: Any = None,
    status: Any = None,
    name: str = "x",
    namespace: str | None = "ns",
    age: float = 60,
    **meta: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": ago(age), **meta}
    if namespace is not None:
        metadata["namespace"] = namespace
    out: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": metadata}
    if spec is not None:
        out["spec"] = spec
    if status is not None:
        out["status"] = status
    return out


def check(live: dict[str, Any], status: HealthStatus, reason: str) -> Health:
    health = assess(live, NOW)
    assert "could not assess health" not in health.reason, health  # a rule raised
    assert health.status is status, health
    assert reason in health.reason, health
    return health


def ids(cases: list[Case]) -> list[str]:
    return [c[0] for c in cases]
