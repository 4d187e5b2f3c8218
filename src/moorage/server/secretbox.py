"""Encryption at rest for the secrets the control plane must be able to use again (Git tokens, SSH
keys, webhook secrets): age (X25519 + ChaCha20-Poly1305, via pyrage, already used for SOPS) with one
server key. The key comes from MOORAGE_SECRET_KEY or a file in the data directory created 0600 on
first start; the database (and its backups) holds only ciphertext.

Each sealed value is bound to its purpose (e.g. "credential:<id>"): a ciphertext copied into another
row does not open there."""

import base64
import hashlib
import hmac
import os
from pathlib import Path

import pyrage
from pyrage import x25519

KEY_FILE = "secret.agekey"
_MAGIC = b"moorage-sealed-v1\n"


class SecretBoxError(Exception):
    pass


class Secret:
    """A plaintext secret in memory; str() and repr() never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SecretBox:
    def __init__(self, identity: x25519.Identity) -> None:
        self._identity = identity
        self._recipient = identity.to_public()

    def __repr__(self) -> str:
        return "SecretBox(key hidden)"

    @classmethod
    def from_key(cls, key: str) -> "SecretBox":
        try:
            return cls(x25519.Identity.from_str(key.strip()))
        except Exception:
            raise SecretBoxError(
                "the server secret key is not an age identity (AGE-SECRET-KEY-1…); "
                "generate one with `age-keygen` or let the server create one in its data directory"
            ) from None

    @classmethod
    def load_or_create(cls, data_dir: Path, key: str | None = None) -> "SecretBox":
        """`key` if given, else the key file in `data_dir`, created (mode 0600) when missing."""
        if key:
            return cls.from_key(key)
        path = Path(data_dir) / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            identity = x25519.Identity.generate()
            # written whole under a private name, then linked into place: a server starting at the
            # same moment either wins or reads a complete key, never half of one
            temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(str(identity) + "\n")
            try:
                os.link(temporary, path)
            except FileExistsError:  # another process created it first: use theirs
                return cls.from_key(path.read_text())
            finally:
                temporary.unlink()
            return cls(identity)
        if path.stat().st_mode & 0o077:
            raise SecretBoxError(f"{path} must be readable by its owner only (chmod 600 {path})")
        return cls.from_key(path.read_text())

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for `purpose` (e.g. hashing API tokens), derived from the server key: the
        same key gives the same bytes on every start, and one purpose's key reveals nothing of the
        server key or of another purpose's key."""
        return hmac.new(
            str(self._identity).encode(), b"moorage-derived-key\n" + purpose.encode(), hashlib.sha256
        ).digest()

    def seal(self, plaintext: str, purpose: str) -> str:
        data = _MAGIC + purpose.encode() + b"\n" + plaintext.encode()
        return base64.b64encode(pyrage.encrypt(data, [self._recipient])).decode()

    def open(self, sealed: str, purpose: str) -> Secret:
        try:
            data = pyrage.decrypt(base64.b64decode(sealed, validate=True), [self._identity])
        except Exception:
            raise SecretBoxError(
                f"a stored secret ({purpose}) cannot be decrypted with this server's key; "
                "was MOORAGE_SECRET_KEY or the key file changed? Store the secret again."
            ) from None
        head = _MAGIC + purpose.encode() + b"\n"
        if not data.startswith(head):
            raise SecretBoxError(f"a stored secret does not belong to {purpose}; store the secret again")
        return Secret(data[len(head) :].decode())
