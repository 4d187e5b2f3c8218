"""agent/leader.py against the devcluster's kube-apiserver: one of two candidates leads; when it stops
renewing (as if killed) the other leads once the lease ran out; a leader that finds the Lease taken
from it steps down at once; a released Lease is taken at the next try."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from moorage.agent.leader import LeaderElector, Timing
from moorage.devcluster import DevCluster
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from tests.integration.conftest import Kubectl

TIMING = Timing.of(3.0)  # renew every 0.4 s, give up after 2 s


@pytest.fixture
async def kube(cluster: DevCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as client:
        yield client


async def until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_one_leads_the_other_takes_over_and_a_deposed_leader_steps_down(
    kube: KubeClient, kubectl: Kubectl, namespace: str
) -> None:
    changes: list[tuple[str, bool]] = []
    a = LeaderElector(
        kube, namespace, "lease", me="a", timing=TIMING, on_change=lambda v: changes.append(("a", v))
    )
    b = LeaderElector(
        kube, namespace, "lease", me="b", timing=TIMING, on_change=lambda v: changes.append(("b", v))
    )
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(stop_a))
    await until(lambda: a.is_leader, 10)
    task_b = asyncio.create_task(b.run(stop_b))
    await asyncio.sleep(TIMING.duration + 1)  # b sees a renewing: it never leads
    assert a.is_leader
    assert not b.is_leader
    lease = json.loads(kubectl.run("get", "lease", "lease", "-n", namespace, "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == "a"
    assert lease["spec"]["leaseDurationSeconds"] == 3

    # a stops renewing, as if killed: b leads once the lease ran out, not before
    task_a.cancel()
    stopped = time.monotonic()
    await until(lambda: b.is_leader, 10)
    waited = time.monotonic() - stopped
    assert TIMING.duration - TIMING.retry <= waited <= TIMING.duration + 2 * TIMING.retry + 0.5, waited

    # someone else writes the Lease: b steps down at its next try
    kubectl.run(
        "patch", "lease", "lease", "-n", namespace, "--type=merge", "-p",
        json.dumps({"spec": {"holderIdentity": "c"}}),
    )  # fmt: skip
    assert await until(lambda: not b.is_leader, 5) < 2 * TIMING.retry + 0.5
    assert ("b", False) in changes

    # c gives it up: b takes it at once
    kubectl.run(
        "patch", "lease", "lease", "-n", namespace, "--type=merge", "-p",
        json.dumps({"spec": {"holderIdentity": ""}}),
    )  # fmt: skip
    assert await until(lambda: b.is_leader, 5) < 2 * TIMING.retry + 0.5
    stop_b.set()
    await task_b
    await b.release()  # at shutdown: the next candidate need not wait for the lease to run out
    holder = kubectl.run("get", "lease", "lease", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}")
    assert holder.stdout == ""
    assert changes[:2] == [("a", True), ("b", True)]
