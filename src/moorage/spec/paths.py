"""Reading files of a repository checkout, confined to its root.

Every reference in a definition (``include``, ``from_file``, ``description_from_file`` …) is
resolved here: absolute paths, drive letters, backslashes, ``..`` that leaves the root and
symlinks that point outside are refused before anything is read.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from moorage.spec.hints import closest
from moorage.spec.report import Location, SpecError
from moorage.spec.yamlsafe import DEFAULT_LIMITS, Limits, decode_text

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class RepoFS:
    root: Path
    limits: Limits = DEFAULT_LIMITS
    bytes_read: int = 0
    files_read: int = 0
    _real_root: str = field(init=False)
    _cache: dict[str, bytes] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.root = Path(os.path.abspath(self.root))
        self._real_root = os.path.realpath(self.root)

    def relative(self, path: Path) -> str:
        """Repo-relative, forward-slash name of a path given on the command line."""
        absolute = os.path.abspath(path)
        rel = os.path.relpath(absolute, self.root)
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            raise SpecError(
                f"{path} is outside the repository root {self.root}",
                code="path-escape",
                location=Location(str(path)),
            )
        return Path(rel).as_posix()

    def resolve(self, ref: str, referrer: str, location: Location, what: str = "path") -> str:
        """Resolve ``ref`` (written in file ``referrer``) to a repo-relative path, or raise."""
        if not ref or not ref.strip():
            raise SpecError(f"{what} is empty", code="path-empty", location=location)
        if "\x00" in ref:
            raise SpecError(f"{what} contains a NUL character", code="path-invalid", location=location)
        if ref.startswith(("/", "\\")) or _DRIVE_RE.match(ref):
            raise SpecError(
                f"{what} '{ref}' is absolute; only paths relative to the repository are allowed",
                code="path-absolute",
                location=location,
                hint="write the path relative to the file that references it",
            )
        if "\\" in ref:
            raise SpecError(
                f"{what} '{ref}' uses backslashes",
                code="path-invalid",
                location=location,
                hint="use forward slashes",
            )
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(referrer), ref))
        if joined == ".." or joined.startswith("../"):
            raise SpecError(
                f"{what} '{ref}' leaves the repository root",
                code="path-escape",
                location=location,
                hint="files must live inside the repository",
            )
        real = os.path.realpath(self.root / joined)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise SpecError(
                f"{what} '{ref}' is a symlink (or goes through one) that leads outside the repository",
                code="path-symlink",
                location=location,
            )
        if not os.path.exists(real):
            parent = self.root / posixpath.dirname(joined)
            hint = ""
            if parent.is_dir():
                match = closest(posixpath.basename(joined), (p.name for p in parent.iterdir()), 3)
                if match:
                    hint = f"did you mean '{posixpath.join(posixpath.dirname(ref), match)}'?"
            raise SpecError(
                f"{what} '{ref}' does not exist", code="path-missing", location=location, hint=hint
            )
        return "." if joined == "." else joined

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def yaml_files_in(self, rel: str, location: Location) -> list[str]:
        """Every YAML file directly in folder ``rel`` (sorted, hidden files skipped), each confined."""
        folder = self.root / rel
        names = sorted(
            p.name for p in folder.iterdir() if p.name.endswith(YAML_SUFFIXES) and not p.name.startswith(".")
        )
        result: list[str] = []
        for name in names:
            child = posixpath.normpath(posixpath.join(rel, name))
            real = os.path.realpath(self.root / child)
            if not real.startswith(self._real_root + os.sep):
                raise SpecError(
                    f"'{child}' is a symlink that leads outside the repository",
                    code="path-symlink",
                    location=location,
                )
            if os.path.isfile(real):
                result.append(child)
        return result

    def read_bytes(self, rel: str, location: Location | None = None) -> bytes:
        cached = self._cache.get(rel)
        if cached is not None:
            return cached
        path = self.root / rel
        where = location or Location(rel)
        if not path.is_file():
            raise SpecError(f"'{rel}' is not a regular file", code="path-not-file", location=where)
        size = path.stat().st_size
        if size > self.limits.max_file_bytes:
            raise SpecError(
                f"file is too large ({size} bytes; the limit is {self.limits.max_file_bytes} bytes)",
                code="limit-file-size",
                location=Location(rel),
            )
        if self.files_read >= self.limits.max_files:
            raise SpecError(
                f"too many files referenced (the limit is {self.limits.max_files})",
                code="limit-files",
                location=where,
            )
        if self.bytes_read + size > self.limits.max_total_bytes:
            raise SpecError(
                f"the definition reads more than {self.limits.max_total_bytes} bytes in total",
                code="limit-total-size",
                location=where,
            )
        with open(path, "rb") as handle:
            # Read one byte past the limit: the file may have grown since stat().
            data = handle.read(self.limits.max_file_bytes + 1)
        self.files_read += 1
        self.bytes_read += len(data)
        self._cache[rel] = data
        return data

    def read_paths(self) -> list[str]:
        """Every file read so far (repo-relative): what a copy of the definition must carry."""
        return sorted(self._cache)

    def read_text(self, rel: str, location: Location | None = None) -> str:
        return decode_text(self.read_bytes(rel, location), rel, self.limits)
