"""User checks in Lua: Argo CD's contract, and the sandbox (nothing escapes, every limit ends as
Unknown with an error naming the check and the limit, quickly, and the next object is judged)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from moorage.engine.health import Checks, HealthStatus, assess
from moorage.engine.health.custom.checks import TRIP_AFTER
from moorage.engine.health.custom.lua import LuaLimits, LuaScript
from moorage.spec.models import HealthCheck
from tests.unit.engine.health.helpers import NOW, ago

H, P, D, S, U = (
    HealthStatus.HEALTHY,
    HealthStatus.PROGRESSING,
    HealthStatus.DEGRADED,
    HealthStatus.SUSPENDED,
    HealthStatus.UNKNOWN,
)

# A realistic Argo CD customization for a CRD that reports status.phase (written for these tests in
# the argocd-cm format: resource.customizations.health.databases.example.com_Database).
DATABASE = """
local hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a phase"
  return hs
end
local phase = obj.status.phase
if phase == "Running" then
  hs.status = "Healthy"
  hs.message = "Database is running with " .. tostring(obj.status.readyReplicas or 0) .. " replicas"
elseif phase == "Creating" or phase == "Upgrading" then
  hs.status = "Progressing"
  hs.message = "Database is " .. string.lower(phase)
elseif phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.message or "Database failed"
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. phase
end
return hs
"""

# The other common shape: walk status.conditions (Argo CD scripts use pairs and string.find).
BACKUP = """
hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for i, condition in pairs(obj.status.conditions) do
    if condition.type == "Failed" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Completed" and condition.status == "True" then
      hs.status = "Healthy"
      hs.message = condition.message
      return hs
    end
    if condition.type == "Running" and condition.status == "True" then
      if condition.reason ~= nil and string.find(condition.reason, "Retry") then
        hs.status = "Degraded"
        hs.message = "Retrying: " .. (condition.message or "")
        return hs
      end
    end
  end
