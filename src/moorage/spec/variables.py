"""`${{ ankra.NAME }}` variables (and the `${{ moorage.NAME }}` alias).

Precedence is stack > cluster > organisation. An unresolved token is left in place, as Ankra does;
the loader reports it as a warning (an error with ``strict_variables``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOKEN_RE = re.compile(r"\$\{\{\s*(ankra|moorage)\.([A-Za-z][A-Za-z0-9_]*)\s*\}\}")
# Anything that starts like a token but is not one (e.g. `${{ ankra.my-var }}`) is worth a warning.
LOOSE_TOKEN_RE = re.compile(r"\$\{\{\s*(ankra|moorage)\.[^}]*\}\}")
ENC_RE = re.compile(r"ENC\[[A-Z0-9_]+,[^\]]*\]")


@dataclass(frozen=True)
class Scopes:
    """Variables by scope, most specific first when looked up."""

    stack: Mapping[str, str] = field(default_factory=dict)
    cluster: Mapping[str, str] = field(default_factory=dict)
    organisation: Mapping[str, str] = field(default_factory=dict)

    def lookup(self, name: str) -> str | None:
        for scope in (self.stack, self.cluster, self.organisation):
            if name in scope:
                return scope[name]
        return None


@dataclass(frozen=True)
class Unresolved:
    name: str
    offset: int  # character offset in the text that was substituted


@dataclass
class Substitution:
    text: str
    unresolved: list[Unresolved]
    malformed: list[Unresolved]
    used: set[str]


def substitute(text: str, scopes: Scopes) -> Substitution:
    """Replace every resolvable token; leave unresolved ones (and ENC[...] values) untouched."""
    unresolved: list[Unresolved] = []
    used: set[str] = set()
    protected = [(m.start(), m.end()) for m in ENC_RE.finditer(text)] if "ENC[" in text else []

    def inside_enc(pos: int) -> bool:
        return any(start <= pos < end for start, end in protected)

    def replace(match: re.Match[str]) -> str:
        if protected and inside_enc(match.start()):
            return match.group(0)
        name = match.group(2)
        value = scopes.lookup(name)
        if value is None:
            unresolved.append(Unresolved(name, match.start()))
            return match.group(0)
        used.add(name)
        return value

    result = TOKEN_RE.sub(replace, text) if "${{" in text else text
    malformed = [
        Unresolved(m.group(0), m.start())
        for m in LOOSE_TOKEN_RE.finditer(text)
        if not TOKEN_RE.fullmatch(m.group(0))
    ]
    return Substitution(result, unresolved, malformed, used)


def substitute_tree(value: Any, scopes: Scopes, skip: frozenset[tuple[str | int, ...]] = frozenset()) -> Any:
    """Substitute inside every string leaf of a parsed tree, except at the paths in ``skip``.

    Used for decrypted SOPS documents: their text cannot be rewritten before decryption (the MAC
    covers it), and values that were encrypted must never be touched.
    """

    def walk(node: Any, path: tuple[str | int, ...]) -> Any:
        if path in skip:
            return node
        if isinstance(node, str):
            return substitute(node, scopes).text
        if isinstance(node, dict):
            return {k: walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        return node

    return walk(value, ())


def tokens_in(text: str) -> list[str]:
    return [m.group(2) for m in TOKEN_RE.finditer(text)]
