"""User checks as the health rules use them: one per (group, kind), compiled once per configuration."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from moorage.engine.health.custom.cel import CelExpressions
from moorage.engine.health.custom.lua import LuaLimits, LuaScript
from moorage.engine.health.types import Context, Health, HealthStatus, text, with_deadline
from moorage.spec.models import HealthCheck

__all__ = ["DEFINITION", "Checks", "ChecksFileError", "UserCheck", "load_file"]

DEFINITION = "the definition"
#: A check that hit a limit on this many objects in a row is skipped for TRIP_FOR (a broken check
#: must not cost a sweep its limit once per object).
TRIP_AFTER = 3
TRIP_FOR = timedelta(seconds=60)
_SHOWN_EXPRESSION = 100


def _kind_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    api_version = text(obj.get("apiVersion"))
    return (api_version.rpartition("/")[0] if "/" in api_version else ""), text(obj.get("kind"))


def _short(expression: str) -> str:
    flat = " ".join(expression.split())
    return flat if len(flat) <= _SHOWN_EXPRESSION else flat[: _SHOWN_EXPRESSION - 1] + "…"


@dataclass
class UserCheck:
    """One user check. :meth:`assess` never raises: anything that goes wrong is Unknown."""

    spec: HealthCheck
    origin: str = DEFINITION  # "the definition", or the checks file's path
    lua: LuaScript | None = None
    cel: CelExpressions | None = None
    _misses: int = 0
    _tripped_until: datetime | None = None
    _last_limit: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def language(self) -> str:
        return "Lua" if self.spec.lua is not None else "CEL"

    @property
    def label(self) -> str:
        """``the definition's Lua check for example.com/Widget``."""
        owner = "the definition's" if self.origin == DEFINITION else f"{self.origin}'s"
        return f"{owner} {self.language} check for {self.spec.display}"

    @property
    def compile_error(self) -> str | None:
        if self.lua is not None:
            return self.lua.compile_error
        return self.cel.compile_error if self.cel is not None else "the check has no script"

    def assess(self, obj: Mapping[str, Any], ctx: Context) -> Health:
        try:
            if self.lua is not None:
                return self._lua(obj, ctx)
            if self.cel is not None:
                return self._cel(obj, ctx)
            return Health(HealthStatus.UNKNOWN, f"{self.label} has no script")
        except Exception as error:  # never: both runtimes report problems as values
            return Health(HealthStatus.UNKNOWN, f"{self.label} failed: {type(error).__name__}: {error}")

    def _lua(self, obj: Mapping[str, Any], ctx: Context) -> Health:
        assert self.lua is not None
        with self._lock:
            if self._tripped_until is not None and ctx.now < self._tripped_until:
                return Health(
                    HealthStatus.UNKNOWN,
                    f"{self.label} is skipped until {self._tripped_until:%H:%M:%S}: it hit the sandbox's "
                    f"limits on {TRIP_AFTER} objects in a row (last: {self._last_limit})",
                )
        outcome = self.lua.run(obj)
        with self._lock:
            if outcome.limit in ("instructions", "time", "memory"):
                self._misses += 1
                self._last_limit = outcome.error or outcome.limit
                if self._misses >= TRIP_AFTER:
                    self._tripped_until, self._misses = ctx.now + TRIP_FOR, 0
            else:
                self._misses, self._tripped_until = 0, None
        if outcome.status is None:
            return Health(HealthStatus.UNKNOWN, f"{self.label} failed: {outcome.error}")
        status = HealthStatus(outcome.status)
        message = outcome.message.strip() or f"the script says {status}"
        health = Health(status, f"{message} ({self.language} check)")
        return with_deadline(health, obj, ctx)

    def _cel(self, obj: Mapping[str, Any], ctx: Context) -> Health:
        assert self.cel is not None
        outcome = self.cel.evaluate(obj)
        if outcome.error is not None:
            return Health(HealthStatus.UNKNOWN, f"{self.label} failed: {outcome.error}")
        verdict, shown = outcome.verdict, _short(outcome.expression)
        if verdict == "failed":
            return Health(HealthStatus.DEGRADED, f"failed: {shown} (CEL check)")
        if verdict == "current":
            return Health(HealthStatus.HEALTHY, f"current: {shown} (CEL check)")
        if verdict == "inProgress":
            health = Health(HealthStatus.PROGRESSING, f"inProgress: {shown} (CEL check)")
        elif verdict == "generation":
            health = Health(HealthStatus.PROGRESSING, f"waiting for the controller: {shown} (CEL check)")
        else:
            current = _short(self.spec.cel.current) if self.spec.cel is not None else ""
            health = Health(HealthStatus.PROGRESSING, f"not current yet: {current} is false (CEL check)")
        return with_deadline(health, obj, ctx)


