"""SOPS encryption in memory, through the real ``sops`` binary: the plaintext YAML goes to sops on
stdin and the encrypted document comes back on stdout, so it never touches the disk nor a process's
arguments (those hold only the age recipients and the regular expression of key *names*).

Recipients come from the repository's ``.sops.yaml`` (the first creation rule whose ``path_regex``
matches the file, as sops picks it) or are given by the caller. sops' own configuration lookup is
turned off (``--config /dev/null``): Moorage decides which rule applies, so the result does not
depend on the working directory of the process."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from moorage.spec.sops import SOPS_TIMEOUT_S, find_sops, listed_key, listed_matches

SOPS_CONFIG = ".sops.yaml"
AGE_RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


class EncryptError(ValueError):
    """Encryption was refused or failed; `message` never holds a value (only names and hints)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Rule:
    """What a ``.sops.yaml`` creation rule says for one file."""

    recipients: tuple[str, ...]
    encrypted_regex: str | None = None


def check_recipients(recipients: Iterable[str]) -> tuple[str, ...]:
    found = tuple(r.strip() for r in recipients if r.strip())
    for recipient in found:
        if not AGE_RECIPIENT_RE.match(recipient):
            raise EncryptError(
                f"'{recipient[:80]}' is not an age recipient (an age public key: age1 followed by 58 "
                "characters; `age-keygen -y KEYFILE` prints it)"
            )
    return found


def rule_for(config_text: str | None, path: str) -> Rule | None:
    """The creation rule of a ``.sops.yaml`` text that applies to repo-relative `path` and names
    age recipients, or None. sops uses the first rule whose ``path_regex`` matches (a rule without
    one matches every file)."""
    if not config_text:
        return None
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        raise EncryptError(f"{SOPS_CONFIG} is not valid YAML; fix it or give the recipients") from None
    rules = config.get("creation_rules") if isinstance(config, dict) else None
    for raw in rules if isinstance(rules, list) else []:
        if not isinstance(raw, dict):
            continue
        pattern = raw.get("path_regex")
        try:
            if isinstance(pattern, str) and not re.search(pattern, path):
                continue
        except re.error:
            raise EncryptError(f"{SOPS_CONFIG}: path_regex {pattern!r} is not a regular expression") from None
        age = raw.get("age")
        if isinstance(age, str):
            recipients = [part for part in re.split(r"[,\s]+", age) if part]
        elif isinstance(age, list):
            recipients = [str(part) for part in age]
        else:
            return None  # the rule that applies names no age key (KMS, PGP …): not for Moorage to use
        regex = raw.get("encrypted_regex")
        return Rule(check_recipients(recipients), regex if isinstance(regex, str) else None)
    return None


def key_regex(paths: Iterable[str]) -> str:
    """sops' ``--encrypted-regex`` for the keys `paths` name (``encrypted_paths`` entries: a dotted
    path means its last key, as sops matches key names anywhere)."""
    keys = sorted({listed_key(p) for p in paths if p})
    if not keys:
        raise EncryptError("no value is marked as secret")
    return "^(" + "|".join(re.escape(k) for k in keys) + ")$"


def encrypt_yaml(
    plaintext: str,
    recipients: Iterable[str],
    secret_paths: Iterable[str],
    *,
    sops_binary: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Encrypt the values of the keys `secret_paths` name in a YAML text; other keys stay readable."""
    found = check_recipients(recipients)
    if not found:
        raise EncryptError(
            f"no age recipient to encrypt for: add a creation rule with `age:` to {SOPS_CONFIG} "
            "or give the recipients"
        )
    regex = key_regex(secret_paths)
    binary = sops_binary or find_sops()
    if binary is None:
        raise EncryptError("cannot encrypt: the sops binary was not found (install sops-binary)")
    run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SOPS_DISABLE_VERSION_CHECK": "1"}
    run_env.update(env or {})
    args = [binary, "--config", os.devnull, "encrypt", "--input-type", "yaml", "--output-type", "yaml"]
    args += ["--age", ",".join(found), "--encrypted-regex", regex, "/dev/stdin"]
    try:
        proc = subprocess.run(
            args,
            input=plaintext.encode("utf-8"),
            capture_output=True,
            env=run_env,
            timeout=SOPS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EncryptError(f"sops did not finish encrypting within {SOPS_TIMEOUT_S:.0f} s") from None
    except OSError as exc:
        raise EncryptError(f"cannot run sops: {exc.strerror}") from None
    if proc.returncode != 0:
        # sops' stderr may quote the input: never passed on
        raise EncryptError(
            f"sops failed to encrypt the values (exit code {proc.returncode}); check that they are "
            "a YAML mapping and the recipients are age public keys"
        )
    return proc.stdout.decode("utf-8")


def unmatched(tree: Any, paths: Iterable[str]) -> list[str]:
    """The entries of `paths` that name no key of `tree` (so nothing would be encrypted for them)."""
    return [p for p in paths if not listed_matches(tree, p)]
