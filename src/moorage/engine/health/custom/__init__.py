"""User-defined health checks: Argo CD-style Lua scripts and Flux-style CEL expressions.

* :class:`Checks` — the checks in force, one per (group, kind); built from ``spec.health_checks``
  (:meth:`Checks.compile`) and from the agent's ``MOORAGE_HEALTH_CHECKS_FILE`` (:func:`load_file`);
  a definition's entries override the file's for the same kind (:meth:`Checks.over`).
* :mod:`.lua` — the sandbox; :mod:`.cel` — Flux's evaluation order.
* :func:`not_covered` — kinds judged only by the generic rule's "exists" answer.

``moorage.engine.health.assess(obj, now, checks=...)`` asks a user check first for its kind, then the
dedicated rules, then the generic one. A check never raises: a failure is Unknown with the error.
"""

from moorage.engine.health.custom.checks import DEFINITION, Checks, ChecksFileError, UserCheck, load_file
from moorage.engine.health.custom.coverage import NotCovered, not_covered
from moorage.engine.health.custom.lua import LuaLimits

__all__ = [
    "DEFINITION",
    "Checks",
    "ChecksFileError",
    "LuaLimits",
    "NotCovered",
    "UserCheck",
    "load_file",
    "not_covered",
]