_LUA_CACHE: dict[str, LuaScript] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def _lua_script(source: str, limits: LuaLimits | None) -> LuaScript:
    """Compiled scripts are kept by source: a definition synced again does not build new Lua states."""
    if limits is not None:
        return LuaScript(source, limits)
    with _CACHE_LOCK:
        found = _LUA_CACHE.get(source)
        if found is None:
            if len(_LUA_CACHE) >= _CACHE_SIZE:
                _LUA_CACHE.clear()
            found = _LUA_CACHE[source] = LuaScript(source)
        return found


def compile_check(spec: HealthCheck, origin: str = DEFINITION, limits: LuaLimits | None = None) -> UserCheck:
    if spec.lua is not None:
        return UserCheck(spec, origin, lua=_lua_script(spec.lua, limits))
    assert spec.cel is not None
    return UserCheck(spec, origin, cel=CelExpressions(spec.cel.expressions()))


class Checks:
    """The user checks in force: at most one per (group, kind). Immutable once built."""

    def __init__(self, checks: Iterable[UserCheck] = ()) -> None:
        self._by_kind: dict[tuple[str, str], UserCheck] = {}
        for check in checks:
            self._by_kind[check.spec.group_kind] = check

    @classmethod
    def compile(
        cls, specs: Iterable[HealthCheck], origin: str = DEFINITION, limits: LuaLimits | None = None
    ) -> Checks:
        return cls(compile_check(spec, origin, limits) for spec in specs)

    def for_object(self, obj: Mapping[str, Any]) -> UserCheck | None:
        return self._by_kind.get(_kind_of(obj)) if self._by_kind else None

    def for_kind(self, group: str, kind: str) -> UserCheck | None:
        return self._by_kind.get((group, kind))

    def over(self, base: Checks | None) -> Checks:
        """These checks, with ``base``'s for the kinds these do not cover (a definition's entries
        override the server-wide ones)."""
        if base is None or not base._by_kind:
            return self
        return Checks([*base._by_kind.values(), *self._by_kind.values()])

    def __iter__(self) -> Iterator[UserCheck]:
        return iter(self._by_kind.values())

    def __len__(self) -> int:
        return len(self._by_kind)

    def __bool__(self) -> bool:
        return bool(self._by_kind)

    def __repr__(self) -> str:
        return f"Checks({', '.join(sorted(c.spec.display for c in self))})"


class ChecksFileError(Exception):
    """The server-wide checks file is missing or invalid; the message lists every problem."""


def load_file(path: Path | str) -> Checks:
    """``MOORAGE_HEALTH_CHECKS_FILE``: a YAML list of ``spec.health_checks`` entries, compiled."""
    from moorage.spec.rules import health_checks_file  # only at agent start

    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ChecksFileError(f"cannot read the health checks file {file}: {error}") from None
    specs, report = health_checks_file(raw, str(file))
    if not report.ok:
        raise ChecksFileError(f"the health checks file {file} is invalid:\n{report.to_text()}")
    return Checks.compile(specs, origin=str(file))
