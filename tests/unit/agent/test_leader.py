"""The leader election's pure decision: who may write the Lease, and when."""

import pytest

from moorage.agent.leader import Action, Record, Timing, decide, micro_time

ME = "agent-a"


def record(holder: str, duration: float = 15, renewed: str = "t1") -> Record:
    return Record(holder=holder, duration=duration, renewed=renewed, transitions=0)


@pytest.mark.parametrize(
    ("lease", "unchanged_since", "now", "action"),
    [
        (None, 0, 0, Action.CREATE),
        (record(ME), 0, 100, Action.RENEW),  # ours: renew, however old
        (record("agent-b"), 0, 14.9, Action.WAIT),  # the other renews: wait
        (record("agent-b"), 0, 15, Action.TAKE),  # seen unchanged for its duration: it is gone
        (record("agent-b", duration=5), 10, 14, Action.WAIT),
        (record("agent-b", duration=5), 10, 15, Action.TAKE),
        (record(""), 0, 0, Action.TAKE),  # given up at shutdown
    ],
)
def test_decide(lease: Record | None, unchanged_since: float, now: float, action: Action) -> None:
    assert decide(lease, ME, unchanged_since, now) is action


def test_record_of_a_lease() -> None:
    lease = {
        "spec": {
            "holderIdentity": "agent-b",
            "leaseDurationSeconds": 20,
            "renewTime": "2026-12-02T06:00:00.000001Z",
            "leaseTransitions": 3,
        }
    }
    assert Record.of(lease) == Record("agent-b", 20.0, "2026-12-02T06:00:00.000001Z", 3)
    assert Record.of({}) == Record("", 15.0, "", 0)
    assert Record.of({"spec": {"leaseDurationSeconds": -1}}).duration == 15.0


def test_timing() -> None:
    t = Timing.of(15)
    assert (t.duration, t.renew_deadline, t.retry) == (15, 10, 2)
    # one try is cut short so that a leader gives up before anyone may take over
    assert t.renew_deadline + t.attempt_timeout < t.duration
    with pytest.raises(ValueError, match="renew deadline"):
        Timing(duration=10, renew_deadline=12, retry=1)


def test_micro_time() -> None:
    assert micro_time().endswith("Z")
    assert len(micro_time()) == len("2026-12-02T06:00:00.000001Z")
