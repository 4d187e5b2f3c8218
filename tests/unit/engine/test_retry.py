"""Retry policy: delays, limits, permanent errors, a fake sleep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from moorage.engine.retry import RetryPolicy, RetryPolicyError, delays, run_with_retry
from moorage.spec import models


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def retryable(error: BaseException) -> bool:
    return isinstance(error, Transient)


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def test_default_delays_follow_the_spec() -> None:
    assert [d.total_seconds() for d in delays(RetryPolicy())] == [5, 10, 20, 40, 80]


def test_delays_are_capped() -> None:
    policy = RetryPolicy(limit=8, duration=timedelta(seconds=5), factor=3, max_duration=timedelta(minutes=3))
    assert [d.total_seconds() for d in delays(policy)] == [5, 15, 45, 135, 180, 180, 180, 180]
    huge = RetryPolicy(limit=100, factor=10)
    assert delays(huge)[-1] == timedelta(minutes=3)
    assert delays(RetryPolicy(limit=0)) == []
    assert delays(RetryPolicy(limit=3, factor=1)) == [timedelta(seconds=5)] * 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": -1}, "limit must be an integer from 0 to 100"),
        ({"limit": 101}, "limit must be an integer from 0 to 100"),
        ({"factor": 0.5}, "factor must be from 1 to 10"),
        ({"factor": 11}, "factor must be from 1 to 10"),
        ({"duration": timedelta(seconds=-1)}, "must not be negative"),
    ],
)
def test_ranges(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(RetryPolicyError, match=match):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_from_spec_nested_and_flat() -> None:
    nested = models.RetryPolicy.model_validate(
        {"limit": 3, "backoff": {"duration": "2s", "factor": 3, "max_duration": "1m"}}
    )
    assert RetryPolicy.from_spec(nested) == RetryPolicy(3, timedelta(seconds=2), 3.0, timedelta(minutes=1))
    flat = models.RetryPolicy.model_validate({"limit": 2, "backoff_duration": "1m30s", "backoff_max": "10m"})
    assert RetryPolicy.from_spec(flat) == RetryPolicy(2, timedelta(seconds=90), 2.0, timedelta(minutes=10))
    assert RetryPolicy.from_spec(models.RetryPolicy.model_validate({})) == RetryPolicy()
    assert RetryPolicy.from_spec(None) == RetryPolicy()


async def test_succeeds_after_transient_failures() -> None:
    sleep, seen, retried = FakeSleep(), [], []

    async def attempt(n: int) -> str:
        seen.append(n)
        if n < 3:
            raise Transient(f"boom {n}")
        return "ok"

    def on_retry(n: int, error: BaseException, delay: timedelta) -> None:
        retried.append((n, str(error), delay.total_seconds()))

    assert (
        await run_with_retry(attempt, RetryPolicy(), is_retryable=retryable, sleep=sleep, on_retry=on_retry)
        == "ok"
    )
    assert seen == [1, 2, 3]
    assert sleep.calls == [5, 10]
    assert retried == [(1, "boom 1", 5), (2, "boom 2", 10)]


async def test_reraises_the_last_error_after_the_limit() -> None:
    sleep = FakeSleep()
    attempts: list[int] = []

    async def attempt(n: int) -> None:
        attempts.append(n)
        raise Transient(f"attempt {n}")

    with pytest.raises(Transient, match="attempt 6"):
        await run_with_retry(attempt, RetryPolicy(), is_retryable=retryable, sleep=sleep)
    assert attempts == [1, 2, 3, 4, 5, 6]  # 1 try + limit (5) retries
    assert sleep.calls == [5, 10, 20, 40, 80]


async def test_limit_zero_means_one_attempt() -> None:
    sleep = FakeSleep()

    async def attempt(n: int) -> None:
        raise Transient("once")

    with pytest.raises(Transient):
        await run_with_retry(attempt, RetryPolicy(limit=0), is_retryable=retryable, sleep=sleep)
    assert sleep.calls == []


async def test_permanent_error_is_never_retried() -> None:
    sleep = FakeSleep()
    attempts: list[int] = []

    async def attempt(n: int) -> None:
        attempts.append(n)
        raise (Transient if n == 1 else Permanent)("values rejected by the chart schema")

    with pytest.raises(Permanent):
        await run_with_retry(attempt, RetryPolicy(), is_retryable=retryable, sleep=sleep)
    assert attempts == [1, 2]
    assert sleep.calls == [5]


async def test_async_on_retry_is_awaited() -> None:
    sleep, notes = FakeSleep(), []

    async def attempt(n: int) -> int:
        if n == 1:
            raise Transient("x")
        return n

    async def on_retry(n: int, error: BaseException, delay: timedelta) -> None:
        notes.append(n)

    assert (
        await run_with_retry(attempt, RetryPolicy(), is_retryable=retryable, sleep=sleep, on_retry=on_retry)
        == 2
    )
    assert notes == [1]
