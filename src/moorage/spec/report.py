"""Validation report: every problem found, each with a location, a field path and a hint."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Location:
    """A position in a repository file; line and column are 1-based (0 means unknown)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Issue:
    severity: Severity
    code: str
    message: str
    location: Location | None = None
    path: str = ""
    hint: str = ""

    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location or Location("")
        return (loc.file, loc.line, loc.column, self.path, self.message)

    def format(self) -> str:
        where = str(self.location) if self.location else "<definition>"
        text = f"{where}: {self.severity.value}: {self.message}"
        if self.path:
            text += f" [{self.path}]"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        loc = self.location
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
            "path": self.path,
            "hint": self.hint,
        }


class SpecError(Exception):
    """A single problem that stops processing of one file or value; becomes one report item."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        location: Location | None = None,
        hint: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.location = location
        self.hint = hint
        self.path = path


@dataclass
class Report:
    """Collects every problem instead of stopping at the first one."""

    issues: list[Issue] = field(default_factory=list)

    def add(
        self,
        severity: Severity,
        code: str,
        message: str,
        *,
        location: Location | None = None,
        path: str = "",
        hint: str = "",
    ) -> None:
        self.issues.append(Issue(severity, code, message, location, path, hint))

    def error(
        self, code: str, message: str, *, location: Location | None = None, path: str = "", hint: str = ""
    ) -> None:
        self.add(Severity.ERROR, code, message, location=location, path=path, hint=hint)

    def warning(
        self, code: str, message: str, *, location: Location | None = None, path: str = "", hint: str = ""
    ) -> None:
        self.add(Severity.WARNING, code, message, location=location, path=path, hint=hint)

    def add_exception(self, exc: SpecError, *, path: str = "") -> None:
        self.error(exc.code, exc.message, location=exc.location, path=exc.path or path, hint=exc.hint)

    def extend(self, issues: Iterable[Issue]) -> None:
        self.issues.extend(issues)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.sorted() if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.sorted() if i.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not any(i.severity is Severity.ERROR for i in self.issues)

    def sorted(self) -> list[Issue]:
        # Deduplicate: the same fact can be reached twice (e.g. a file included by two entries).
        seen: set[Issue] = set()
        unique: list[Issue] = []
        for issue in self.issues:
            if issue not in seen:
                seen.add(issue)
                unique.append(issue)
        return sorted(unique, key=Issue.sort_key)

    def __iter__(self) -> Iterator[Issue]:
        return iter(self.sorted())

    def __len__(self) -> int:
        return len(self.issues)

    def to_text(self) -> str:
        lines = [issue.format() for issue in self.sorted()]
        n_err = len(self.errors)
        n_warn = len(self.warnings)
        lines.append(f"{n_err} error(s), {n_warn} warning(s)")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "valid": self.ok,
                "errors": [i.to_dict() for i in self.errors],
                "warnings": [i.to_dict() for i in self.warnings],
            },
            indent=2,
            sort_keys=True,
        )
