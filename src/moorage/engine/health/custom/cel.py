"""Flux-style CEL health expressions (``healthCheckExprs`` of a Flux Kustomization).

Semantics, as in Flux (``fluxcd/pkg`` ``runtime/cel`` StatusEvaluator, RFC-0009):

1. ``status.observedGeneration`` present and different from ``metadata.generation`` → in progress;
2. then ``inProgress`` (if set) true → in progress; ``failed`` (if set) true → failed; ``current``
   true → current, in that order, the first true one deciding;
3. none true → in progress.

The object's top-level fields (``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``, …) are the
expression's variables, as in Flux; ``self`` is the whole object as well (Moorage's addition, as in
Kubernetes' own CEL rules). An expression that fails at run time (a field that is not there yet, a
value that is not a boolean) gives no status but an error: Moorage reads that as Unknown.

The runtime is ``common-expression-language`` (Rust's ``cel`` crate); see docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.spec.rules import cel_problem

__all__ = ["CelExpressions", "CelOutcome"]


@dataclass(frozen=True)
class CelOutcome:
    verdict: str | None = None  # "inProgress" | "failed" | "current" | "none" | "generation"
    expression: str = ""  # the expression that decided (or failed)
    error: str | None = None


def _field(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-shaped values only (YAML may hand a datetime for an unquoted timestamp)."""

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return str(value)

    return {str(k): walk(v) for k, v in obj.items()}


class CelExpressions:
    """The compiled expressions of one check. :attr:`compile_error` is set instead of raising."""

    def __init__(self, expressions: list[tuple[str, str]]) -> None:
        self.expressions = expressions
        self.compile_error: str | None = None
        self._programs: list[tuple[str, str, Any]] = []
        # the identifiers the expressions use: only those fields of an object are handed to CEL
        # (converting the whole object for every expression cost ~10x more in bench/health.py)
        self._names: set[str] = set()
        self._context: Any = None
        try:
            import cel  # loaded only when a CEL check is configured
        except Exception as error:  # pragma: no cover - a broken install
            self.compile_error = f"the CEL runtime cannot be loaded: {error}"
            return
        for name, expression in expressions:
            problem = cel_problem(expression)
            if problem is not None:
                line, column, message = problem
                self.compile_error = f"'{name}' does not parse (line {line}, column {column}): {message}"
                return
            program = cel.compile(expression)
            self._programs.append((name, expression, program))
            self._names.update(program.variables())
        self._context = cel.Context

    def evaluate(self, obj: Mapping[str, Any]) -> CelOutcome:
        if self.compile_error is not None:
            return CelOutcome(error=self.compile_error)
        observed = _as_int(_field(obj, "status", "observedGeneration"))
        generation = _as_int(_field(obj, "metadata", "generation"))
        if observed is not None and generation is not None and observed != generation:
            return CelOutcome(
                "generation", f"status.observedGeneration {observed} != metadata.generation {generation}"
            )
        try:
            used = {k: v for k, v in obj.items() if isinstance(k, str) and k in self._names}
            variables = _clean(used)
            if "self" in self._names:
                variables["self"] = _clean(obj)
            context = self._context(variables=variables)
        except RecursionError:
            return CelOutcome(error="the object nests too deeply to be evaluated")
        except BaseException as error:  # a value the bindings cannot convert
            if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
                raise
            return CelOutcome(error=f"the object cannot be handed to CEL: {_describe(error)}")
        for name, expression, program in self._programs:
            try:
                result = program.execute(context)
            except BaseException as error:  # the Rust side may panic (pyo3's PanicException)
                if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
                    raise
                return CelOutcome(error=f"'{name}' failed: {_describe(error)}", expression=expression)
            if not isinstance(result, bool):
                shown = f"{type(result).__name__} {str(result)[:80]!r}"
                wrong = f"'{name}' must give a boolean, it gave {shown}"
                return CelOutcome(error=wrong, expression=expression)
            if result:
                return CelOutcome(name, expression)
        return CelOutcome("none")


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"no such key: {error.args[0] if error.args else ''}"
    text = str(error).split(". Check that")[0]
    return text or type(error).__name__
