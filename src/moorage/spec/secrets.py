"""Spotting values that look like plaintext secrets (§2.12), by key name and value shape.

Durations, ports, booleans, numbers, references to other objects and variable tokens are not
flagged: they are what makes naive "key contains password" checks noisy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from moorage.spec.yamlsafe import PathKey

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|"
    r"client[-_]?secret|credentials?|bearer|auth[-_]?key|webhook[-_]?url|dsn|connection[-_]?string)$",
    re.IGNORECASE,
)
# Keys that name or point at a secret rather than hold one.
_REFERENCE_KEY = re.compile(
    r"(name|ref|file|path|secretname|existingsecret|keyref|key[-_]?name|mountpath|env|enabled|length|"
    r"policy|type|mode|ttl|expiry|duration|timeout|header|field|usernamekey|passwordkey|key)$",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^\d+(\.\d+)?(ns|us|ms|s|m|h|d|w)$")
_REFERENCE_VALUE = re.compile(
    r"^(\$\{\{.*\}\}|\$\{[^}]+\}|\{\{.*\}\}|ENC\[.*\]|(secret|vault|ref|env|file)://.*)$", re.S
)
_NUMERIC = re.compile(r"^[-+]?\d+(\.\d+)?$")
_PLACEHOLDERS = frozenset(
    {"", "-", "none", "null", "true", "false", "yes", "no", "on", "off", "changeme-in-vault"}
)


def looks_like_secret_key(key: str) -> bool:
    compact = key.replace("-", "").replace("_", "").lower()
    if compact in ("apikey", "secretkey", "privatekey", "accesskey", "authkey"):
        return True
    if _REFERENCE_KEY.search(key.lower().replace("-", "").replace("_", "")) and not _SECRET_KEY.search(key):
        return False
    if re.search(r"(name|ref|file|path|existing|secretname|keyref)$", compact):
        return False
    return bool(_SECRET_KEY.search(key))


def looks_like_plaintext_secret(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not looks_like_secret_key(key):
        return False
    text = value.strip()
    if text.lower() in _PLACEHOLDERS or len(text) < 4:
        return False
    if _DURATION.match(text) or _NUMERIC.match(text) or _REFERENCE_VALUE.match(text):
        return False
    # A bare word in lower-case DNS form under a key like `secret` names an object, e.g. `secret: my-tls`.
    return not (
        key.lower().endswith("secret")
        and re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", text)
        and "-" in text
    )


def scan(tree: Any, skip: frozenset[PathKey] | set[PathKey] = frozenset()) -> Iterator[PathKey]:
    """Paths of values that look like plaintext secrets, in document order."""
    stack: list[tuple[Any, PathKey]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if path in skip:
            continue
        if isinstance(node, dict):
            is_secret_object = node.get("kind") == "Secret" and isinstance(node.get("apiVersion"), str)
            children = list(node.items())
            for key, value in reversed(children):
                child = (*path, key)
                if child in skip:
                    continue
                if is_secret_object and key in ("data", "stringData") and isinstance(value, dict):
                    for data_key, data_value in value.items():
                        if isinstance(data_value, str) and not data_value.startswith("ENC["):
                            yield (*child, data_key)
                    continue
                if isinstance(value, dict | list):
                    stack.append((value, child))
                elif looks_like_plaintext_secret(str(key), value):
                    yield child
        elif isinstance(node, list):
            for index in range(len(node) - 1, -1, -1):
                stack.append((node[index], (*path, index)))
