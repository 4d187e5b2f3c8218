"""Property tests for sync windows against an independent brute-force reference.

The reference walks real instants forward minute by minute and asks "does the wall clock
here match the cron fields?", applying the documented DST rules (Vixie cron) directly:

* fixed-time schedules (no ``*`` in minute or hour) fire once in a repeated hour (its first
  pass) and fire at the jump for wall times the clock skipped;
* wildcard schedules fire whenever the wall clock matches (twice in a repeated hour, never
  in a skipped one).

The implementation instead walks wall-clock cron matches backwards with croniter and maps
them to instants, so the two share no code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moorage.engine.windows import SyncWindow, current_window_end, is_open, next_open

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # southern hemisphere, midnight transitions
    "Asia/Kathmandu",  # +05:45, no DST
    "Pacific/Chatham",  # +12:45 / +13:45
]


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class Cron:
    minute: str
    hour: str
    dom: str
    month: str
    dow: str

    @property
    def expr(self) -> str:
        return f"{self.minute} {self.hour} {self.dom} {self.month} {self.dow}"

    @property
    def fixed(self) -> bool:
        return "*" not in self.minute and "*" not in self.hour


def _values(field: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in field.split(","):
        if part == "*":
            out.update(range(lo, hi + 1))
        elif part.startswith("*/"):
            out.update(range(lo, hi + 1, int(part[2:])))
        elif "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return frozenset(out)


@cache
def _sets(cron: Cron) -> tuple[frozenset[int], ...]:
    return (
        _values(cron.minute, 0, 59),
        _values(cron.hour, 0, 23),
        _values(cron.dom, 1, 31),
        _values(cron.month, 1, 12),
        _values(cron.dow, 0, 6),
    )


def _matches(cron: Cron, wall: datetime) -> bool:
    minutes, hours, doms, months, dows = _sets(cron)
    return (
        wall.minute in minutes
        and wall.hour in hours
        and wall.day in doms
        and wall.month in months
        and (wall.weekday() + 1) % 7 in dows  # cron: Sunday = 0
    )


def _fires_at(cron: Cron, zone: ZoneInfo, instant: datetime) -> bool:
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None, fold=0)
    if _matches(cron, wall) and not (cron.fixed and local.fold == 1):
        return True
    if cron.fixed:
        before = (instant - MINUTE).astimezone(zone).replace(tzinfo=None, fold=0)
        skipped = before + MINUTE
        while skipped < wall:  # the clock jumped: fire for skipped wall times now
            if _matches(cron, skipped):
                return True
            skipped += MINUTE
    return False


def ref_is_open(cron: Cron, zone: ZoneInfo, duration: timedelta, now: datetime) -> bool:
    """∃ fire instant f with f ≤ now < f + duration, by checking every minute."""
    now = now.astimezone(UTC)
    minute = now.replace(second=0, microsecond=0)
    while now < minute + duration:
        if _fires_at(cron, zone, minute):
            return True
        minute -= MINUTE
    return False


# --------------------------------------------------------------------------- strategies


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """UTC instants at which ``zone_name`` changes its offset, 2023..2026."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    t = datetime(2023, 1, 1, tzinfo=UTC)
    end = datetime(2027, 1, 1, tzinfo=UTC)
    prev = t.astimezone(zone).utcoffset()
    while t < end:
        nxt = t + timedelta(hours=1)
        off = nxt.astimezone(zone).utcoffset()
        if off != prev:
            m = t
            while m.astimezone(zone).utcoffset() == prev:
                m += MINUTE
            found.append(m)
            prev = off
        t = nxt
    return tuple(found)


def minute_fields() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"),
        st.sampled_from(["*/5", "*/15", "*/20", "*/30"]),
        st.integers(0, 59).map(str),
        st.lists(st.integers(0, 59), min_size=2, max_size=3, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))
        ),
        st.tuples(st.integers(0, 58), st.integers(1, 30)).map(lambda p: f"{p[0]}-{min(59, p[0] + p[1])}"),
    )


def hour_fields() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"),
        st.sampled_from(["*/2", "*/3", "*/6"]),
        st.integers(0, 23).map(str),
        st.sampled_from(["1", "2", "3", "0", "23", "22"]),  # near DST changes and midnight
        st.lists(st.integers(0, 23), min_size=2, max_size=3, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))
        ),
        st.tuples(st.integers(0, 22), st.integers(1, 5)).map(lambda p: f"{p[0]}-{min(23, p[0] + p[1])}"),
    )


