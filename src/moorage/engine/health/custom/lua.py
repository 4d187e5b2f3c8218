"""Argo CD-style Lua health scripts, run in a sandbox.

The contract is Argo CD's (``util/lua`` in argo-cd; ``resource.customizations.health.<group>_<kind>``
in ``argocd-cm``): the script reads the global ``obj`` (the live object as Lua tables: maps with string
keys, arrays indexed from 1, JSON null as nil) and returns a table ``{status = "Healthy" | "Progressing"
| "Degraded" | "Suspended" | "Missing" | "Unknown", message = "..."}``. Argo CD answers Unknown,
"Lua returned an invalid health status", when the status is missing or not one of those; a script
that returns something other than a table is an error there, and so Unknown here.

The sandbox (one Lua 5.4 state per check, a fresh environment table per object):

* the script sees only ``obj`` and safe libraries: copies of ``string`` (no ``dump``; ``rep`` bounded),
  ``table`` (``move`` bounded) and ``math``, and ``pairs``, ``ipairs``, ``next``, ``select``, ``type``,
  ``tostring``, ``tonumber``, ``error``, ``assert``, ``pcall``, ``xpcall``, ``unpack``, ``rawequal``,
  ``rawget``, ``rawset``, ``rawlen`` and a ``print`` that does nothing. No ``os``, ``io``, ``require``,
  ``package``, ``load``, ``loadstring``, ``dofile``, ``loadfile``, ``debug``, ``coroutine``,
  ``collectgarbage``, ``getmetatable`` or ``setmetatable``; strings' methods (``s:find()``) are the
  sandbox's copy, so the real string library is never reachable for writes;
* limits: instructions (a count hook installed from Python's side before the script starts; the script
  has no way to reach or remove it, and its ``pcall`` cannot swallow a limit), memory (lupa's
  ``max_memory``, per object), wall time (checked by the same hook), and the size and depth of the
  object handed to the script;
* objects are copied into Lua tables, never passed as Python proxies.

Anything that goes wrong is an :class:`Outcome` with an error; nothing here raises.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LuaLimits", "LuaScript", "Outcome", "SandboxLimitError", "sanitize"]

STATUSES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
CHUNK = "lua"  # Lua writes errors as "lua:<line>: <message>"
HOOK_STEP = 1000  # the count hook runs every this many VM instructions


@dataclass(frozen=True)
class LuaLimits:
    instructions: int = 1_000_000  # ~7 ms of Lua on this machine; a typical check needs < 5,000
    memory_bytes: int = 32 * 1024 * 1024  # per object, the object's own tables included
    seconds: float = 0.1  # wall time per object
    object_values: int = 200_000  # values in the object (etcd caps objects at ~1.5 MiB anyway)
    object_depth: int = 64
    string_bytes: int = 1024 * 1024  # the longest string string.rep may build
    pattern_steps: float = 5e7  # bound on one pattern match's backtracking (~60 ms of C)


class SandboxLimitError(Exception):
    """The object cannot be handed to a script (too large or too deep)."""


@dataclass(frozen=True)
class Outcome:
    status: str | None = None  # a valid status when the script answered
    message: str = ""
    error: str | None = None  # what went wrong, for a person
    limit: str | None = None  # "instructions" | "memory" | "time" | "object" when a limit stopped it


# The privileged side: runs once per Lua state, outside the sandbox, with every library. It returns the
# two functions Python calls (compile, run); the script never sees anything defined here.
_SETUP = r"""
local clock, HOOK_STEP, MAX_STRING, MAX_MOVE, PATTERN_STEPS = ...
local sethook, setupvalue = debug.sethook, debug.setupvalue
local real_pcall, real_xpcall, real_error, real_type = pcall, xpcall, error, type
local real_load, real_tostring, real_pairs = load, tostring, pairs
local real_rep, real_move, pack, unpack = string.rep, table.move, table.pack, table.unpack

local LIMIT = {}  -- the error value of a limit; scripts cannot build or hold a reference to it
local PLACEHOLDER = {}
local state = {hooks = 0, max_hooks = 0, deadline = 0, exceeded = nil}

local function hook()
  state.hooks = state.hooks + 1
  if state.hooks > state.max_hooks then
    state.exceeded = "instructions"
  elseif clock() > state.deadline then
    state.exceeded = "time"
  end
  if state.exceeded then real_error(LIMIT, 0) end
end

