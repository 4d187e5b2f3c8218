"""The fleet roll-forward's pure decision (server/rollout_plan.py): which version is the target,
which clusters are upgraded in which batch, when the next batch starts, and that the first failure
stops the roll-out."""

from datetime import UTC, datetime, timedelta

import pytest

from moorage.server.rollout_plan import Attempt, Member, Policy, decide, newest, version_key

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = Policy(batch_size=2, pause=timedelta(seconds=60), report_within=timedelta(seconds=300))


@pytest.mark.parametrize(
    ("versions", "prereleases", "expected"),
    [
        (["0.1.0", "0.2.0", "0.10.0", "0.9.1"], False, "0.10.0"),  # numeric, not text order
        (["0.1.0", "0.2.0-rc.1"], False, "0.1.0"),  # no pre-release unless asked
        (["0.1.0", "0.2.0-rc.1"], True, "0.2.0-rc.1"),
        (["0.2.0-rc.1", "0.2.0"], True, "0.2.0"),  # a release is above its pre-releases
        (["v1.0.0", "0.9.0"], False, "1.0.0"),
        (["1.0.0+build.7"], False, "1.0.0+build.7"),
        (["latest", "sha256-abc", "01.0.0"], False, None),  # tags that are no versions
        ([], False, None),
    ],
)
def test_newest(versions: list[str], prereleases: bool, expected: str | None) -> None:
    assert newest(versions, prereleases=prereleases) == expected


def test_prerelease_order() -> None:
    keys = [version_key(v, prereleases=True) for v in ("1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0")]
    assert keys == sorted(keys)  # type: ignore[type-var]


def m(name: str, version: str | None = "0.1.0", online: bool = True, roll: bool = True) -> Member:
    return Member(name=name, online=online, chart_version=version, roll_forward=roll)


def a(name: str, batch: int, state: str, ago: float = 10, finished_ago: float | None = None) -> Attempt:
    finished = NOW - timedelta(seconds=finished_ago) if finished_ago is not None else None
    return Attempt(name, batch, state, NOW - timedelta(seconds=ago), finished, f"op-{name}", ("helm: boom",))


def test_the_first_batch_takes_batch_size_clusters_by_name_and_leaves_the_rest() -> None:
    members = [
        m("d"),
        m("a"),
        m("c"),
        m("b"),
        m("e", roll=False),
        m("f", online=False),
        m("g", version=None),
        m("h", version="0.2.0"),
    ]
    plan = decide("0.2.0", members, {}, POLICY, NOW)
    assert (plan.state, plan.start, plan.batch) == ("rolling", ("a", "b"), 1)
    status = {e.cluster: e.status for e in plan.entries}
    assert status == {
        "a": "pending",
        "b": "pending",
        "c": "pending",
        "d": "pending",
        "e": "opted_out",
        "f": "offline",
        "g": "no_chart",
        "h": "current",
    }


# (attempts, members' versions, expected state, expected start, expected batch)
CASES = [
    # a batch running: nothing new starts
    ({"a": a("a", 1, "running"), "b": a("b", 1, "running")}, {}, "rolling", (), 1),
    # applied, the new agent not reported yet (within report_within): still upgrading
    ({"a": a("a", 1, "success", finished_ago=30), "b": a("b", 1, "running")}, {}, "rolling", (), 1),
    # batch 1 reported, but the pause since its last upgrade has not passed
    ({"a": a("a", 1, "success", finished_ago=30), "b": a("b", 1, "success", finished_ago=20)},
     {"a": "0.2.0", "b": "0.2.0"}, "paused", (), 1),
    # the pause passed: batch 2
    ({"a": a("a", 1, "success", finished_ago=90), "b": a("b", 1, "success", finished_ago=61)},
     {"a": "0.2.0", "b": "0.2.0"}, "rolling", ("c", "d"), 2),
    # everything reported
    ({n: a(n, 1 if n in "ab" else 2, "success", finished_ago=200) for n in "abcd"},
     dict.fromkeys("abcd", "0.2.0"), "done", (), None),
    # a failed upgrade stops the roll-out, even though others are pending
    ({"a": a("a", 1, "failed", finished_ago=5), "b": a("b", 1, "success", finished_ago=5)},
     {"b": "0.2.0"}, "failed", (), None),
    # applied but never reported within report_within: a failure
    ({"a": a("a", 1, "success", finished_ago=301), "b": a("b", 1, "success", finished_ago=90)},
     {"b": "0.2.0"}, "failed", (), None),
    # a job that timed out (the server gave up on it)
    ({"a": a("a", 1, "cancelled", finished_ago=5)}, {}, "failed", (), None),
]  # fmt: skip


@pytest.mark.parametrize(("attempts", "versions", "state", "start", "batch"), CASES)
def test_batches(
    attempts: dict[str, Attempt],
    versions: dict[str, str],
    state: str,
    start: tuple[str, ...],
    batch: int | None,
) -> None:
    members = [m(n, versions.get(n, "0.1.0")) for n in "abcd"]
    plan = decide("0.2.0", members, attempts, POLICY, NOW)
    assert (plan.state, plan.start, plan.batch) == (state, start, batch)
    if state == "failed":
        assert plan.failure is not None
        assert plan.failure.startswith("cluster a (batch 1): ")
    else:
        assert plan.failure is None


def test_the_failure_says_why() -> None:
    plan = decide("0.2.0", [m("a"), m("b")], {"a": a("a", 1, "failed", finished_ago=5)}, POLICY, NOW)
    assert plan.failure == "cluster a (batch 1): helm: boom"
    never = decide("0.2.0", [m("a")], {"a": a("a", 1, "success", finished_ago=400)}, POLICY, NOW)
    assert never.failure is not None
    assert "did not report chart 0.2.0 within 300 s (it reports 0.1.0)" in never.failure


def test_the_pause_ends_at_the_last_upgrade_of_the_batch_plus_pause() -> None:
    attempts = {"a": a("a", 1, "success", finished_ago=50), "b": a("b", 1, "success", finished_ago=10)}
    plan = decide("0.2.0", [m("a", "0.2.0"), m("b", "0.2.0"), m("c")], attempts, POLICY, NOW)
    assert plan.next_batch_at == NOW + timedelta(seconds=50)
    assert plan.batches == (("a", "b"),)


def test_an_opted_out_or_offline_cluster_never_starts_and_an_offline_one_joins_later() -> None:
    members = [m("a", roll=False), m("b", online=False)]
    assert decide("0.2.0", members, {}, POLICY, NOW).state == "up_to_date"
    back = decide("0.2.0", [m("a", roll=False), m("b")], {}, POLICY, NOW)
    assert back.start == ("b",)


def test_a_newer_agent_than_the_target_is_current() -> None:
    assert decide("0.2.0", [m("a", "0.3.0")], {}, POLICY, NOW).state == "up_to_date"


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="not a semver"):
        decide("latest", [], {}, POLICY, NOW)
    with pytest.raises(ValueError, match="batch size"):
        decide("0.2.0", [], {}, Policy(batch_size=0), NOW)
