"""Users of the web UI and their sessions: password hashing, users, sign-in sessions, CSRF tokens and
the sign-in rate limiter. Domain functions over a Session like service.py; no FastAPI here, and
callers own the transaction.

- Passwords are hashed with scrypt (stdlib `hashlib.scrypt`, see docs/decisions.md) into
  `$scrypt$ln=14,r=8,p=5$<salt>$<key>`; a hash made with older parameters is replaced at the next
  sign-in. A password is never logged, never put in an error message, and never stored.
- A session's secret travels only in the cookie; the database keeps its sha256. The CSRF token is
  HMAC-SHA256(key = the secret, "moorage csrf v1"): only a holder of the cookie can compute it, a
  database dump reveals neither, and the page can ask for it again (GET /api/v1/session).
- Hashing a password costs ~0.2 s of one core and 16 MiB: it runs on worker threads (scrypt releases
  the GIL), at most `HASHING_AT_ONCE` at a time, and never inside a database transaction."""

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
import threading
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from moorage.server import tokens
from moorage.server.db.models import UiSession, User
from moorage.server.service import Conflict, Invalid, NotFound
from moorage.server.settings import ServerSettings

COOKIE_NAME = "moorage_session"
CSRF_HEADER = "X-CSRF-Token"
WRONG_CREDENTIALS = "wrong username or password"
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
# last_seen_at is written at most this often per session (not on every request)
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
# revoked and expired sessions are deleted this long after they ended
PURGE_AFTER = timedelta(days=1)
HASHING_AT_ONCE = 4
_CSRF_MESSAGE = b"moorage csrf v1"