end
hs.status = "Progressing"
hs.message = "Backup in progress"
return hs
"""


def check(group: str, kind: str, lua: str) -> Checks:
    return Checks.compile([HealthCheck.model_validate({"group": group, "kind": kind, "lua": lua})])


DB_CHECKS = check("databases.example.com", "Database", DATABASE)
BACKUP_CHECKS = check("backup.example.com", "Backup", BACKUP)


def database(phase: str | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "databases.example.com/v1",
        "kind": "Database",
        "metadata": {"name": "db", "namespace": "apps", "creationTimestamp": ago(1)},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, **status}
    return obj


def backup(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "backup.example.com/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": "nightly", "namespace": "apps", "creationTimestamp": ago(1)},
        "status": {"conditions": list(conditions)},
    }


@pytest.mark.parametrize(
    ("obj", "status", "reason"),
    [
        (database(), P, "Waiting for the operator to report a phase"),
        (database("Running", readyReplicas=3), H, "Database is running with 3 replicas"),
        (database("Creating"), P, "Database is creating"),
        (database("Paused"), S, "Reconciliation is paused"),
        (database("Failed", message="disk full"), D, "disk full"),
        (database("Failed"), D, "Database failed"),
        (database("Rebalancing"), U, "Unknown phase Rebalancing"),
    ],
)
def test_argocd_script_for_a_phase(obj: dict[str, Any], status: HealthStatus, reason: str) -> None:
    health = assess(obj, NOW, checks=DB_CHECKS)
    assert health.status is status
    assert reason in health.reason
    assert "(Lua check)" in health.reason


@pytest.mark.parametrize(
    ("conditions", "status", "reason"),
    [
        ([], P, "Backup in progress"),
        ([{"type": "Completed", "status": "True", "message": "done in 3m"}], H, "done in 3m"),
        ([{"type": "Failed", "status": "True", "message": "bucket denied"}], D, "bucket denied"),
        (
            [{"type": "Running", "status": "True", "reason": "RetryAfterError", "message": "x"}],
            D,
            "Retrying: x",
        ),
        ([{"type": "Running", "status": "True", "reason": "Started"}], P, "Backup in progress"),
    ],
)
def test_argocd_script_over_conditions(
    conditions: list[dict[str, Any]], status: HealthStatus, reason: str
) -> None:
    health = assess(backup(*conditions), NOW, checks=BACKUP_CHECKS)
    assert health.status is status
    assert reason in health.reason


def test_progressing_turns_degraded_after_the_deadline() -> None:
    obj = database("Creating")
    obj["metadata"]["creationTimestamp"] = ago(30)
    health = assess(obj, NOW, checks=DB_CHECKS)
    assert health.status is D
    assert "no progress for 30m" in health.reason


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ('return {status = "healthy"}', "invalid health status: status 'healthy' (did you mean 'Healthy'?)"),
        ('return {message = "no status"}', "invalid health status: no status"),
        ("return 42", "must return a table, it returned number"),
        ("local x = 1", "must return a table, it returned nil"),
        ('error("boom")', "line 1: boom"),
        ("return {status = obj.status.phase}", "attempt to index a nil value (field 'status')"),
    ],
)
def test_argocd_contract_errors_are_unknown(script: str, error: str) -> None:
    health = assess(database(), NOW, checks=check("databases.example.com", "Database", script))
    assert health.status is U
    assert health.reason.startswith("the definition's Lua check for databases.example.com/Database failed: ")
    assert error in health.reason


def test_argocd_missing_and_suspended_are_valid() -> None:
    for status in ("Missing", "Suspended", "Unknown"):
        checks = check("databases.example.com", "Database", f'return {{status = "{status}", message = "m"}}')
        assert assess(database(), NOW, checks=checks).status.value == status


def test_obj_is_a_lua_table_with_arrays_from_one_and_no_nulls() -> None:
    script = """
    local c = obj.status.conditions
    assert(type(obj) == "table" and type(c) == "table", "not tables")
    assert(#c == 2 and c[1].type == "A" and c[2].type == "B", "arrays start at 1")
    assert(obj.status.gone == nil, "null is nil")
    assert(math.type(obj.status.count) == "integer" and obj.status.ratio == 0.5, "numbers")
    assert(obj.status.flag == true, "booleans")
    return {status = "Healthy", message = "ok"}
    """
    obj = backup({"type": "A"}, {"type": "B"})
    obj["status"].update({"gone": None, "count": 3, "ratio": 0.5, "flag": True})
    health = assess(obj, NOW, checks=check("backup.example.com", "Backup", script))
    assert health.status is H, health.reason


# --------------------------------------------------------------------------- the sandbox

ESCAPES = {
    "os.execute": ('os.execute("touch /tmp/moorage-pwned")', "global 'os'"),
    "io.open": ('io.open("/etc/passwd")', "global 'io'"),
    "require": ('require("os")', "global 'require'"),
    "load": ('load("return 1")()', "global 'load'"),
    "loadstring": ('loadstring("return 1")()', "global 'loadstring'"),
    "dofile": ('dofile("/etc/passwd")', "global 'dofile'"),
    "loadfile": ('loadfile("/etc/passwd")', "global 'loadfile'"),
    "debug": ("debug.sethook()", "global 'debug'"),
    "package": ('package.loaded.os.execute("id")', "global 'package'"),
    "collectgarbage": ('collectgarbage("stop")', "global 'collectgarbage'"),
    "coroutine": ("coroutine.wrap(function() end)()", "global 'coroutine'"),
    "getmetatable": ('getmetatable("").__index.rep = nil', "global 'getmetatable'"),
    "setmetatable": ("setmetatable({}, {__gc = function() end})", "global 'setmetatable'"),
    "string.dump": ("string.dump(print)", "field 'dump'"),
    "_G.os": ("return _G.os.execute()", "field 'os'"),
    "python": ('return python.eval("1")', "global 'python'"),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_nothing_escapes_the_sandbox(name: str) -> None:
    script, error = ESCAPES[name]
    health = assess(database(), NOW, checks=check("databases.example.com", "Database", script))
    assert health.status is U
    assert error in health.reason


def test_a_script_cannot_change_the_libraries_of_the_next_object() -> None:
    script = """
    local before = ("x"):upper()
    string.upper = function() return "pwned" end
    table.insert = nil
    return {status = "Healthy", message = before .. ("y"):upper() .. tostring(table.insert ~= nil)}
    """
    checks = check("databases.example.com", "Database", script)
    first = assess(database(), NOW, checks=checks)
    second = assess(database(), NOW, checks=checks)
    assert first.reason == second.reason == "XYfalse (Lua check)"


def test_globals_do_not_leak_between_objects() -> None:
    script = 'seen = (seen or 0) + 1 return {status = "Healthy", message = tostring(seen)}'
    checks = check("databases.example.com", "Database", script)
    assert [assess(database(), NOW, checks=checks).reason for _ in range(3)] == ["1 (Lua check)"] * 3


# (script, the limits that may stop it, a piece of the error). On a busy machine the wall-time limit
# may come before the instruction limit; either way the error names the limit.
STOPPED = ("Lua instructions", "wall-time limit")
LIMITS: dict[str, tuple[str, tuple[str, ...] | None, tuple[str, ...]]] = {
    "while true": ("while true do end", ("instructions", "time"), STOPPED),
    "pcall swallows the limit": (
        "while true do pcall(function() while true do end end) end",
        ("instructions", "time"),
        STOPPED,
    ),
    "deep recursion": (
        "local function f(n) return 1 + f(n + 1) end return f(1)",
        ("memory", "instructions", "time"),
        ("memory", *STOPPED),
    ),
    "string.rep bomb": ('local s = string.rep("x", 1e10)', None, ("string.rep would build",)),
    "string method rep bomb": ('local s = ("x"):rep(2^40)', None, ("string.rep would build",)),
    "doubling concat": ('local s = "x" while true do s = s .. s end', ("memory",), ("ran out of memory",)),
    "huge table": (
        "local t = {} for i = 1, 1e9 do t[i] = {i} end",
        ("memory", "instructions", "time"),
        ("memory", *STOPPED),
    ),
    "table.move": ("table.move({}, 1, 1e12, 2)", None, ("table.move",)),
    "backtracking pattern": (
        'local s = string.rep("a", 100000) return {status = tostring(s:find(".-.-.-b"))}',
        ("instructions", "time"),
        STOPPED,
    ),
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_limit_ends_as_unknown_quickly(name: str) -> None:
    script, limit, error = LIMITS[name]  # limit: None when a library wrapper refuses first
    lua = LuaScript(script)
    started = time.monotonic()
    outcome = lua.run(database())
    elapsed = time.monotonic() - started
    assert outcome.status is None
    assert outcome.error is not None
    assert any(e in outcome.error for e in error), outcome.error
    if limit is not None:
        assert outcome.limit in limit
    assert elapsed < 1.0, f"{name} took {elapsed:.2f}s"
    # the same state judges the next object normally
    assert LuaScript('return {status = "Healthy"}').run(database()).status == "Healthy"
    health = assess(database(), NOW, checks=check("databases.example.com", "Database", script))
    assert health.status is U
    assert "the definition's Lua check for databases.example.com/Database" in health.reason


def test_wall_time_limit() -> None:
    lua = LuaScript("while true do end", LuaLimits(instructions=10**12, seconds=0.05))
    started = time.monotonic()
    outcome = lua.run({})
    assert outcome.limit == "time"
    assert "50 ms" in (outcome.error or "")
    assert time.monotonic() - started < 0.5


def test_memory_limit_is_per_object_and_the_state_recovers() -> None:
    lua = LuaScript(
        'local t = {} for i = 1, 2e6 do t[i] = "v" .. i end return {status = "Healthy"}',
        LuaLimits(instructions=10**9, memory_bytes=8 * 1024 * 1024, seconds=5),
    )
    for _ in range(3):
        assert lua.run({}).limit == "memory"
    assert LuaScript('return {status = "Healthy"}').run({}).status == "Healthy"


def test_objects_too_large_or_too_deep_are_refused() -> None:
    lua = LuaScript('return {status = "Healthy"}', LuaLimits(object_values=1000, object_depth=10))
    big = {"status": {"items": list(range(5000))}}
    assert lua.run(big).limit == "object"
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]
    outcome = lua.run(deep)
    assert outcome.limit == "object"
    assert "deeper than 10" in (outcome.error or "")


def test_a_check_that_keeps_hitting_limits_is_skipped_for_a_while() -> None:
    checks = check("databases.example.com", "Database", "while true do end")
    reasons = [assess(database(), NOW, checks=checks).reason for _ in range(TRIP_AFTER + 2)]
    assert all("Lua instructions" in r for r in reasons[:TRIP_AFTER])
    assert all("is skipped until" in r for r in reasons[TRIP_AFTER:])
    started = time.monotonic()
    assess(database(), NOW, checks=checks)
    assert time.monotonic() - started < 0.005  # skipped: the script does not run


def test_does_not_compile_is_unknown() -> None:
    health = assess(database(), NOW, checks=check("databases.example.com", "Database", "return {"))
    assert health.status is U
    assert "does not compile: line 1:" in health.reason


# --------------------------------------------------------------------------- the pattern port

_ATOMS = ["a", "b", ".", "%a", "%d", "%s", "[ab]", "[^a]", "%-", "%%", "x", "[%a-]", "%w", "[a-c]", "]", "-"]
_QUANT = ["", "", "", "*", "+", "-", "?"]


def _pattern(rng: random.Random) -> str:
    parts = ["^"] if rng.random() < 0.2 else []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.1:
            parts.append("(")
        elif r < 0.2:
            parts.append(")")
        elif r < 0.25:
            parts.append("%b()")
        elif r < 0.28:
            parts.append("%f[%a]")
        elif r < 0.31:
            parts.append("%1")
        elif r < 0.33:
            parts.append("()")
        else:
            parts.append(rng.choice(_ATOMS) + rng.choice(_QUANT))
    if rng.random() < 0.2:
        parts.append("$")
    return "".join(parts)


_COMPARE = """function(port, name, subject, pattern, a3, a4)
  local function pack(ok, ...) return {ok = ok, n = select('#', ...), ...} end
  local c = pack(pcall(string[name], subject, pattern, a3, a4))
  local l = pack(pcall(port[name], subject, pattern, a3, a4))
  if c.ok ~= l.ok then return "ok: " .. tostring(c[1]) .. " / " .. tostring(l[1]) end
  if not c.ok then return nil end
  if c.n ~= l.n then return "results: " .. c.n .. " / " .. l.n end
  for i = 1, c.n do
    if c[i] ~= l[i] then return "result " .. i .. ": " .. tostring(c[i]) .. " / " .. tostring(l[i]) end
  end
  local a, b = {}, {}
  if name == "find" then
    local function all(gmatch, out)
      pcall(function()
        for x, y in gmatch(subject, pattern) do out[#out + 1] = tostring(x) .. tostring(y) end
      end)
    end
    all(string.gmatch, a)
    all(port.gmatch, b)
    if table.concat(a, ",") ~= table.concat(b, ",") then return "gmatch differs" end
  end
  return nil
end"""


def test_the_lua_pattern_port_matches_c_lua() -> None:
    """The sandbox hands expensive pattern calls to a Lua port of lstrlib's matcher; it must give what
    C Lua gives (find, match, gsub, gmatch, errors included) on random patterns and subjects."""
    lua = LuaScript('return {status = "Healthy"}')
    compare = lua._runtime.eval(_COMPARE)
    rng = random.Random(14)  # noqa: S311 - test data
    for _ in range(3000):
        pattern = _pattern(rng)
        subject = "".join(rng.choice("ab1 (x)-.A%]") for _ in range(rng.randint(0, 12)))
        init = rng.choice([None, None, 1, 2, -3, 0, 20])
        for name, a3, a4 in (
            ("find", init, None),
            ("match", init, None),
            ("gsub", rng.choice(["%0", "<%1>", "x", "%%"]), rng.choice([None, 1, 2])),
        ):
            why = compare(lua._port, name, subject, pattern, a3, a4)
            assert why is None, f"string.{name}({subject!r}, {pattern!r}, {a3!r}): {why}"


def test_common_patterns_still_work_on_long_subjects() -> None:
    script = """
    local y, m, d = string.match("2024-05-01T10:00:00Z", "(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
    assert(y == "2024" and d == "01")
    local long = string.rep("Back-off pulling image; ", 2000)
    assert(string.find(long, "pulling image") == 10)
    local n = select(2, string.gsub(long, "Back%-off", "x"))
    assert(n == 2000, n)
    assert(not string.find(string.rep("a", 5000), "a*b"))  -- the port, within the limits
    return {status = "Healthy"}
    """
    assert LuaScript(script).run({}).status == "Healthy"
