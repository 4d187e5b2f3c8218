"""Secrets of the control plane: API tokens (people, automation) and agent tokens (one per cluster).

A token is shown once, when it is made; the database keeps only its sha256 (and, for agent
tokens, a bcrypt hash that nats-server checks the agent's NATS password against)."""

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from enum import StrEnum

import bcrypt

API_TOKEN_PREFIX = "mrg_"  # noqa: S105 (a prefix, not a secret)
AGENT_TOKEN_PREFIX = "mrga_"  # noqa: S105
# nats-server verifies the bcrypt hash on every agent connection: keep it affordable
BCRYPT_ROUNDS = 10


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    AGENT = "agent"


# a scope grants itself and those below it; "agent" stands alone
_GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.WRITE: frozenset({Scope.READ, Scope.WRITE}),
    Scope.ADMIN: frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}),
    Scope.AGENT: frozenset({Scope.AGENT}),
}


_SCOPE_VALUES = frozenset(s.value for s in Scope)


def granted(scopes: Iterable[str], wanted: Scope) -> bool:
    """Whether a token with `scopes` may do what needs `wanted` (unknown scope names grant nothing)."""
    return any(wanted in _GRANTS[Scope(s)] for s in scopes if s in _SCOPE_VALUES)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_agent_token() -> str:
    return AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hashes_match(stored_hash: str, token: str) -> bool:
    return hmac.compare_digest(stored_hash, token_hash(token))


def bcrypt_hash(token: str) -> str:
    return bcrypt.hashpw(token.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
