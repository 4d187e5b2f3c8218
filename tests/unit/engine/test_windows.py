"""Sync windows: explicit cases (DST days, midnight, long durations, edges, errors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from moorage.engine.windows import (
    Decision,
    SyncWindow,
    SyncWindowError,
    current_window_end,
    decide,
    is_open,
    next_open,
    parse_duration,
)
from moorage.spec import models

BERLIN = ZoneInfo("Europe/Berlin")
S = timedelta(seconds=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BERLIN, fold=fold)


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("2h0m5s", timedelta(hours=2, seconds=5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("garbage", ["", "1", "h", "1d", "1 h", "-1h", "1h ", "1hx", "abc", "1h-30m", "1.h"])
def test_parse_duration_rejects_garbage_naming_it(garbage: str) -> None:
    with pytest.raises(SyncWindowError, match=f"'{garbage}' is not a duration"):
        parse_duration(garbage)


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ("0 22 * *", "not a 5-field cron"),
        ("0 0 22 * * *", "not a 5-field cron"),
        ("61 * * * *", "not a valid cron"),
        ("0 25 * * *", "not a valid cron"),
        ("every day", "not a 5-field cron"),
    ],
)
def test_invalid_cron_is_a_clear_error(schedule: str, match: str) -> None:
    with pytest.raises(SyncWindowError, match=match) as info:
        SyncWindow(schedule, timedelta(hours=1))
    assert schedule in str(info.value)


def test_invalid_timezone_and_duration() -> None:
    with pytest.raises(SyncWindowError, match="'Mars/Olympus' is not an IANA time zone"):
        SyncWindow("0 22 * * *", timedelta(hours=1), "Mars/Olympus")
    with pytest.raises(SyncWindowError, match="must be positive"):
        SyncWindow("0 22 * * *", timedelta(0))


def test_from_spec() -> None:
    spec = models.SyncWindow.model_validate(
        {"enabled": True, "schedule": "0 22 * * 1-5", "duration": "1h30m", "timezone": "Europe/Oslo"}
    )
    assert SyncWindow.from_spec(spec) == SyncWindow(
        "0 22 * * 1-5", timedelta(minutes=90), "Europe/Oslo", True
    )
    assert SyncWindow.from_spec(None) is None
    assert SyncWindow.from_spec(models.SyncWindow.model_validate({})) is None  # disabled, incomplete
    disabled = SyncWindow.from_spec(
        models.SyncWindow.model_validate({"enabled": False, "schedule": "0 1 * * *", "duration": "1h"})
    )
    assert disabled is not None
    assert not disabled.enabled


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(SyncWindow("0 22 * * *", timedelta(hours=1)), datetime(2024, 1, 1))


# --------------------------------------------------------------------------- semantics


def test_edges_open_inclusive_close_exclusive() -> None:
    w = SyncWindow("0 22 * * *", timedelta(hours=1))
    assert not is_open(w, utc(2024, 5, 1, 21, 59, 59))
    assert is_open(w, utc(2024, 5, 1, 22, 0))
    assert is_open(w, utc(2024, 5, 1, 22, 59, 59, 999999))
    assert not is_open(w, utc(2024, 5, 1, 23, 0))
    assert next_open(w, utc(2024, 5, 1, 23, 0)) == utc(2024, 5, 2, 22, 0)
    assert current_window_end(w, utc(2024, 5, 1, 22, 30)) == utc(2024, 5, 1, 23, 0)
    assert current_window_end(w, utc(2024, 5, 1, 23, 0)) is None


def test_window_spanning_midnight() -> None:
    w = SyncWindow("30 23 * * 5", timedelta(hours=3), "Europe/Berlin")  # Friday 23:30, 3h
    assert is_open(w, berlin(2024, 5, 3, 23, 45))  # Friday
    assert is_open(w, berlin(2024, 5, 4, 2, 29))  # Saturday, still Friday's window
    assert not is_open(w, berlin(2024, 5, 4, 2, 30))
    assert not is_open(w, berlin(2024, 5, 5, 0, 30))  # Sunday: Saturday had no window
    assert next_open(w, berlin(2024, 5, 4, 3, 0)) == berlin(2024, 5, 10, 23, 30)


def test_duration_longer_than_the_period_merges() -> None:
    w = SyncWindow("0 */2 * * *", timedelta(hours=3))  # every 2h for 3h: always open
    assert all(is_open(w, utc(2024, 1, 1) + timedelta(minutes=m)) for m in range(0, 24 * 60, 7))
    assert current_window_end(w, utc(2024, 1, 1, 5)) is None
    w = SyncWindow("0 8,9 * * *", timedelta(minutes=90))  # 08:00-09:30 and 09:00-10:30 merge
    assert current_window_end(w, utc(2024, 1, 1, 8, 10)) == utc(2024, 1, 1, 10, 30)


def test_spring_forward_fixed_time_window_still_opens() -> None:
    # 02:30 does not exist in Berlin on 2024-03-31: the window opens when the clock jumps (03:00 CEST)
    w = SyncWindow("30 2 * * *", timedelta(hours=1), "Europe/Berlin")
    jump = utc(2024, 3, 31, 1, 0)
    assert jump.astimezone(BERLIN) == berlin(2024, 3, 31, 3, 0)
    assert not is_open(w, jump - S)
    assert is_open(w, jump)
    assert next_open(w, utc(2024, 3, 30, 12)) == jump
    assert current_window_end(w, jump) == jump + timedelta(hours=1)
    assert is_open(w, berlin(2024, 4, 1, 2, 30))  # back to normal the day after


def test_spring_forward_wildcard_schedule_skips_missing_times() -> None:
    w = SyncWindow("30 * * * *", timedelta(minutes=10), "Europe/Berlin")
    assert not is_open(w, utc(2024, 3, 31, 1, 5))  # 03:05 CEST: 02:30 never happened
    assert is_open(w, utc(2024, 3, 31, 0, 35))  # 01:35 CET
    assert is_open(w, utc(2024, 3, 31, 1, 35))  # 03:35 CEST


def test_fall_back_fixed_time_window_opens_once() -> None:
    w = SyncWindow("30 2 * * *", timedelta(hours=1), "Europe/Berlin")
    first = berlin(2024, 10, 27, 2, 30, fold=0)  # 00:30 UTC
    assert first.astimezone(UTC) == utc(2024, 10, 27, 0, 30)
    assert is_open(w, first)
    end = current_window_end(w, first)
    assert end is not None
    # 60 real minutes, not 2h (compare in UTC: PEP 495 makes fold=1 times unequal across zones)
    assert end.astimezone(UTC) == utc(2024, 10, 27, 1, 30)
    assert not is_open(w, berlin(2024, 10, 27, 2, 30, fold=1))  # the repeated 02:30 does not reopen
    assert next_open(w, utc(2024, 10, 27, 1, 30)) == utc(2024, 10, 28, 1, 30)


def test_fall_back_wildcard_schedule_runs_in_both_passes() -> None:
    w = SyncWindow("0 * * * *", timedelta(minutes=10), "Europe/Berlin")
    assert is_open(w, utc(2024, 10, 27, 0, 5))  # 02:05 CEST
    assert is_open(w, utc(2024, 10, 27, 1, 5))  # 02:05 CET
    assert next_open(w, utc(2024, 10, 27, 0, 30)) == utc(2024, 10, 27, 1, 0)


def test_results_in_the_callers_timezone() -> None:
    w = SyncWindow("0 22 * * *", timedelta(hours=1), "UTC")
    opens = next_open(w, berlin(2024, 5, 1, 12))
    assert opens == utc(2024, 5, 1, 22)
    assert opens is not None
    assert opens.tzinfo is BERLIN


def test_schedule_that_never_fires() -> None:
    w = SyncWindow("0 0 30 2 *", timedelta(hours=1))
    assert not is_open(w, utc(2024, 1, 1))
    assert next_open(w, utc(2024, 1, 1)) is None
    assert decide(w, utc(2024, 1, 1), "update") == Decision(False, "outside_sync_window", None)


# --------------------------------------------------------------------------- decide


@pytest.mark.parametrize("action", ["create", "update", "self_heal"])
def test_gated_actions_outside_the_window(action: str) -> None:
    w = SyncWindow("0 22 * * *", timedelta(hours=2))
    assert decide(w, utc(2024, 5, 1, 12), action) == Decision(
        allowed=False, reason="outside_sync_window", retry_at=utc(2024, 5, 1, 22)
    )
    assert decide(w, utc(2024, 5, 1, 23), action) == Decision(allowed=True)


def test_delete_is_not_gated_and_absent_or_disabled_windows_are_open() -> None:
    w = SyncWindow("0 22 * * *", timedelta(hours=2))
    assert decide(w, utc(2024, 5, 1, 12), "delete").allowed
    assert decide(None, utc(2024, 5, 1, 12), "update").allowed
    off = SyncWindow("0 22 * * *", timedelta(hours=2), enabled=False)
    assert decide(off, utc(2024, 5, 1, 12), "create").allowed
    assert is_open(off, utc(2024, 5, 1, 12))
    assert next_open(None, utc(2024, 5, 1, 12)) == utc(2024, 5, 1, 12)


def test_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown sync action 'sync'"):
        decide(None, utc(2024, 5, 1), "sync")