local function copy(source, skip)
  local out = {}
  for k, v in real_pairs(source) do
    if not (skip and skip[k]) then out[k] = v end
  end
  return out
end

local SAFE_STRING = copy(string, {dump = true})
SAFE_STRING.rep = function(s, n, sep)
  local count = math.tointeger(n) or math.floor(tonumber(n) or 0)
  local piece = #real_tostring(s)
  local glue = sep and #real_tostring(sep) or 0
  if count > 0 and piece * count + glue * (count - 1) > MAX_STRING then
    real_error(("string.rep would build %d bytes; the sandbox allows %d"):format(
      piece * count + glue * (count - 1), MAX_STRING), 2)
  end
  return real_rep(s, n, sep)
end
-- Lua's pattern matcher backtracks in C, where no hook runs: string.find(string.rep("a", 2000),
-- ".-.-b") takes 10 s. A call whose worst case ((subject length)^(quantifiers + 1), one fewer when
-- anchored, times 2 per '?') exceeds PATTERN_STEPS runs instead on this port of lstrlib.c's matcher
-- (Lua 5.4), written in Lua so that the instruction hook and the wall-time limit apply to it. Single
-- character classes (%a, [%w_-], ...) are still tested by C, on one character at a time.
local byte, sub, real_find = string.byte, string.sub, string.find
local CAP_UNFINISHED, CAP_POSITION, MAXCAPTURES, MAXCCALLS = -1, -2, 32, 200