@st.composite
def crons(draw: st.DrawFn) -> Cron:
    day = draw(
        st.sampled_from(["any", "any", "any", "dom", "dow"]),
    )
    dom = draw(st.sampled_from(["1-15", "10", "*/2", "28"])) if day == "dom" else "*"
    dow = draw(st.sampled_from(["0", "1-5", "6", "0,3"])) if day == "dow" else "*"
    month = draw(st.sampled_from(["*", "*", "*", "3,10", "1-6"]))
    return Cron(draw(minute_fields()), draw(hour_fields()), dom, month, dow)


durations = st.one_of(
    st.integers(1, 180).map(lambda m: timedelta(minutes=m)),
    st.integers(1, 36).map(lambda h: timedelta(hours=h)),
    st.integers(1, 5400).map(lambda s: timedelta(seconds=s)),
)


@st.composite
def instants(draw: st.DrawFn, zone_name: str) -> datetime:
    near = transitions(zone_name)
    use_near: bool = draw(st.booleans())
    if near and use_near:
        base = draw(st.sampled_from(near))
        offset = timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))
        return base + offset
    seconds = draw(st.integers(0, 4 * 365 * 86400))
    return datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Cron, str, timedelta, datetime]:
    zone = draw(st.sampled_from(ZONES))
    return draw(crons()), zone, draw(durations), draw(instants(zone))


PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- properties


@PROPS
@given(cases())
def test_is_open_agrees_with_brute_force(case: tuple[Cron, str, timedelta, datetime]) -> None:
    cron, zone, duration, now = case
    window = SyncWindow(cron.expr, duration, zone)
    assert is_open(window, now) == ref_is_open(cron, ZoneInfo(zone), duration, now), (cron.expr, zone, now)


@PROPS
@given(cases())
def test_next_open_is_the_first_open_instant(case: tuple[Cron, str, timedelta, datetime]) -> None:
    cron, zone, duration, now = case
    window = SyncWindow(cron.expr, duration, zone)
    opens = next_open(window, now)
    if is_open(window, now):
        assert opens == now
        return
    assert opens is not None
    assert opens > now
    assert is_open(window, opens)
    assert ref_is_open(cron, ZoneInfo(zone), duration, opens)
    assert not is_open(window, opens - SECOND)
    assert not ref_is_open(cron, ZoneInfo(zone), duration, opens - SECOND)


@PROPS
@given(cases())
def test_current_window_end_is_where_it_closes(case: tuple[Cron, str, timedelta, datetime]) -> None:
    cron, zone, duration, now = case
    window = SyncWindow(cron.expr, duration, zone)
    end = current_window_end(window, now)
    if not is_open(window, now):
        assert end is None
        return
    if end is None:  # open beyond 2000 merged openings (each ≥ 1 minute later): spot-check
        for later in (MINUTE, timedelta(hours=1), timedelta(days=1), timedelta(days=1, hours=9)):
            assert is_open(window, now + later)
        return
    assert end > now
    assert not is_open(window, end)
    assert is_open(window, end - SECOND)
    assert not ref_is_open(cron, ZoneInfo(zone), duration, end)


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe"]),
    hour=st.integers(0, 4),
    minute=st.sampled_from([0, 15, 30, 45, 59]),
    duration=st.integers(1, 240).map(lambda m: timedelta(minutes=m)),
    data=st.data(),
)
def test_daily_fixed_window_opens_on_every_dst_day(
    zone: str, hour: int, minute: int, duration: timedelta, data: st.DataObject
) -> None:
    """A daily window is open at least once on each transition day, and never twice as long."""
    transition = data.draw(st.sampled_from(transitions(zone)))
    cron = Cron(str(minute), str(hour), "*", "*", "*")
    window = SyncWindow(cron.expr, duration, zone)
    start = transition - timedelta(hours=20)
    start = current_window_end(window, start) or start  # begin while closed
    opens = next_open(window, start)
    assert opens is not None
    assert opens - start <= timedelta(hours=26)
    assert not is_open(window, opens - SECOND)
    # once a day, for exactly its duration: never lost, never doubled by a repeated hour
    assert current_window_end(window, opens) == opens + duration
