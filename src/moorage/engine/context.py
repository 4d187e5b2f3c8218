"""What every engine step needs: the cluster, helm, the clock, and the engine's options."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from moorage.engine.fights import FightDetector
from moorage.engine.health.custom import Checks
from moorage.helm.cli import Helm
from moorage.kube.client import KubeClient

FIELD_MANAGER = "moorage"
# Release labels (stored on Helm's release Secrets) that mark a release as deployed by Moorage.
CLUSTER_LABEL = "moorage.dev/cluster"
ADDON_LABEL = "moorage.dev/addon"
# "true" or "false": whether the add-on's settings allowed pruning (automated and auto_prune) when the
# release was deployed. Once an add-on is removed from the definition its settings are gone with it,
# so this label is what decides whether its release may be uninstalled (engine/removed.py).
PRUNE_LABEL = "moorage.dev/auto-prune"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Options:
    concurrency: int = 5  # entries deployed at once
    dry_run: bool = False
    prune_manifests: bool = True  # raw manifests: delete objects dropped from an entry, and removed entries
    prune_addons: bool = True  # add-ons removed from the definition: uninstall their releases (PRUNE_LABEL)
    stuck_after_seconds: float = 600.0  # a release pending longer than this is recovered
    # off: the sweep reports a stuck release and leaves it (the agent's RECONCILE_AUTO_HEAL_ENABLED)
    recover_stuck: bool = True
    timeout_seconds: int | None = None  # overrides job_configuration timeouts (tests, CLI)
    # A sync that nobody asked for by name (GitOps: a push, a poll, a retry) changes only add-ons
    # with `sync_policy.automated`; the others wait for a manual sync. Explicit syncs (the CLI's
    # `sync`, `cluster apply`, `addons sync`) leave it off.
    automated_only: bool = False
    held: frozenset[str] = frozenset()  # add-ons rolled back by a person: not changed until resumed
    only: frozenset[str] | None = None  # an add-on sync: change these add-ons and nothing else


@dataclass
class EngineContext:
    kube: KubeClient
    helm: Helm
    options: Options = field(default_factory=Options)
    clock: Callable[[], datetime] = utcnow
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    field_manager: str = FIELD_MANAGER
    helm_home: Path | None = None
    # self-heal's memory of recent heals (engine/fights.py), as long-lived as the context: one per
    # agent process. None: every drift is healed, fights are not detected.
    fights: FightDetector | None = field(default_factory=FightDetector)
    # user health checks (Lua, CEL) in force: the definition's over the agent's server-wide file;
    # asked before the dedicated rules (engine/health/custom). None: the built-in rules only.
    checks: Checks | None = None
