"""Two `moorage server` replicas on PostgreSQL and a three-node NATS cluster with JetStream
(issue 19): the streams get three replicas, the agent is handed every node, and `kill -9` of one
NATS node mid-job, then of another after the first is back, loses no job and no result."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from moorage.spec import protocol
from tests import postgres
from tests.ha_support import HaControlPlane, Replicas, running_ha
from tests.integration.conftest import Helm
from tests.integration.control_plane_support import Agents, chain, register, wait_operation, wait_state
from tests.nats_support import Nats

pytestmark = pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaControlPlane]:
    with running_ha(tmp_path_factory.mktemp("ha"), replicas=2, nats_nodes=3) as started:
        yield started


@pytest.fixture(scope="module")
def nats_cluster(ha: HaControlPlane) -> Nats:
    return ha.nats


@pytest.fixture(scope="module")
def replicas(ha: HaControlPlane) -> Replicas:
    return ha.replicas


async def _stream_replicas(url: str) -> dict[str, int]:
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        out = {}
        for name in (protocol.JOBS_STREAM, protocol.RESULTS_STREAM):
            info = await js.stream_info(name)
            assert info.config.num_replicas is not None
            out[name] = info.config.num_replicas
        return out
    finally:
        await nc.close()


def test_streams_have_three_replicas_and_agents_get_every_node(
    replicas: Replicas, nats_cluster: Nats
) -> None:
    assert asyncio.run(_stream_replicas(nats_cluster.url)) == {
        protocol.JOBS_STREAM: 3,
        protocol.RESULTS_STREAM: 3,
    }
    a = replicas.servers[0]
    token = register(a, "three-nodes")
    registration = a.api("POST", "/agent/register", token=token).json()
    assert registration["nats_url"] == nats_cluster.url


def _apply(replicas: Replicas, n: int, namespace: str, chart_repo: ChartRepo, name: str) -> str:
    server = replicas.servers[n % 2]
    files = {"import-cluster.yaml": chain(chart_repo.url, 3).replace("crash", namespace)}
    response = server.api("POST", f"/clusters/{name}/apply", json={"files": files})
    assert response.status_code in (200, 202), response.text
    operation: str = response.json()["id"]
    return operation


def test_kill_9_of_a_nats_node_mid_job_then_of_another_loses_nothing(
    replicas: Replicas,
    nats_cluster: Nats,
    agents: Agents,
    cluster: DevCluster,
    helm: Helm,
    chart_repo: ChartRepo,
    tmp_path: Path,
) -> None:
    a, b = replicas.servers
    agents.start(b, register(a, "nats-kill"), cluster.kubeconfig)
    wait_state(a, "nats-kill", "online")
    timings = []
    for round_, victim in enumerate(nats_cluster.nodes[:2]):
        namespace = f"nats-kill-{round_}"
        operation = _apply(replicas, round_, namespace, chart_repo, "nats-kill")
        helm.wait_for_release(namespace, "link-0")  # the job is running
        victim.kill()
        killed = time.monotonic()
        try:
            op = wait_operation(a, operation, timeout=240)
            assert op["state"] == "success", op
            (job,) = op["jobs"]
            assert sum(m.startswith("addon/link-") for m in job["messages"]) == 3, job["messages"]
            timings.append(time.monotonic() - killed)
            # a job queued while the node is down completes too
            after = _apply(replicas, round_ + 1, f"{namespace}-down", chart_repo, "nats-kill")
            assert wait_operation(b, after, timeout=240)["state"] == "success"
        finally:
            victim.start()  # back before the next one is killed
        wait_state(a, "nats-kill", "online")
    history = a.api("GET", "/clusters/nats-kill/operations").json()["result"]
    assert [o["state"] for o in history] == ["success"] * 4, history
    print(
        "kill -9 of a NATS node mid-job: operation done "
        + ", ".join(f"{t:.1f} s" for t in timings)
        + " after"
    )
