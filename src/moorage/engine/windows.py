"""Sync windows: when may the engine create, update or self-heal an add-on?

A window is a 5-field cron expression (when it *opens*), a duration (how long it stays
open) and an IANA time zone. ankra-spec §5.6:

    open at ``now``  ⇔  ∃ fire time t ≤ now with now < t + duration

so a window is open at ``t`` inclusive and closed at ``t + duration`` exclusive. The
duration is elapsed (physical) time, not wall-clock time: a 1h window that opens just
before a DST change still lasts 60 minutes.

Fire times are wall-clock times in the window's time zone. Daylight-saving changes
follow Vixie cron (``man 8 cron``), the behaviour operators know:

* **Fixed-time schedules** — neither the minute nor the hour field contains ``*`` (e.g.
  ``30 2 * * *``):

  - a fire time in the *skipped* hour (spring forward; 02:30 in Europe/Berlin on the last
    Sunday of March) fires at the moment of the change (03:00 local), so the day's
    window is not lost;
  - a fire time in the *repeated* hour (fall back) fires once, at its first occurrence.

* **Wildcard schedules** (``*`` in the minute or hour field, e.g. ``*/15 * * * *``) run by
  the clock: times in the skipped hour do not happen, times in the repeated hour happen
  twice.

Everything here is pure: the current time is always a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

if TYPE_CHECKING:
    from moorage.spec import models

__all__ = [
    "Decision",
    "SyncAction",
    "SyncWindow",
    "SyncWindowError",
    "current_window_end",
    "decide",
    "is_open",
    "next_open",
    "parse_duration",
]

OUTSIDE_SYNC_WINDOW: Literal["outside_sync_window"] = "outside_sync_window"

# How far ahead/behind croniter may search for a match before we call a schedule dead
# (e.g. "0 0 30 2 *" never fires). Leap-day schedules need 8 years at most.
_MAX_YEARS_BETWEEN_MATCHES = 9
# The largest repeated-hour (fall back) shift we account for; real zones use ≤ 2h.
_DST_SLACK = timedelta(hours=3)
# current_window_end() gives up (returns None) when windows keep overlapping this long.
_END_HORIZON = timedelta(days=366)
_END_MAX_STEPS = 2000

_MINUTE = timedelta(minutes=1)


class SyncWindowError(ValueError):
    """A sync window (or a duration) that cannot be evaluated; the message names the value."""


# --------------------------------------------------------------------------- durations

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: str) -> timedelta:
    """Parse a Go-style duration such as ``90s``, ``30m``, ``1h``, ``1h30m`` or ``1.5h``.

    These are the forms the spec accepts (``moorage.spec.models.DURATION_RE``). Anything else
    (empty, signs, spaces, unknown units such as ``1d``) raises :class:`SyncWindowError`
    naming the value.
    """
    if not isinstance(value, str):
        raise SyncWindowError(f"duration {value!r} is not a string (use forms like 90s, 30m, 1h30m)")
    pos = 0
    seconds = 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(value):
        raise SyncWindowError(f"'{value}' is not a duration (use forms like 90s, 30m, 1h, 1h30m)")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise SyncWindowError(f"duration '{value}' is too large") from None


# --------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class SyncWindow:
    """A validated sync window. Construct directly or with :meth:`from_spec`."""

    schedule: str
    duration: timedelta
    timezone: str = "UTC"
    enabled: bool = True

    def __post_init__(self) -> None:
        fields = self.schedule.split() if isinstance(self.schedule, str) else []
        if len(fields) != 5:
            raise SyncWindowError(
                f"schedule '{self.schedule}' is not a 5-field cron expression "
                "(minute hour day-of-month month day-of-week, e.g. '0 22 * * *')"
            )
        if not croniter.is_valid(self.schedule):
            raise SyncWindowError(f"schedule '{self.schedule}' is not a valid cron expression")
        if self.duration <= timedelta(0):
            raise SyncWindowError(f"sync window duration must be positive, got {self.duration}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SyncWindowError(
                f"'{self.timezone}' is not an IANA time zone (e.g. UTC, Europe/Oslo)"
            ) from None

    @classmethod
    def from_spec(cls, spec: models.SyncWindow | None) -> SyncWindow | None:
        """The engine's window for ``settings.sync_window``.

        ``None`` (no window, always open) when the spec has none, or when it is disabled
        and incomplete; a disabled but complete window is kept with ``enabled=False``.
        """
        if spec is None:
            return None
        if spec.schedule is None or spec.duration is None:
            if spec.enabled:  # the spec model rejects this already; be explicit anyway
                raise SyncWindowError("an enabled sync_window needs both 'schedule' and 'duration'")
            return None
        return cls(
            schedule=spec.schedule,
            duration=parse_duration(spec.duration),
            timezone=spec.timezone,
            enabled=spec.enabled,
        )

    # --- cached helpers (a frozen dataclass without __slots__ can hold cached properties)

    @cached_property
    def _tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _fixed_time(self) -> bool:
        minute, hour = self.schedule.split()[:2]
        return "*" not in minute and "*" not in hour

    def _walls(self, start: datetime, *, backwards: bool) -> Iterator[datetime]:
        """Matching naive wall-clock minutes, strictly before/after ``start`` (naive)."""
        it = croniter(self.schedule, start, max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES)
        step = it.get_prev if backwards else it.get_next
        try:
            while True:
                yield step(datetime)
        except CroniterBadDateError:
            return

    # --- wall clock → instants

    def _instants(self, wall: datetime) -> tuple[datetime | None, datetime | None]:
        """(primary, secondary) UTC instants at which the naive wall time ``wall`` fires.

        ``primary`` is non-decreasing in ``wall``; ``secondary`` is the second occurrence of a
        repeated wall time (wildcard schedules only) and is always later than ``primary``.
        """
        tz = self._tz
        first = wall.replace(tzinfo=tz, fold=0)
        second = wall.replace(tzinfo=tz, fold=1)
        off0, off1 = _offset(first), _offset(second)
        if off0 == off1:
            return first.astimezone(UTC), None
        if off0 > off1:  # repeated hour (fall back): fold=0 is the earlier occurrence
            repeat = None if self._fixed_time else second.astimezone(UTC)
            return first.astimezone(UTC), repeat
        # skipped hour (spring forward): wall time does not exist
        if not self._fixed_time:
            return None, None
        return _transition_instant(wall, tz, off0, off1), None

    def _prev_fire(self, now: datetime) -> datetime | None:
        """The latest fire instant ≤ ``now``."""
        local = now.astimezone(self._tz)
        wall = local.replace(tzinfo=None, fold=0)
        if local.fold == 1:  # in the repeated hour's second pass
            wall += _offset(local.replace(fold=0)) - _offset(local)
        start = wall.replace(second=0, microsecond=0) + _MINUTE  # croniter's prev is exclusive
        found: datetime | None = None
        for candidate in self._walls(start, backwards=True):
            primary, secondary = self._instants(candidate)
            if found is None:
                if primary is None or primary > now:
                    continue
                found = primary  # the latest first occurrence ≤ now (primary is monotone)
            if secondary is None:  # not (or no longer) inside a repeated hour
                return found
            if secondary <= now:  # second occurrences come after every first one
                return secondary
        return found

    def _next_fire(self, now: datetime) -> datetime | None:
        """The earliest fire instant > ``now``."""
        tz = self._tz
        wall = now.astimezone(tz).replace(tzinfo=None, fold=0)
        if (
            not self._fixed_time
            and (now - _DST_SLACK).astimezone(tz).utcoffset() != (now + _DST_SLACK).astimezone(tz).utcoffset()
        ):
            # a repeated hour nearby: second occurrences of earlier wall times may lie ahead
            wall -= _DST_SLACK
        best: datetime | None = None
        for candidate in self._walls(wall, backwards=False):
            primary, secondary = self._instants(candidate)
            for instant in (primary, secondary):
                if instant is not None and instant > now and (best is None or instant < best):
                    best = instant
            if primary is not None and primary > now:
                return best
        return best


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always yields an offset
        raise SyncWindowError(f"no UTC offset for {moment!r}")
    return offset


def _transition_instant(wall: datetime, tz: tzinfo, before: timedelta, after: timedelta) -> datetime:
    """The UTC instant at which the clock jumped over the non-existent ``wall``."""
    lo = (wall - after).replace(tzinfo=UTC)  # before the jump: the offset is still 'before'
    hi = (wall - before).replace(tzinfo=UTC)  # after the jump
    # smallest whole second x in (lo, hi] whose offset is 'after'
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(tz).utcoffset() == after:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


# --------------------------------------------------------------------------- public queries


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")


def _active(window: SyncWindow | None) -> SyncWindow | None:
    return window if window is not None and window.enabled else None


def is_open(window: SyncWindow | None, now: datetime) -> bool:
    """True iff some fire time t ≤ now has now < t + duration. No/disabled window: True."""
    _check_now(now)
    active = _active(window)
    if active is None:
        return True
    fired = active._prev_fire(now)
    return fired is not None and now < fired + active.duration


def next_open(window: SyncWindow | None, now: datetime) -> datetime | None:
    """``now`` if open, else the instant the window next opens; None if it never fires again.

    Instants are returned in ``now``'s time zone."""
    _check_now(now)
    active = _active(window)
    if active is None or is_open(active, now):
        return now
    opens = active._next_fire(now)
    return None if opens is None else opens.astimezone(now.tzinfo)


