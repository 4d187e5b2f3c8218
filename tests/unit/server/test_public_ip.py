"""The cluster's public IP: stored with the agent's heartbeat and shown in the cluster's API answer."""

from datetime import UTC, datetime

from moorage.server import service
from moorage.server.api.schemas import ClusterOut
from moorage.server.db import SessionFactory, transaction
from moorage.spec.protocol import HeartbeatMessage
from tests.unit.server.conftest import HASHER

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def test_public_ip_comes_and_goes_with_the_heartbeat(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        cluster, _ = service.register_cluster(s, HASHER, "ip")
        assert ClusterOut.of(cluster, T0).public_ip is None
        beat = HeartbeatMessage(cluster_id=cluster.id, agent_version="0.1.0", public_ip="203.0.113.7")
        assert service.record_heartbeat(s, beat, now=T0)
        assert ClusterOut.of(cluster, T0).public_ip == "203.0.113.7"
        # reporting turned off: the next heartbeat carries none, and none is shown
        assert service.record_heartbeat(s, beat.model_copy(update={"public_ip": None}), now=T0)
        assert ClusterOut.of(cluster, T0).public_ip is None
