"""Cost of health assessment: 10,000 live objects of mixed kinds through `engine.health.assess`.

    .venv/bin/python bench/health.py [--objects 10000] [--runs 5]

A quarter each: kinds with a built-in rule (Deployment, Pod, Service, ConfigMap, cert-manager
Certificate), a custom resource judged by the generic rule (kstatus conditions), one judged by a user
Lua check (an Argo CD-style script over status.phase and conditions), and one judged by a user CEL
check (Flux-style expressions). Prints one JSON object: objects per second for the mix, and per group
the median microseconds per object; `lua_check_cost_us` is a Lua object's time minus a generic one's
(what the check adds over not having it), likewise for CEL."""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from moorage.engine.health import Checks, assess
from moorage.spec.models import HealthCheck

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STAMP = (NOW - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")

LUA = """
local hs = {}
if obj.status == nil then
  hs.status = "Progressing"; hs.message = "no status yet"; return hs
end
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Failed" and c.status == "True" then
      hs.status = "Degraded"; hs.message = c.message or "failed"; return hs
    end
  end
end
if obj.status.phase == "Running" then
  hs.status = "Healthy"; hs.message = "running " .. tostring(obj.status.replicas or 0)
else
  hs.status = "Progressing"; hs.message = "phase " .. tostring(obj.status.phase)
end
return hs
"""
CHECKS = Checks.compile(
    [
        HealthCheck.model_validate({"group": "db.example.com", "kind": "Database", "lua": LUA}),
        HealthCheck.model_validate(
            {
                "group": "queue.example.com",
                "kind": "Queue",
                "cel": {
                    "failed": "status.conditions.exists(e, e.type == 'Failed' && e.status == 'True')",
                    "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')",
                },
            }
        ),
    ]
)


def meta(i: int) -> dict[str, Any]:
    return {
        "name": f"obj-{i}",
        "namespace": f"ns-{i % 50}",
        "uid": f"uid-{i}",
        "generation": 2,
        "creationTimestamp": STAMP,
        "labels": {"app.kubernetes.io/name": f"app-{i % 20}", "app.kubernetes.io/managed-by": "Helm"},
    }


def conditions(ready: bool) -> list[dict[str, Any]]:
    return [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "Reconciled",
            "message": "ok",
            "lastTransitionTime": STAMP,
            "observedGeneration": 2,
        },
        {"type": "Synced", "status": "True", "lastTransitionTime": STAMP},
    ]


def builtin(i: int) -> dict[str, Any]:
    match i % 5:
        case 0:
            return {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta(i),
                "spec": {"replicas": 3, "strategy": {"type": "RollingUpdate"}},
                "status": {
                    "observedGeneration": 2,
                    "replicas": 3,
                    "updatedReplicas": 3,
                    "readyReplicas": 3,
                    "availableReplicas": 3,
                    "conditions": [
                        {"type": "Available", "status": "True", "lastTransitionTime": STAMP},
                        {
                            "type": "Progressing",
                            "status": "True",
                            "reason": "NewReplicaSetAvailable",
                            "lastTransitionTime": STAMP,
                        },
                    ],
                },
            }
        case 1:
            return {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta(i),
                "spec": {"restartPolicy": "Always"},
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [
                        {
                            "name": "app",
                            "ready": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": STAMP}},
                        }
                    ],
                },
            }
        case 2:
            return {"apiVersion": "v1", "kind": "Service", "metadata": meta(i), "spec": {"type": "ClusterIP"}}
        case 3:
            return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(i), "data": {"k": "v"}}
        case _:
            return {
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": meta(i),
                "status": {"conditions": conditions(True), "notAfter": "2027-06-01T00:00:00Z"},
            }


def generic(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "widgets.example.com/v1",
        "kind": "Widget",
        "metadata": meta(i),
        "spec": {"size": 3},
        "status": {"observedGeneration": 2, "conditions": conditions(i % 7 != 0)},
    }


def lua(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "db.example.com/v1",
        "kind": "Database",
        "metadata": meta(i),
        "spec": {"replicas": 3},
        "status": {
            "phase": "Running" if i % 5 else "Creating",
            "replicas": 3,
            "conditions": conditions(True),
        },
    }


def cel(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "queue.example.com/v1",
        "kind": "Queue",
        "metadata": meta(i),
        "spec": {"partitions": 3},
        "status": {"observedGeneration": 2, "conditions": conditions(i % 6 != 0)},
    }


GROUPS = {"built-in rules": builtin, "generic rule": generic, "Lua check": lua, "CEL check": cel}


def timed(objects: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for obj in objects:
        assess(obj, NOW, checks=CHECKS)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    per_group = args.objects // len(GROUPS)
    groups = {name: [make(i) for i in range(per_group)] for name, make in GROUPS.items()}
    mixed = [obj for i in range(per_group) for obj in (groups[name][i] for name in GROUPS)]
    for obj in mixed[:200]:  # warm up: imports, compiled checks, caches
        assess(obj, NOW, checks=CHECKS)
    mix_seconds = statistics.median(timed(mixed) for _ in range(args.runs))
    us = {
        name: round(statistics.median(timed(objs) for _ in range(args.runs)) / len(objs) * 1e6, 1)
        for name, objs in groups.items()
    }
    print(
        json.dumps(
            {
                "objects": len(mixed),
                "runs": args.runs,
                "mix_seconds": round(mix_seconds, 3),
                "objects_per_second": round(len(mixed) / mix_seconds),
                "us_per_object": us,
                "lua_check_cost_us": round(us["Lua check"] - us["generic rule"], 1),
                "cel_check_cost_us": round(us["CEL check"] - us["generic rule"], 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