def current_window_end(window: SyncWindow | None, now: datetime) -> datetime | None:
    """The instant the window closes, when it is open at ``now``.

    Overlapping windows (a duration longer than the cron period) are merged, so this is when
    the window really closes. ``None`` when it is closed at ``now``, when there is no active
    window (always open), or when it stays open beyond what we resolve: more than a year, or
    more than 2000 back-to-back openings (dense schedules such as ``* * * * *``).
    """
    _check_now(now)
    active = _active(window)
    if active is None:
        return None
    fired = active._prev_fire(now)
    if fired is None or now >= fired + active.duration:
        return None
    end = fired + active.duration
    for _ in range(_END_MAX_STEPS):
        if end - now > _END_HORIZON:
            return None
        latest = active._prev_fire(end) or fired  # never None: 'fired' itself is ≤ end
        if latest + active.duration <= end:
            return end.astimezone(now.tzinfo)
        end = latest + active.duration
    return None


# --------------------------------------------------------------------------- decisions


class SyncAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    SELF_HEAL = "self_heal"
    DELETE = "delete"


_GATED = frozenset({SyncAction.CREATE, SyncAction.UPDATE, SyncAction.SELF_HEAL})


@dataclass(frozen=True)
class Decision:
    """Whether an action may run now. Refused actions end as ``cancelled`` with ``reason``,
    and are applied again at ``retry_at`` (the next opening; None if it never opens again)."""

    allowed: bool
    reason: Literal["outside_sync_window"] | None = None
    retry_at: datetime | None = None


def decide(window: SyncWindow | None, now: datetime, action: SyncAction | str) -> Decision:
    """Gate ``action`` by the window. create / update / self_heal run only inside it; delete
    is never gated (ankra-spec §5.6 names only the first three)."""
    try:
        kind = SyncAction(action)
    except ValueError:
        allowed = ", ".join(a.value for a in SyncAction)
        raise ValueError(f"unknown sync action '{action}' (expected one of: {allowed})") from None
    _check_now(now)
    if kind not in _GATED or is_open(window, now):
        return Decision(allowed=True)
    return Decision(allowed=False, reason=OUTSIDE_SYNC_WINDOW, retry_at=next_open(window, now))