local function class_end(pat, p)
  local plen = #pat
  local c = byte(pat, p)
  p = p + 1
  if c == 37 then  -- %
    if p > plen then real_error("malformed pattern (ends with '%')", 0) end
    return p + 1
  elseif c == 91 then  -- [
    if byte(pat, p) == 94 then p = p + 1 end
    repeat
      if p > plen then real_error("malformed pattern (missing ']')", 0) end
      local cc = byte(pat, p)
      p = p + 1
      if cc == 37 and p <= plen then p = p + 1 end
    until byte(pat, p) == 93
    return p + 1
  end
  return p
end

local function class_match(ms, ch, p, ep)
  -- ch: a one-character string; p..ep-1: a class ('.', a literal, %x or a [set])
  local pat = ms.pat
  local c = byte(pat, p)
  if c == 46 and ep == p + 1 then return true end  -- .
  if c == 37 or c == 91 then
    local key = p * 65536 + ep
    local cls = ms.classes[key]
    if not cls then
      cls = "^" .. sub(pat, p, ep - 1)
      ms.classes[key] = cls
    end
    return real_find(ch, cls) ~= nil
  end
  return byte(ch) == c
end

local function single_match(ms, s, p, ep)
  if s > ms.len then return false end
  return class_match(ms, sub(ms.src, s, s), p, ep)
end

local match

local function max_expand(ms, s, p, ep)
  local i = 0
  while single_match(ms, s + i, p, ep) do i = i + 1 end
  while i >= 0 do
    local res = match(ms, s + i, ep + 1)
    if res then return res end
    i = i - 1
  end
  return nil
end

local function min_expand(ms, s, p, ep)
  while true do
    local res = match(ms, s, ep + 1)
    if res then return res end
    if single_match(ms, s, p, ep) then s = s + 1 else return nil end
  end
end

local function start_capture(ms, s, p, what)
  local level = ms.level + 1
  if level > MAXCAPTURES then real_error("too many captures", 0) end
  ms.cinit[level], ms.clen[level], ms.level = s, what, level
  local res = match(ms, s, p)
  if not res then ms.level = ms.level - 1 end
  return res
end

local function end_capture(ms, s, p)
  local l
  for level = ms.level, 1, -1 do
    if ms.clen[level] == CAP_UNFINISHED then l = level break end
  end
  if not l then real_error("invalid pattern capture", 0) end
  ms.clen[l] = s - ms.cinit[l]
  local res = match(ms, s, p)
  if not res then ms.clen[l] = CAP_UNFINISHED end
  return res
end

local function match_balance(ms, s, p)
  if p + 1 > #ms.pat then real_error("malformed pattern (missing arguments to '%b')", 0) end
  local b, e = byte(ms.pat, p), byte(ms.pat, p + 1)
  if s > ms.len or byte(ms.src, s) ~= b then return nil end
  local cont, src, len = 1, ms.src, ms.len
  for i = s + 1, len do
    local ch = byte(src, i)
    if ch == e then
      cont = cont - 1
      if cont == 0 then return i + 1 end
    elseif ch == b then
      cont = cont + 1
    end
  end
  return nil
end

local function match_capture(ms, s, digit)
  local l = digit - 48
  if l < 1 or l > ms.level or ms.clen[l] == CAP_UNFINISHED then
    real_error(("invalid capture index %%%d"):format(l), 0)
  end
  local n = ms.clen[l]
  if n == CAP_POSITION then return nil end  -- as in C: its length reads as huge, so it never matches
  local cap = sub(ms.src, ms.cinit[l], ms.cinit[l] + n - 1)
  if ms.len - s + 1 >= n and sub(ms.src, s, s + n - 1) == cap then return s + n end
  return nil
end

match = function(ms, s, p)
  ms.depth = ms.depth - 1
  if ms.depth == 0 then real_error("pattern too complex", 0) end
  local pat = ms.pat
  local plen = #pat
  while true do
    if p > plen then break end
    local c = byte(pat, p)
    local d = byte(pat, p + 1)
    if c == 40 then  -- (
      if d == 41 then s = start_capture(ms, s, p + 2, CAP_POSITION)
      else s = start_capture(ms, s, p + 1, CAP_UNFINISHED) end
      break
    elseif c == 41 then  -- )
      s = end_capture(ms, s, p + 1)
      break
    elseif c == 36 and p == plen then  -- $ at the end
      if s ~= ms.len + 1 then s = nil end
      break
    elseif c == 37 and d == 98 then  -- %b
      s = match_balance(ms, s, p + 2)
      if not s then break end
      p = p + 4
    elseif c == 37 and d == 102 then  -- %f[set]
      p = p + 2
      if byte(pat, p) ~= 91 then real_error("missing '[' after '%f' in pattern", 0) end
      local ep = class_end(pat, p)
      local prev = (s == 1) and "\0" or sub(ms.src, s - 1, s - 1)
      local cur = (s <= ms.len) and sub(ms.src, s, s) or "\0"
      if class_match(ms, prev, p, ep) or not class_match(ms, cur, p, ep) then s = nil break end
      p = ep
    elseif c == 37 and d and d >= 48 and d <= 57 then  -- %0-%9
      s = match_capture(ms, s, d)
      if not s then break end
      p = p + 2
    else
      local ep = class_end(pat, p)
      local q = byte(pat, ep)
      if not single_match(ms, s, p, ep) then
        if q == 42 or q == 63 or q == 45 then  -- * ? -: accept the empty match
          p = ep + 1
        else
          s = nil
          break
        end
      elseif q == 63 then  -- ?
        local res = match(ms, s + 1, ep + 1)
        if res then s = res break end
        p = ep + 1
      elseif q == 43 then s = max_expand(ms, s + 1, p, ep) break  -- +
      elseif q == 42 then s = max_expand(ms, s, p, ep) break  -- *
      elseif q == 45 then s = min_expand(ms, s, p, ep) break  -- -
      else
        s = s + 1
        p = ep
      end
    end
  end
  ms.depth = ms.depth + 1
  return s
end

local function new_state(src, pat)
  return {src = src, len = #src, pat = pat, level = 0, depth = MAXCCALLS, cinit = {}, clen = {}, classes = {}}
end

local function capture(ms, i, s, e)
  if i > ms.level then
    if i == 1 then return sub(ms.src, s, e - 1) end
    real_error(("invalid capture index %%%d"):format(i), 0)
  end
  local l = ms.clen[i]
  if l == CAP_UNFINISHED then real_error("unfinished capture", 0) end
  if l == CAP_POSITION then return ms.cinit[i] end
  return sub(ms.src, ms.cinit[i], ms.cinit[i] + l - 1)
end

local function captures(ms, s, e, whole)
  local n = (ms.level == 0 and whole) and 1 or ms.level
  local out = {}
  for i = 1, n do out[i] = capture(ms, i, s, e) end
  return unpack(out, 1, n)
end

local function start_at(init, len)
  init = math.tointeger(init) or 1
  if init > 0 then return init end
  if init == 0 or init < -len then return 1 end
  return len + init + 1
end

local function find_aux(s, pat, init, is_find)
  local len = #s
  local s1 = start_at(init, len)
  if s1 > len + 1 then return nil end
  local anchor = byte(pat, 1) == 94
  local p = anchor and 2 or 1
  repeat
    local ms = new_state(s, pat)
    local e = match(ms, s1, p)
    if e then
      if is_find then return s1, e - 1, captures(ms, nil, nil, false) end
      return captures(ms, s1, e, true)
    end
    s1 = s1 + 1
  until anchor or s1 > len + 1
  return nil
end

local PORT = {}
PORT.find = function(s, pat, init)
  -- no specials: a plain search, as lstrlib does
  if not real_find(pat, "[%^%$%*%+%?%.%(%[%%%-]") then return real_find(s, pat, init, true) end
  return find_aux(s, pat, init, true)
end
PORT.match = function(s, pat, init) return find_aux(s, pat, init, false) end
PORT.gmatch = function(s, pat, init)
  local len = #s
  local src = start_at(init, len)
  local lastmatch = nil
  return function()
    while src <= len + 1 do
      local ms = new_state(s, pat)
      local e = match(ms, src, 1)
      if e and e ~= lastmatch then
        local start = src
        src, lastmatch = e, e
        return captures(ms, start, e, true)
      end
      src = src + 1
    end
    return nil
  end
end
PORT.gsub = function(s, pat, repl, max_n)
  local kind = real_type(repl)
  if kind ~= "string" and kind ~= "number" and kind ~= "table" and kind ~= "function" then
    real_error("bad argument #3 to 'gsub' (string/function/table expected, got " .. kind .. ")", 0)
  end
  if kind == "number" then repl = real_tostring(repl) end
  local len = #s
  max_n = math.tointeger(max_n) or (len + 1)
  local anchor = byte(pat, 1) == 94
  local p = anchor and 2 or 1
  local out, src, lastmatch, n = {}, 1, nil, 0
  while n < max_n do
    local ms = new_state(s, pat)
    local e = match(ms, src, p)
    if e and e ~= lastmatch then
      n = n + 1
      local whole = sub(s, src, e - 1)
      local value
      if kind == "function" then
        value = repl(captures(ms, src, e, true))
      elseif kind == "table" then
        value = repl[capture(ms, 1, src, e)]
      else
        local parts, i, rl = {}, 1, #repl
        while i <= rl do
          local ch = byte(repl, i)
          if ch == 37 then
            i = i + 1
            local dch = byte(repl, i)
            if dch == 37 then parts[#parts + 1] = "%"
            elseif dch and dch >= 48 and dch <= 57 then
              if dch == 48 then parts[#parts + 1] = whole
              else parts[#parts + 1] = real_tostring(capture(ms, dch - 48, src, e)) end
            else
              real_error("invalid use of '%' in replacement string", 0)
            end
          else
            parts[#parts + 1] = sub(repl, i, i)
          end
          i = i + 1
        end
        value = table.concat(parts)
      end
      if value == nil or value == false then
        value = whole
      elseif real_type(value) ~= "string" and real_type(value) ~= "number" then
        real_error("invalid replacement value (a " .. real_type(value) .. ")", 0)
      end
      out[#out + 1] = real_tostring(value)
      src, lastmatch = e, e
    elseif src <= len then
      out[#out + 1] = sub(s, src, src)
      src = src + 1
    else
      break
    end
    if anchor then break end
  end
  if src <= len then out[#out + 1] = sub(s, src) end
  return table.concat(out), n
end

local function pattern_cost(subject, pat, init)
  local k, q, p, plen = 0, 0, 1, #pat
  local anchored = byte(pat, 1) == 94
  if anchored then p = 2 end
  local ok = real_pcall(function()
    while p <= plen do
      local c, d = byte(pat, p), byte(pat, p + 1)
      if c == 40 or c == 41 then p = p + 1
      elseif c == 36 and p == plen then p = p + 1
      elseif c == 37 and d == 98 then k = k + 1; p = p + 4
      elseif c == 37 and d == 102 then p = class_end(pat, p + 2)
      elseif c == 37 and d and d >= 48 and d <= 57 then p = p + 2
      else
        local ep = class_end(pat, p)
        local qc = byte(pat, ep)
        if qc == 42 or qc == 43 or qc == 45 then k = k + 1; p = ep + 1
        elseif qc == 63 then q = q + 1; p = ep + 1
        else p = ep end
      end
    end
  end)
  if not ok then return math.huge end  -- malformed: the port reports it as C would
  if k == 0 and q == 0 then return 0 end
  local length = #subject - (start_at(init, #subject) - 1)
  if length < 2 then return 0 end
  return (k + (anchored and 0 or 1)) * math.log(length) + q * math.log(2)
end

local PATTERN_BUDGET = math.log(PATTERN_STEPS)
local function guarded(name, real)
  local port = PORT[name]
  return function(s, pat, a3, a4)
    if real_type(s) == "number" then s = real_tostring(s) end
    if real_type(pat) == "number" then pat = real_tostring(pat) end
    if real_type(s) ~= "string" or real_type(pat) ~= "string" or (name == "find" and a4)
        or pattern_cost(s, pat, name ~= "gsub" and a3 or 1) <= PATTERN_BUDGET then
      return real(s, pat, a3, a4)
    end
    return port(s, pat, a3, a4)
  end
end
for _, name in ipairs({"find", "match", "gmatch", "gsub"}) do
  SAFE_STRING[name] = guarded(name, string[name])
end
local SAFE_TABLE = copy(table)
SAFE_TABLE.move = function(a1, f, e, t, a2)
  if (tonumber(e) or 0) - (tonumber(f) or 0) > MAX_MOVE then
    real_error(("table.move of more than %d elements is not allowed in the sandbox"):format(MAX_MOVE), 2)
  end
  return real_move(a1, f, e, t, a2)
end
local SAFE_MATH = copy(math)
-- strings' methods ("x"):upper() resolve here; the script cannot reach this table
getmetatable("").__index = SAFE_STRING

local function rethrow_limits(ok, ...)
  if not ok then
    local err = ...
    if err == "not enough memory" and not state.exceeded then state.exceeded = "memory" end
    if state.exceeded or err == LIMIT then real_error(LIMIT, 0) end
  end
  return ok, ...
end

local BASE = {
  pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
  tostring = tostring, tonumber = tonumber, error = error, assert = assert,
  rawequal = rawequal, rawget = rawget, rawset = rawset, rawlen = rawlen,
  unpack = unpack,
  print = function() end,
  pcall = function(f, ...) return rethrow_limits(real_pcall(f, ...)) end,
  xpcall = function(f, handler, ...) return rethrow_limits(real_xpcall(f, handler, ...)) end,
}

local function new_env(object)
  local env = copy(BASE)
  env.string, env.table, env.math = copy(SAFE_STRING), copy(SAFE_TABLE), copy(SAFE_MATH)
  env._G = env
  env.obj = object
  return env
end

local function compile(source)
  local chunk, err = real_load(source, "=lua", "t", PLACEHOLDER)
  if not chunk then return nil, err end
  return chunk
end

local function text(value)
  local kind = real_type(value)
  if kind == "string" then return value end
  if kind == "number" or kind == "boolean" then return real_tostring(value) end
  if kind == "nil" then return nil end
  return "<" .. kind .. ">"
end

local function run(chunk, object, max_hooks, deadline)
  state.hooks, state.max_hooks, state.deadline, state.exceeded = 0, max_hooks, deadline, nil
  setupvalue(chunk, 1, new_env(object))
  sethook(hook, "", HOOK_STEP)
  local ok, result = real_pcall(chunk)
  sethook()
  setupvalue(chunk, 1, PLACEHOLDER)
  if not ok and result == "not enough memory" and not state.exceeded then state.exceeded = "memory" end
  if state.exceeded then return "limit", state.exceeded end
  if not ok then
    if result == LIMIT then return "limit", "instructions" end
    return "error", text(result) or "error with no message"
  end
  if real_type(result) ~= "table" then return "type", real_type(result) end
  return "ok", text(rawget(result, "status")), text(rawget(result, "message"))
end

return compile, run, PORT
"""


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:  # noqa: ARG001 - lupa's signature
    raise AttributeError("Python attributes are not reachable from a health check")


def sanitize(obj: Any, limits: LuaLimits) -> Any:
    """A JSON-shaped copy of ``obj`` (mappings with string keys, lists, str, int, float, bool; null
    dropped from mappings), refusing more than ``object_values`` values or ``object_depth`` levels."""
    count = 0

    def walk(value: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > limits.object_values:
            raise SandboxLimitError(f"the object has more than {limits.object_values:,} values")
        if depth > limits.object_depth:
            raise SandboxLimitError(f"the object nests deeper than {limits.object_depth} levels")
        if isinstance(value, Mapping):
            return {str(k): walk(v, depth + 1) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [walk(v, depth + 1) for v in value]
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else float(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if value is None:
            return None
        return str(value)  # e.g. a datetime that YAML made of an unquoted timestamp

    return walk(obj, 0)


def _clean_error(message: str) -> str:
    """``lua:3: attempt to …`` → ``line 3: attempt to …``."""
    if message.startswith(CHUNK + ":"):
        line, _, rest = message[len(CHUNK) + 1 :].partition(":")
        if line.isdigit():
            return f"line {line}:{rest}"
    return message


class LuaScript:
    """One compiled health script with its own Lua state. Safe to call from several threads (one
    object at a time); never raises from :meth:`run`."""

    def __init__(self, source: str, limits: LuaLimits | None = None) -> None:
        from lupa import lua54  # loaded only when a Lua check is configured

        self.limits = limits or LuaLimits()
        self._lock = threading.Lock()
        self._runtime = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attributes,
            max_memory=256 * 1024 * 1024,
        )
        compile_fn, self._run, self._port = self._runtime.execute(
            _SETUP,
            time.monotonic,
            HOOK_STEP,
            self.limits.string_bytes,
            100_000,
            self.limits.pattern_steps,
        )
        chunk, error = self._compile(compile_fn, source)
        self._chunk = chunk
        self.compile_error = error
        self._baseline = self._runtime.get_memory_used()

    @staticmethod
    def _compile(compile_fn: Any, source: str) -> tuple[Any, str | None]:
        try:
            result = compile_fn(source)
        except Exception as error:
            return None, f"cannot compile: {error}"
        chunk, problem = result if isinstance(result, tuple) else (result, None)
        if chunk is None:
            return None, _clean_error(str(problem))
        return chunk, None

    def run(self, obj: Mapping[str, Any]) -> Outcome:
        if self._chunk is None:
            return Outcome(error=f"the script does not compile: {self.compile_error}")
        try:
            clean = sanitize(obj, self.limits)
        except SandboxLimitError as error:
            return Outcome(error=f"{error} (the sandbox's limit)", limit="object")
        with self._lock:
            return self._run_locked(clean)

    def _run_locked(self, clean: Mapping[str, Any]) -> Outcome:
        runtime = self._runtime
        limits = self.limits
        try:
            runtime.set_max_memory(runtime.get_memory_used() + limits.memory_bytes)
            try:
                table = runtime.table_from(clean, recursive=True)
            except Exception:  # lupa.LuaMemoryError, or a value lupa cannot convert
                return Outcome(
                    error=f"the object does not fit in the sandbox's {limits.memory_bytes // 2**20} MiB",
                    limit="memory",
                )
            steps = max(1, limits.instructions // HOOK_STEP)
            result = self._run(self._chunk, table, steps, time.monotonic() + limits.seconds)
            del table
            return self._outcome(result if isinstance(result, tuple) else (result,))
        except Exception as error:  # a memory error outside the script's pcall, a decoding error
            name = type(error).__name__
            if name == "LuaMemoryError":
                return Outcome(error=self._limit_text("memory"), limit="memory")
            return Outcome(error=f"{name}: {error}")
        finally:
            if runtime.get_memory_used() > self._baseline + 4 * 1024 * 1024:
                runtime.gccollect()

    def _limit_text(self, limit: str) -> str:
        limits = self.limits
        if limit == "instructions":
            return f"stopped after {limits.instructions:,} Lua instructions (the sandbox's limit)"
        if limit == "time":
            return f"stopped after {limits.seconds * 1000:.0f} ms (the sandbox's wall-time limit)"
        return f"ran out of memory (the sandbox allows {limits.memory_bytes // 2**20} MiB per object)"

    def _outcome(self, result: tuple[Any, ...]) -> Outcome:
        kind = result[0]
        if kind == "limit":
            limit = str(result[1])
            return Outcome(error=self._limit_text(limit), limit=limit)
        if kind == "error":
            return Outcome(error=_clean_error(str(result[1]))[:2000])
        if kind == "type":
            return Outcome(error=f"the script must return a table, it returned {result[1]}")
        status = result[1] if len(result) > 1 else None
        message = result[2] if len(result) > 2 and result[2] is not None else ""
        message = str(message)[:2000]
        if status not in STATUSES:
            near = next(
                (s for s in STATUSES if isinstance(status, str) and s.lower() == status.lower()), None
            )
            shown = "no status" if status is None else f"status {str(status)[:80]!r}"
            hint = f" (did you mean {near!r}?)" if near else f" (one of {', '.join(STATUSES)})"
            return Outcome(
                error=f"the script returned an invalid health status: {shown}{hint}", message=message
            )
        return Outcome(status=str(status), message=message)