class Role(StrEnum):
    """What a user may do: the same grants as the API token scopes of that name."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


def scopes_of(role: str) -> tuple[str, ...]:
    """The token scopes a role grants (read ⊂ write ⊂ admin is the scopes' own order)."""
    return (Role(role).value,) if role in {r.value for r in Role} else ()


# --------------------------------------------------------------------------- passwords


@dataclass(frozen=True)
class Scrypt:
    """scrypt cost: N = 2**log_n, block size r, parallelism p (memory 128 * N * r bytes)."""

    log_n: int
    r: int
    p: int

    def encode(self) -> str:
        return f"ln={self.log_n},r={self.r},p={self.p}"


# OWASP's scrypt setting for 16 MiB of memory; ~0.2 s on one core of the reference machine
SCRYPT = Scrypt(log_n=14, r=8, p=5)
SALT_BYTES = 16
KEY_BYTES = 32
_MAXMEM = 256 * 1024 * 1024
_hashing = threading.BoundedSemaphore(HASHING_AT_ONCE)
_PARAMS = re.compile(r"ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _normalized(password: str) -> bytes:
    # the same password typed on two keyboards may differ in Unicode composition
    return unicodedata.normalize("NFKC", password).encode()


def _derive(password: str, salt: bytes, cost: Scrypt, length: int) -> bytes:
    with _hashing:
        return hashlib.scrypt(
            _normalized(password),
            salt=salt,
            n=2**cost.log_n,
            r=cost.r,
            p=cost.p,
            maxmem=_MAXMEM,
            dklen=length,
        )


def check_password_rules(password: str) -> None:
    """Invalid (with a message that never holds the password) unless `password` may be set."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise Invalid(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    if not password.strip():
        raise Invalid("a password cannot be only spaces")


def hash_password(password: str) -> str:
    """A new scrypt hash of `password` (which must pass check_password_rules). Slow on purpose."""
    check_password_rules(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, SCRYPT, KEY_BYTES)
    return f"$scrypt${SCRYPT.encode()}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[Scrypt, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "scrypt":
        return None
    match = _PARAMS.fullmatch(parts[2])
    if match is None:
        return None
    try:
        salt, key = _unb64(parts[3]), _unb64(parts[4])
    except (binascii.Error, ValueError):
        return None
    log_n, r, p = (int(g) for g in match.groups())
    fits = 128 * 2**log_n * r <= _MAXMEM // 2
    if not (1 <= log_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and fits and salt and len(key) >= 16):
        return None
    return Scrypt(log_n, r, p), salt, key


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches the stored hash, compared in constant time. With no hash (an unknown
    user) or an unusable one, the same work is done against a random key, so the answer takes as
    long as for a wrong password."""
    parsed = _parse(stored) if stored else None
    if parsed is None:
        cost, salt, key = SCRYPT, secrets.token_bytes(SALT_BYTES), secrets.token_bytes(KEY_BYTES)
    else:
        cost, salt, key = parsed
    if len(password) > MAX_PASSWORD_CHARS:
        _derive("x" * MIN_PASSWORD_CHARS, salt, cost, len(key))
        return False
    return hmac.compare_digest(_derive(password, salt, cost, len(key)), key) and parsed is not None


def needs_rehash(stored: str) -> bool:
    """Whether a (verified) hash was made with other parameters than today's."""
    parsed = _parse(stored)
    return parsed is None or parsed[0] != SCRYPT or len(parsed[2]) != KEY_BYTES


def rehashed(stored: str, password: str) -> str | None:
    """A new hash of a just verified `password` when `stored` was made with other parameters than
    today's (None when it was not, or when the password no longer passes today's rules)."""
    if not needs_rehash(stored):
        return None
    try:
        return hash_password(password)
    except Invalid:
        return None


# --------------------------------------------------------------------------- users


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise Invalid(
            f"invalid username {username[:80]!r}: use 1-64 lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Invalid(f"unknown role {role[:20]!r}; use read, write or admin") from None


def check_new_user(username: str, role: str, password: str) -> None:
    """Every rule of a new user that needs no database (call it before the slow hash)."""
    check_username(username)
    check_role(role)
    check_password_rules(password)


def create_user(session: Session, username: str, role: str, password_hash: str) -> User:
    check_username(username)
    check_role(role)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username!r} already exists")
    user = User(username=username, role=role, password_hash=password_hash)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def find_user(session: Session, username: str) -> User | None:
    """The user signing in as `username` (case does not matter), or None."""
    return session.scalar(select(User).where(User.username == username.strip().lower()))


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user named {username[:80]!r}")
    return user


def revoke_sessions(session: Session, user_id: str, now: datetime, *, keep: str | None = None) -> int:
    """End every live session of a user (but `keep`, a session id); how many were ended."""
    statement = (
        update(UiSession)
        .where(UiSession.user_id == user_id, UiSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if keep is not None:
        statement = statement.where(UiSession.id != keep)
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return result.rowcount or 0


def update_user(
    session: Session, username: str, now: datetime, *, role: str | None = None, disabled: bool | None = None
) -> User:
    """Change a user's role or disable / enable them. Disabling ends their sessions; a new role holds
    from their next request."""
    user = get_user(session, username)
    if role is not None:
        user.role = check_role(role).value
    if disabled is True and user.disabled_at is None:
        user.disabled_at = now
        revoke_sessions(session, user.id, now)
    elif disabled is False:
        user.disabled_at = None
    return user


def delete_user(session: Session, username: str) -> User:
    """Delete a user; their sessions end with them (the rows go by the foreign key's cascade)."""
    user = get_user(session, username)
    session.delete(user)
    session.flush()
    return user


def set_password_hash(
    session: Session, username: str, password_hash: str, now: datetime, *, keep_session: str | None = None
) -> User:
    """A new password: every session of the user ends, except `keep_session` (the one changing it)."""
    user = get_user(session, username)
    user.password_hash = password_hash
    revoke_sessions(session, user.id, now, keep=keep_session)
    return user


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    lifetime: timedelta

    @classmethod
    def of(cls, settings: ServerSettings) -> "SessionPolicy":
        return cls(
            timedelta(seconds=settings.session_idle_seconds), timedelta(seconds=settings.session_max_seconds)
        )


@dataclass(frozen=True)
class SignedIn:
    """A live session and its user (never the secret)."""

    session_id: str
    user_id: str
    username: str
    role: str


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds `secret`."""
    return _b64(hmac.new(secret.encode(), _CSRF_MESSAGE, hashlib.sha256).digest())


def csrf_matches(secret: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(csrf_token(secret).encode(), given.strip().encode())


def start_session(
    session: Session,
    user_id: str,
    now: datetime,
    policy: SessionPolicy,
    *,
    new_password_hash: str | None = None,
    replaces: str | None = None,
) -> tuple[SignedIn, str] | None:
    """A new session for a user whose password was just verified: (who, the secret for the cookie).
    None if the user was deleted or disabled meanwhile. `new_password_hash` replaces a hash made with
    older parameters; `replaces` is the secret of the browser's previous session, which ends. Sessions
    that ended a while ago are deleted on the way."""
    user = session.get(User, user_id)
    if user is None or user.disabled_at is not None:
        return None
    if replaces:
        end_session(session, replaces, now)
    session.execute(
        delete(UiSession).where(
            or_(UiSession.expires_at < now - PURGE_AFTER, UiSession.revoked_at < now - PURGE_AFTER)
        )
    )
    secret = secrets.token_urlsafe(32)
    row = UiSession(
        secret_hash=tokens.sha256_hex(secret),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.lifetime,
    )
    session.add(row)
    user.last_login_at = now
    if new_password_hash is not None:
        user.password_hash = new_password_hash
    session.flush()
    return SignedIn(row.id, user.id, user.username, user.role), secret


def authenticate(session: Session, secret: str, now: datetime, policy: SessionPolicy) -> SignedIn | None:
    """The live session whose cookie holds `secret`, or None: unknown, revoked, past its absolute end,
    idle too long, or its user disabled."""
    if not secret or len(secret) > 200:
        return None
    row = session.scalar(select(UiSession).where(UiSession.secret_hash == tokens.sha256_hex(secret)))
    # the lookup used the hash as a key; compare once more in constant time before trusting it
    if row is None or not tokens.hashes_match(row.secret_hash, secret):
        return None
    if row.revoked_at is not None or now >= row.expires_at or now >= row.last_seen_at + policy.idle:
        return None
    user = row.user
    if user.disabled_at is not None:
        return None
    if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
    return SignedIn(row.id, user.id, user.username, user.role)


def end_session(session: Session, secret: str, now: datetime) -> bool:
    """Sign out: revoke the session whose cookie holds `secret`. False if there was none."""
    row = session.scalar(select(UiSession).where(UiSession.secret_hash == tokens.sha256_hex(secret)))
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now
    return True


# --------------------------------------------------------------------------- sign-in rate limit


class SignInLimiter:
    """Failed sign-ins per username and per client address within a sliding window, in memory (one
    server process). An attempt counts as failed from its start, so parallel guesses cannot overtake
    the limit while their hashes are computed; a success takes its own attempt back."""

    MAX_KEYS = 10_000

    def __init__(self, per_user: int, per_address: int, window: timedelta) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: ServerSettings) -> "SignInLimiter":
        return cls(
            settings.signin_failures_per_user,
            settings.signin_failures_per_address,
            timedelta(seconds=settings.signin_window_seconds),
        )

    def _keys(self, username: str, address: str) -> Iterable[tuple[tuple[str, str], int]]:
        return (
            (("user", username.strip().lower()[:200]), self.per_user),
            (("address", address), self.per_address),
        )

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        stamps = self._failures.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
        return stamps

    def begin(self, username: str, address: str, now: datetime) -> int | None:
        """Seconds to wait when the limit is reached (the attempt is refused), else None and the
        attempt is counted as failed until `succeeded` takes it back."""
        with self._lock:
            waits = []
            for key, limit in self._keys(username, address):
                stamps = self._recent(key, now)
                if len(stamps) >= limit:
                    waits.append(stamps[len(stamps) - limit] + self.window - now)
            if waits:
                return max(1, math.ceil(max(waits).total_seconds()))
            self._forget_some(now)
            for key, _ in self._keys(username, address):
                self._failures.setdefault(key, deque()).append(now)
            return None

    def succeeded(self, username: str, address: str, started: datetime) -> None:
        with self._lock:
            for key, _ in self._keys(username, address):
                stamps = self._failures.get(key)
                if stamps is not None and started in stamps:
                    stamps.remove(started)
                    if not stamps:
                        del self._failures[key]

    def _forget_some(self, now: datetime) -> None:
        if len(self._failures) < self.MAX_KEYS:
            return
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= self.MAX_KEYS:  # still full: forget the oldest keys
            del self._failures[next(iter(self._failures))]
