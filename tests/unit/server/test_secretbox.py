"""moorage.server.secretbox: sealing bound to a purpose, the key file, and secrets that never print."""

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519

from moorage.server.secretbox import KEY_FILE, Secret, SecretBox, SecretBoxError

BOX = SecretBox(x25519.Identity.generate())
PURPOSE = "git-credential:0123abcd"


def test_seal_and_open_round_trip() -> None:
    sealed = BOX.seal("ghp_abcdefghijklmnopqrstuvwxyz", PURPOSE)
    assert isinstance(sealed, str)
    base64.b64decode(sealed, validate=True)  # stored as plain base64 text
    opened = BOX.open(sealed, PURPOSE)
    assert isinstance(opened, Secret)
    assert opened.reveal() == "ghp_abcdefghijklmnopqrstuvwxyz"
    assert opened == Secret("ghp_abcdefghijklmnopqrstuvwxyz")
    assert opened != Secret("other")
    assert hash(opened) == hash(Secret("ghp_abcdefghijklmnopqrstuvwxyz"))


def test_sealing_twice_gives_different_ciphertexts() -> None:
    assert BOX.seal("same", PURPOSE) != BOX.seal("same", PURPOSE)


def test_ciphertext_does_not_hold_the_plaintext() -> None:
    plaintext = "super-secret-token-value-" * 4
    sealed = BOX.seal(plaintext, PURPOSE)
    assert plaintext not in sealed
    raw = base64.b64decode(sealed)
    assert plaintext.encode() not in raw
    assert b"super-secret" not in raw
    assert PURPOSE.encode() not in raw  # the purpose is inside the encryption too


@pytest.mark.parametrize(
    "other", ["git-credential:0123abce", "webhook-secret:0123abcd", "", "git-credential:"]
)
def test_open_with_another_purpose_fails(other: str) -> None:
    sealed = BOX.seal("value", PURPOSE)
    with pytest.raises(SecretBoxError) as e:
        BOX.open(sealed, other)
    assert f"does not belong to {other}" in str(e.value)
    assert "value" not in str(e.value).replace("does not belong", "")


def test_a_purpose_that_is_a_prefix_of_another_does_not_open() -> None:
    sealed = BOX.seal("value", "git-credential:1")
    with pytest.raises(SecretBoxError):
        BOX.open(sealed, "git-credential:12")
    sealed = BOX.seal("value", "git-credential:12")
    with pytest.raises(SecretBoxError):
        BOX.open(sealed, "git-credential:1")


def test_ciphertext_of_another_key_fails_clearly() -> None:
    other = SecretBox(x25519.Identity.generate())
    sealed = other.seal("value", PURPOSE)
    with pytest.raises(SecretBoxError) as e:
        BOX.open(sealed, PURPOSE)
    message = str(e.value)
    assert PURPOSE in message
    assert "cannot be decrypted with this server's key" in message
    assert "MOORAGE_SECRET_KEY" in message


@pytest.mark.parametrize("sealed", ["", "not base64!", base64.b64encode(b"garbage").decode(), "AAAA"])
def test_garbage_ciphertext_fails_clearly(sealed: str) -> None:
    with pytest.raises(SecretBoxError, match="cannot be decrypted"):
        BOX.open(sealed, PURPOSE)


def test_a_tampered_ciphertext_fails() -> None:
    raw = bytearray(base64.b64decode(BOX.seal("value", PURPOSE)))
    raw[-5] ^= 0x01
    with pytest.raises(SecretBoxError, match="cannot be decrypted"):
        BOX.open(base64.b64encode(bytes(raw)).decode(), PURPOSE)


def test_load_or_create_creates_a_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    first = SecretBox.load_or_create(data_dir)
    key_file = data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().startswith("AGE-SECRET-KEY-1")
    sealed = first.seal("kept", PURPOSE)
    before = key_file.read_text()
    second = SecretBox.load_or_create(data_dir)
    assert key_file.read_text() == before
    assert second.open(sealed, PURPOSE).reveal() == "kept"


def test_load_or_create_refuses_a_readable_key_file(tmp_path: Path) -> None:
    SecretBox.load_or_create(tmp_path)
    key_file = tmp_path / KEY_FILE
    for mode in (0o644, 0o640, 0o604, 0o660):
        key_file.chmod(mode)
        with pytest.raises(SecretBoxError) as e:
            SecretBox.load_or_create(tmp_path)
        assert f"chmod 600 {key_file}" in str(e.value)
        assert "AGE-SECRET-KEY" not in str(e.value)
    key_file.chmod(0o400)
    SecretBox.load_or_create(tmp_path)


def test_load_or_create_prefers_an_explicit_key(tmp_path: Path) -> None:
    identity = x25519.Identity.generate()
    box = SecretBox.load_or_create(tmp_path, key=f"  {identity}\n")
    assert not (tmp_path / KEY_FILE).exists()
    assert SecretBox(identity).open(box.seal("v", PURPOSE), PURPOSE).reveal() == "v"


def test_load_or_create_reads_a_key_file_written_by_someone_else(tmp_path: Path) -> None:
    identity = x25519.Identity.generate()
    key_file = tmp_path / KEY_FILE
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{identity}\n")
    box = SecretBox.load_or_create(tmp_path)
    assert SecretBox(identity).open(box.seal("v", PURPOSE), PURPOSE).reveal() == "v"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not-a-key-but-a-password-hunter2",
        "AGE-SECRET-KEY-1NOTVALIDHUNTER2",
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",  # a public key
    ],
)
def test_from_key_refuses_garbage_without_echoing_it(garbage: str) -> None:
    with pytest.raises(SecretBoxError) as e:
        SecretBox.from_key(garbage)
    message = str(e.value)
    assert "age identity" in message
    if garbage:
        assert garbage not in message
    assert "hunter2" not in message
    assert e.value.__cause__ is None
    assert e.value.__suppress_context__


def test_a_corrupt_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE
    key_file.write_text("hunter2-not-a-key\n")
    key_file.chmod(0o600)
    with pytest.raises(SecretBoxError) as e:
        SecretBox.load_or_create(tmp_path)
    assert "hunter2" not in str(e.value)


def test_secrets_never_print() -> None:
    secret = Secret("x")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret]), repr({"k": secret})):
        assert "x" not in text
    long = Secret("hunter2-token")
    assert "hunter2" not in repr(long) + str(long) + f"{long}"
    assert not hasattr(long, "__dict__")  # slots: no vars() to dump


def test_secretbox_repr_hides_the_key() -> None:
    identity = x25519.Identity.generate()
    box = SecretBox(identity)
    key = str(identity)
    for text in (repr(box), str(box), f"{box}"):
        assert key not in text
        assert "AGE-SECRET-KEY" not in text
    assert repr(box) == "SecretBox(key hidden)"


@settings(max_examples=60, deadline=None)
@given(st.text(), st.text(min_size=1, max_size=40))
def test_any_text_round_trips(plaintext: str, purpose: str) -> None:
    sealed = BOX.seal(plaintext, purpose)
    assert BOX.open(sealed, purpose).reveal() == plaintext
