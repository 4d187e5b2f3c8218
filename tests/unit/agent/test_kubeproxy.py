"""The agent's side of the kubectl proxy with a recording NATS connection and a stand-in API server:
credit-based flow control, the concurrency limit, refusals, cancel, and frames of unknown streams."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from moorage.agent.kubeproxy import KubeProxyAgent, Limits
from moorage.kube.passthrough import RawResponse
from moorage.spec import kubeproxy as kp
from moorage.spec.kubeproxy import Frame, KubeRequest, Mode

CLUSTER = "c1"


@dataclass
class Msg:
    data: bytes
    headers: dict[str, str]


@dataclass
class FakeNats:
    sent: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    cb: Any = None

    async def subscribe(self, subject: str, cb: Any) -> None:
        assert subject == kp.kube_to_agent_subject(CLUSTER)
        self.cb = cb

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        self.sent.append((subject, data, headers))

    def kinds(self, stream_id: str) -> list[str]:
        """The frames of a stream after the ACCEPT that a taken request starts with."""
        sent = [h[kp.H_KIND] for s, _, h in self.sent if s == kp.kube_to_server_subject(CLUSTER, stream_id)]
        return sent[1:] if sent[:1] == [Frame.ACCEPT] else sent


class FakeApi:
    """An API server whose answer is `pieces` (a slow one waits on `gate` before each)."""

    def __init__(self, pieces: list[bytes], gate: asyncio.Event | None = None) -> None:
        self.pieces = pieces
        self.gate = gate
        self.seen: list[tuple[str, str, list[str]]] = []

    @contextlib.asynccontextmanager
    async def stream(self, method: str, *_request: Any, user: str, groups: Any) -> AsyncIterator[RawResponse]:
        self.seen.append((method, user, list(groups)))

        async def chunks() -> AsyncIterator[bytes]:
            for piece in self.pieces:
                if self.gate is not None:
                    await self.gate.wait()
                yield piece

        yield RawResponse(200, [("Content-Type", "application/json"), ("Set-Cookie", "x")], chunks())

    async def close(self) -> None:
        pass


def _open(agent_nc: FakeNats, stream_id: str, mode: Mode = Mode.UNARY) -> Msg:
    request = KubeRequest(
        stream_id=stream_id,
        mode=mode,
        method="GET",
        path="/api/v1/pods",
        user="moorage:user:alice",
        groups=["moorage:view"],
        timeout_seconds=30,
    )
    return Msg(request.model_dump_json().encode(), {kp.H_KIND: Frame.OPEN, kp.H_STREAM: stream_id})


async def _settle() -> None:
    """Until the agent's tasks have done what they can without new frames."""
    for _ in range(100):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


def test_the_agent_sends_no_more_than_its_credit_and_continues_when_granted() -> None:
    async def run() -> None:
        nc = FakeNats()
        api = FakeApi([bytes([i]) * 10 for i in range(3 * kp.WINDOW)])
        agent = KubeProxyAgent(nc, CLUSTER, api)  # type: ignore[arg-type]
        await agent.start()
        sid = "a" * 24
        await nc.cb(_open(nc, sid, Mode.STREAM))  # a watch: each piece goes on as it comes
        await _settle()
        kinds = nc.kinds(sid)
        assert kinds[0] == Frame.HEAD
        assert kinds.count(Frame.DATA) == kp.WINDOW  # then it waits
        assert nc.sent[0][2][kp.H_KIND] == Frame.ACCEPT
        _, head, _ = nc.sent[1]
        assert b"Set-Cookie" not in head  # only forwarded response headers
        await nc.cb(Msg(b"", {kp.H_KIND: Frame.CREDIT, kp.H_STREAM: sid, kp.H_N: str(kp.WINDOW)}))
        await _settle()
        assert nc.kinds(sid).count(Frame.DATA) == 2 * kp.WINDOW
        await nc.cb(Msg(b"", {kp.H_KIND: Frame.CREDIT, kp.H_STREAM: sid, kp.H_N: str(kp.WINDOW)}))
        await _settle()
        kinds = nc.kinds(sid)
        assert kinds.count(Frame.DATA) == 3 * kp.WINDOW
        assert kinds[-1] == Frame.END
        seqs = [int(h[kp.H_SEQ]) for _, _, h in nc.sent if h[kp.H_KIND] == Frame.DATA]
        assert seqs == list(range(1, 3 * kp.WINDOW + 1))
        assert api.seen == [("GET", "moorage:user:alice", ["moorage:view"])]
        assert agent.stats()["open"] == 0
        await agent.stop()

    asyncio.run(run())


def test_a_unary_answer_goes_in_full_chunks() -> None:
    async def run() -> None:
        nc = FakeNats()
        pieces = [b"x" * 1000] * 300  # 300 socket reads of 1,000 bytes
        agent = KubeProxyAgent(nc, CLUSTER, FakeApi(pieces))  # type: ignore[arg-type]
        await agent.start()
        sid = "9" * 24
        await nc.cb(_open(nc, sid))
        await _settle()
        data = [d for _, d, h in nc.sent if h[kp.H_KIND] == Frame.DATA]
        assert b"".join(data) == b"x" * 300_000
        assert [len(d) for d in data] == [kp.CHUNK_BYTES, kp.CHUNK_BYTES, 300_000 - 2 * kp.CHUNK_BYTES]
        await agent.stop()

    asyncio.run(run())


def test_over_the_limit_is_refused_at_once_and_a_cancel_frees_the_slot() -> None:
    async def run() -> None:
        nc = FakeNats()
        gate = asyncio.Event()
        agent = KubeProxyAgent(nc, CLUSTER, FakeApi([b"x"], gate), Limits(unary=1, stream=1))  # type: ignore[arg-type]
        await agent.start()
        first, second, third = "b" * 24, "c" * 24, "d" * 24
        await nc.cb(_open(nc, first))
        await _settle()
        await nc.cb(_open(nc, second))
        await _settle()
        assert nc.kinds(second) == [Frame.HEAD, Frame.DATA, Frame.END]
        _, head, _ = next(x for x in nc.sent if x[2][kp.H_STREAM] == second)
        assert b'"status":503' in head
        await nc.cb(Msg(b"", {kp.H_KIND: Frame.CANCEL, kp.H_STREAM: first}))
        await _settle()
        assert nc.kinds(first)[-1] == Frame.END
        gate.set()
        await nc.cb(_open(nc, third))
        await _settle()
        assert nc.kinds(third)[-1] == Frame.END
        assert Frame.DATA in nc.kinds(third)
        await agent.stop()

    asyncio.run(run())


def test_frames_of_a_stream_the_agent_does_not_know_end_it() -> None:
    async def run() -> None:
        nc = FakeNats()
        agent = KubeProxyAgent(nc, CLUSTER, FakeApi([]))  # type: ignore[arg-type]
        await agent.start()
        sid = "e" * 24
        await nc.cb(Msg(b"", {kp.H_KIND: Frame.CREDIT, kp.H_STREAM: sid, kp.H_N: "4"}))
        assert nc.kinds(sid) == [Frame.END]
        assert b"restarted" in nc.sent[0][1]
        # an invalid request is answered 400, never sent on
        bad = Msg(b'{"stream_id": "' + b"f" * 24 + b'"}', {kp.H_KIND: Frame.OPEN, kp.H_STREAM: "f" * 24})
        await nc.cb(bad)
        assert b'"status":400' in nc.sent[1][1]
        await agent.stop()

    asyncio.run(run())
