"""An add-on whose image never becomes ready shows Degraded with the failing container named; fixing
the image in the definition brings it to Synced. On the devcluster, Moorage's own kwok stage
(devcluster/stages/pod-image-pull-backoff.yaml) holds a pod whose image contains "never-ready" in
ImagePullBackOff."""

import asyncio
import time
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.engine.context import EngineContext
from moorage.engine.executor import sync
from moorage.engine.observe import observe
from moorage.spec.content import ResolvedCluster
from moorage.spec.lifecycle import AddonState, Cause, ServerView, decide
from moorage.spec.protocol import AddonObservation
from tests.integration.engine_support import Definition, Engine, new_definition

FAILING = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: image-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: image-SFX
          configuration:
            values:
              replicaCount: 1
              image: {{repository: registry.example/nginx, tag: {tag}}}
          settings:
            strict_health_check: false
            retry_policy: {{limit: 0}}
"""


async def observed_until(
    ctx: EngineContext, resolved: ResolvedCluster, health: str, timeout: float = 60
) -> AddonObservation:
    """The add-on's observation once its health is `health` (the last one seen at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        (obs,) = await observe(ctx, resolved, cause=Cause.SWEEP)
        if obs.health == health or time.monotonic() > deadline:
            return obs
        await asyncio.sleep(0.5)


async def synced(ctx: EngineContext, d: Definition, tag: str, http: str) -> ResolvedCluster:
    d.write(FAILING.format(http=http, tag=tag))
    resolved, plan = d.load()
    result = await sync(ctx, resolved, plan)
    assert result.ok, {ref: o.message for ref, o in result.outcomes.items()}
    return resolved


async def test_unpullable_image_is_degraded_naming_the_container_and_a_fix_syncs(
    cluster: DevCluster, helm_home: Path, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    # without strict health a deploy does not wait (helm --wait=hookOnly, no rollback): it is applied,
    # and the add-on's state says what is wrong
    async with Engine(cluster.kubeconfig, helm_home, timeout_seconds=15) as ctx:
        resolved = await synced(ctx, d, "never-ready", chart_repo.url)
        await degraded_naming_the_container(ctx, resolved, d)
        await fixed_and_synced(ctx, d, chart_repo.url)


async def degraded_naming_the_container(ctx: EngineContext, resolved: ResolvedCluster, d: Definition) -> None:
    obs = await observed_until(ctx, resolved, "Degraded")
    assert obs.health == "Degraded", obs
    assert f"Deployment {d.ns('image')}/{d.ns('web')}: pod {d.ns('web')}-" in obs.health_reason
    assert "container web is waiting: ImagePullBackOff" in obs.health_reason, obs.health_reason
    assert 'Back-off pulling image "registry.example/nginx:never-ready"' in obs.health_reason
    state = decide(obs, ServerView())
    assert state.state is AddonState.DEGRADED, state
    assert "container web is waiting: ImagePullBackOff" in state.reason


async def fixed_and_synced(ctx: EngineContext, d: Definition, http: str) -> None:
    resolved = await synced(ctx, d, "1.27.0", http)
    obs = await observed_until(ctx, resolved, "Healthy")
    assert obs.health == "Healthy", obs
    assert obs.definition_matches, obs.definition_diff
    state = decide(obs, ServerView())
    assert state.state is AddonState.SYNCED, state
