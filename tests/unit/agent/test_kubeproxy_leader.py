"""kubectl through Moorage with several agent replicas: only the leader takes requests (each replica
would receive every request on the cluster's subject and run it), and one that stops leading ends the
streams it holds so kubectl retries against the new leader."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from moorage.agent.kubeproxy import KubeProxyAgent
from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import Frame, Mode
from tests.unit.agent.test_kubeproxy import CLUSTER, FakeApi, FakeNats, _open, _settle


@dataclass
class Sub:
    nc: "CountingNats"

    async def unsubscribe(self) -> None:
        self.nc.cb = None
        self.nc.subscribed -= 1


@dataclass
class CountingNats(FakeNats):
    subscribed: int = 0
    subjects: list[str] = field(default_factory=list)

    async def subscribe(self, subject: str, cb: Any) -> Sub:  # type: ignore[override]
        self.subjects.append(subject)
        self.cb = cb
        self.subscribed += 1
        return Sub(self)


def test_only_the_leader_listens_and_a_deposed_one_ends_its_streams() -> None:
    async def run() -> None:
        nc = CountingNats()
        api = FakeApi([b"x"] * 3, gate=asyncio.Event())  # a watch that stays open
        agent = KubeProxyAgent(nc, CLUSTER, api)  # type: ignore[arg-type]
        await agent.start(listening=False)  # a replica that does not lead
        assert nc.subscribed == 0
        await agent.listen()  # it leads now
        await agent.listen()  # once is enough
        assert nc.subscribed == 1
        assert nc.subjects == [kp.kube_to_agent_subject(CLUSTER)]
        sid = "b" * 24
        await nc.cb(_open(nc, sid, Mode.STREAM))
        await _settle()
        assert agent.stats()["open"] == 1
        await agent.deafen()  # another replica leads
        await _settle()
        assert nc.subscribed == 0
        assert agent.stats()["open"] == 0
        assert nc.kinds(sid)[-1] == Frame.END
        await agent.stop()

    asyncio.run(run())
