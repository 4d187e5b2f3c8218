"""Retry policy for failed applies (ankra-spec §5.1, §5.4).

Exponential backoff: the n-th retry (n = 1..limit) waits ``duration * factor**(n-1)``,
capped at ``max_duration``. With the defaults (limit 5, 5s, factor 2, max 3m) that is
5s, 10s, 20s, 40s, 80s. ``limit`` counts *retries*, so ``limit=0`` means one attempt and
``limit=5`` up to six.

The loop, not the action, decides whether to retry: ``run_with_retry`` asks
``is_retryable(error)`` and gives up at once on a permanent error.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from moorage.engine.windows import parse_duration

if TYPE_CHECKING:
    from moorage.spec import models

__all__ = ["OnRetry", "RetryPolicy", "RetryPolicyError", "delays", "run_with_retry"]

T = TypeVar("T")

LIMIT_RANGE = (0, 100)
FACTOR_RANGE = (1.0, 10.0)

#: ``on_retry(attempt, error, delay)``: called after failed attempt ``attempt`` (1-based),
#: before sleeping ``delay``. May be sync or async.
OnRetry = Callable[[int, BaseException, timedelta], Awaitable[None] | None]


class RetryPolicyError(ValueError):
    """A retry policy outside the ranges of ankra-spec §5.1."""


@dataclass(frozen=True)
class RetryPolicy:
    limit: int = 5
    duration: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    max_duration: timedelta = timedelta(minutes=3)

    def __post_init__(self) -> None:
        lo, hi = LIMIT_RANGE
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not lo <= self.limit <= hi:
            raise RetryPolicyError(f"retry limit must be an integer from {lo} to {hi}, got {self.limit!r}")
        flo, fhi = FACTOR_RANGE
        if not flo <= self.factor <= fhi:
            raise RetryPolicyError(f"backoff factor must be from {flo:g} to {fhi:g}, got {self.factor!r}")
        if self.duration < timedelta(0):
            raise RetryPolicyError(f"backoff duration must not be negative, got {self.duration}")
        if self.max_duration < timedelta(0):
            raise RetryPolicyError(f"backoff max_duration must not be negative, got {self.max_duration}")

    @classmethod
    def from_spec(cls, spec: models.RetryPolicy | None) -> RetryPolicy:
        """The engine's policy for ``settings.retry_policy`` (None → the defaults)."""
        if spec is None:
            return cls()
        return cls(
            limit=spec.limit,
            duration=parse_duration(spec.backoff.duration),
            factor=float(spec.backoff.factor),
            max_duration=parse_duration(spec.backoff.max_duration),
        )


def delays(policy: RetryPolicy) -> list[timedelta]:
    """The wait before each retry, in order (``policy.limit`` entries)."""
    base = policy.duration.total_seconds()
    cap = policy.max_duration.total_seconds()
    out: list[timedelta] = []
    for n in range(policy.limit):
        # factor ≤ 10 and n < 100, so factor**n stays far below float's range
        out.append(timedelta(seconds=min(cap, base * policy.factor**n)))
    return out


async def run_with_retry(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    is_retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> T:
    """Run ``attempt(n)`` (n = 1, 2, …) until it succeeds.

    A failure is retried after the next delay of :func:`delays` if ``is_retryable(error)``
    and retries remain; otherwise the error is re-raised unchanged (the last one, once the
    limit is spent). Only ``Exception`` is caught: cancellation, ``KeyboardInterrupt`` and
    ``SystemExit`` always propagate at once.
    """
    waits = delays(policy)
    number = 1
    while True:
        try:
            return await attempt(number)
        except Exception as error:
            if number > len(waits) or not is_retryable(error):
                raise
            delay = waits[number - 1]
            if on_retry is not None:
                result = on_retry(number, error, delay)
                if inspect.isawaitable(result):
                    await result
            await sleep(delay.total_seconds())
            number += 1
