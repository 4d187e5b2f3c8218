"""Which writes run at once: the pure decision (table) and the scheduler on asyncio tasks."""

import asyncio

import pytest

from moorage.agent.writes import Claim, WriteScheduler, batch_size, claim_of, startable
from moorage.spec.protocol import JobAction

ALL = Claim.cluster()
A, B, C = Claim.of("a"), Claim.of("b"), Claim.of("c")
AB = Claim.of("a", "b")


@pytest.mark.parametrize(
    ("waiting", "running", "capacity", "expected"),
    [
        ([A, B], [], 5, [0, 1]),  # different add-ons: in parallel
        ([A, A], [], 5, [0]),  # the same add-on: one at a time
        ([A], [A], 5, []),
        ([B], [A], 5, [0]),
        ([A, B, C], [], 2, [0, 1]),  # write_worker_count bounds them
        ([C], [A, B], 2, []),
        ([ALL], [A], 5, []),  # a whole-cluster write waits for every add-on write
        ([A], [ALL], 5, []),  # and nothing runs beside it
        ([ALL, B], [A], 5, []),  # B came after the whole-cluster write: it keeps its turn
        ([A, ALL, B], [], 5, [0]),
        ([AB, B, C], [], 5, [0, 2]),  # B shares an add-on with AB, which waited longer; C is free
        ([A, B], [Claim.of()], 5, [0, 1]),  # an add-on sync of nothing conflicts with no add-on
        ([], [A], 5, []),
        ([A], [], 1, [0]),
    ],
)
def test_startable(waiting: list[Claim], running: list[Claim], capacity: int, expected: list[int]) -> None:
    assert startable(waiting, running, capacity) == expected


@pytest.mark.parametrize(
    ("action", "payload", "claim"),
    [
        (JobAction.SYNC, {"files": {}}, ALL),  # the definition: waves, parents and prunes
        (JobAction.SYNC, {"only": ["a"]}, A),  # an add-on sync
        (JobAction.SYNC, {"only": ["a", "b"]}, AB),
        (JobAction.SYNC, {"only": "a"}, ALL),  # not a list: the safe side
        (JobAction.ROLLBACK, {"addon": "a", "revision": 2}, A),
        (JobAction.ROLLBACK, {"revision": 2}, ALL),
        (JobAction.SWEEP, {}, ALL),
        (JobAction.DELETE, {"addons": ["a"]}, ALL),
        (JobAction.DEFINE, {"files": {}}, ALL),
        (JobAction.UPGRADE_AGENT, {"version": "0.2.0"}, ALL),  # the agent's own release: alone
    ],
)
def test_claim_of(action: JobAction, payload: dict[str, object], claim: Claim) -> None:
    assert claim_of(action, payload) == claim


async def test_scheduler_runs_other_addons_together_and_one_addon_alone() -> None:
    scheduler = WriteScheduler(capacity=5)
    events: list[str] = []
    gate = asyncio.Event()

    async def write(name: str, claim: Claim) -> None:
        async with scheduler.hold(claim):
            events.append(f"start {name}")
            await gate.wait()
            events.append(f"end {name}")

    tasks = [
        asyncio.create_task(write("a1", A)),
        asyncio.create_task(write("b", B)),
        asyncio.create_task(write("a2", A)),
        asyncio.create_task(write("all", ALL)),
    ]
    await asyncio.sleep(0.01)
    assert events == ["start a1", "start b"]
    assert scheduler.running == 2
    assert scheduler.held == 4
    gate.set()
    await asyncio.gather(*tasks)
    assert events.index("start a2") > events.index("end a1")
    assert events.index("start all") > max(events.index("end a2"), events.index("end b"))
    assert scheduler.held == 0


async def test_a_cancelled_waiter_leaves_no_trace() -> None:
    scheduler = WriteScheduler(capacity=1)
    async with scheduler.hold(A):
        waiting = asyncio.create_task(_hold(scheduler, B))
        await asyncio.sleep(0.01)
        assert scheduler.held == 2
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert scheduler.held == 1
    assert scheduler.held == 0
    await asyncio.wait_for(_hold(scheduler, ALL), 1)


async def _hold(scheduler: WriteScheduler, claim: Claim) -> None:
    async with scheduler.hold(claim):
        await asyncio.sleep(0)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="write_worker_count"):
        WriteScheduler(capacity=0)


@pytest.mark.parametrize(
    ("held", "max_held", "reads_free", "writes_held", "leader", "size"),
    [
        (0, 15, 5, 0, True, 10),  # reads and writes free
        (0, 15, 5, 0, False, 5),  # not the leader: no room counted for writes
        (0, 3, 5, 0, True, 3),  # nats_worker_max_workers caps it
        (15, 15, 5, 0, True, 0),  # full: nothing fetched
        (20, 15, 5, 0, True, 0),
        (10, 15, 0, 5, True, 1),  # every slot busy, room left: one, so a read is not starved
        (2, 15, 3, 7, True, 3),  # more writes waiting than workers: room for reads only
    ],
)
def test_batch_size(
    held: int, max_held: int, reads_free: int, writes_held: int, leader: bool, size: int
) -> None:
    got = batch_size(
        held=held,
        max_held=max_held,
        reads_free=reads_free,
        write_workers=5,
        writes_held=writes_held,
        leader=leader,
    )
    assert got == size
