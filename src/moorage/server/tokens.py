"""Secrets of the control plane: API tokens (people, automation) and agent tokens (one per cluster).

A token is shown once, when it is made. The database keeps only a keyed hash of it,
`hmac$<base64url of HMAC-SHA256(key, sha256-hex(token))>`, with a key derived from the server's
secret key (`TokenHasher`), so a copied database alone does not let anyone test guesses of a
user-chosen token (the bootstrap token) offline. Rows written before that hold the plain sha256 hex
(`sha256_hex`); since the keyed hash is computed over that same hex, the server rewrites them at
start-up without knowing the tokens (`TokenHasher.upgrade`). Agent tokens also have a bcrypt hash,
which nats-server checks the agent's NATS password against."""

import base64
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
KEYED_PREFIX = "hmac$"
# what the server's secret key is used for when it derives the token-hashing key
TOKEN_KEY_PURPOSE = "token-hash-v1"  # noqa: S105 (a label, not a secret)


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
# the scopes an API token may be made with: "agent" belongs to agent tokens, made by registering a
# cluster, and accepted only by /api/v1/agent
API_SCOPES = (Scope.READ, Scope.WRITE, Scope.ADMIN)


_SCOPE_VALUES = frozenset(s.value for s in Scope)


def granted(scopes: Iterable[str], wanted: Scope) -> bool:
    """Whether a token with `scopes` may do what needs `wanted` (unknown scope names grant nothing)."""
    return any(wanted in _GRANTS[Scope(s)] for s in scopes if s in _SCOPE_VALUES)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_agent_token() -> str:
    return AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(secret: str) -> str:
    """The unkeyed sha256 hex: what older servers stored for tokens, and what UI session secrets
    (random, 256 bits, never chosen by a person) are stored as."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hashes_match(stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(stored_hash, sha256_hex(secret))


def is_keyed(stored_hash: str) -> bool:
    return stored_hash.startswith(KEYED_PREFIX)


class TokenHasher:
    """Keyed hashes of API and agent tokens. The key never leaves the object (repr hides it)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the token-hashing key must have at least 32 bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "TokenHasher(key hidden)"

    def hash(self, token: str) -> str:
        """What the database stores for `token`."""
        return self.upgrade(sha256_hex(token))

    def upgrade(self, legacy: str) -> str:
        """The keyed hash of a token whose legacy sha256 hex is `legacy` (rows of older servers)."""
        mac = hmac.new(self._key, legacy.encode(), hashlib.sha256).digest()
        return KEYED_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def matches(self, stored_hash: str, token: str) -> bool:
        return hmac.compare_digest(stored_hash, self.hash(token))


def bcrypt_hash(token: str) -> str:
    return bcrypt.hashpw(token.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS)).decode()
