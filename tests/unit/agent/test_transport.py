"""The agent's rule for where its token may go (agent/transport.py): encrypted, or plain only to
loopback, or plain anywhere with --insecure (and a warning)."""

import ssl
from pathlib import Path

import httpx
import pytest

from moorage.agent.transport import (
    TransportRefused,
    check_url,
    client_context,
    explain_tls_failure,
    is_loopback,
)
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki

# url, what, insecure -> "tls" | "plain" | "plain+warning" | refused message fragment
RULES = [
    ("https://moorage.example.com", "server", False, "tls"),
    ("https://10.0.0.5:8443", "server", False, "tls"),
    ("http://127.0.0.1:8000", "server", False, "plain"),
    ("http://127.9.9.9:8000", "server", False, "plain"),
    ("http://localhost:8000", "server", False, "plain"),
    ("http://[::1]:8000", "server", False, "plain"),
    ("http://moorage.example.com", "server", False, "refusing to send the agent token in plain text"),
    ("http://10.0.0.5:8000", "server", False, "use https://10.0.0.5:8000"),
    ("http://[fd00::5]:8000", "server", False, "use https://[fd00::5]:8000"),
    ("http://127.0.0.1.example.com", "server", False, "refusing"),  # a name, not loopback
    ("http://0x7f000001", "server", False, "refusing"),
    ("http://moorage.example.com", "server", True, "plain+warning"),
    ("ftp://moorage.example.com", "server", False, "is not https://HOST"),
    ("moorage.example.com", "server", False, "is not https://HOST"),
    ("https://", "server", False, "names no host"),
    ("tls://nats.example.com:4222", "NATS", False, "tls"),
    ("wss://nats.example.com", "NATS", False, "tls"),
    ("nats://127.0.0.1:4222", "NATS", False, "plain"),
    ("ws://localhost:8080", "NATS", False, "plain"),
    ("nats://nats.example.com:4222", "NATS", False, "give the NATS server TLS"),
    ("ws://10.0.0.5:8080", "NATS", False, "refusing"),
    ("nats://nats.example.com:4222", "NATS", True, "plain+warning"),
    ("tcp://nats.example.com:4222", "NATS", False, "is not tls://HOST:PORT"),
]


@pytest.mark.parametrize(("url", "what", "insecure", "expected"), RULES)
def test_where_the_token_may_go(url: str, what: str, insecure: bool, expected: str) -> None:
    if expected in ("tls", "plain", "plain+warning"):
        verdict = check_url(url, what=what, insecure=insecure)
        assert verdict.tls == (expected == "tls")
        assert (verdict.warning is not None) == (expected == "plain+warning")
        if verdict.warning:
            assert "--insecure" in verdict.warning
            assert url in verdict.warning
        return
    with pytest.raises(TransportRefused) as refused:
        check_url(url, what=what, insecure=insecure)
    assert expected in str(refused.value)
    if "refusing" in str(refused.value):
        assert "--insecure" in str(refused.value)  # says what else to do
        assert f"the {what} at {url}" in str(refused.value)


def test_loopback() -> None:
    assert all(
        is_loopback(h) for h in ("localhost", "LOCALHOST.", "x.localhost", "127.0.0.1", "[::1]", "::1")
    )
    assert not any(is_loopback(h) for h in ("10.0.0.1", "::", "0.0.0.0", "localhost.example", "example"))  # noqa: S104


def test_the_ca_given_is_the_only_one_trusted(tmp_path: Path) -> None:
    pki = NatsPki(tmp_path / "pki")
    pki.ensure(LOOPBACK_HOSTS)
    for context in (client_context(pki.ca_cert), client_context(ca_pem=pki.ca_pem())):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert [c["subject"] for c in context.get_ca_certs()] == [
            ((("commonName", "moorage embedded NATS CA"),),)
        ]
    # a file wins over the CA the server handed out
    other = NatsPki(tmp_path / "other")
    other.ensure(LOOPBACK_HOSTS)
    assert len(client_context(other.ca_cert, pki.ca_pem()).get_ca_certs()) == 1
    with pytest.raises(TransportRefused, match="cannot read the CA file"):
        client_context(tmp_path / "missing.crt")
    with pytest.raises(TransportRefused, match="not a PEM certificate"):
        client_context(ca_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_an_untrusted_certificate_is_explained_through_the_error_chain() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    wrapped = httpx.ConnectError("boom")
    wrapped.__cause__ = cause
    message = explain_tls_failure(wrapped, what="server", url="https://m.example", ca_hint="use --ca FILE")
    assert message == (
        "the server at https://m.example presented a certificate the agent does not trust "
        "(unable to get local issuer certificate); use --ca FILE"
    )
    assert explain_tls_failure(httpx.ConnectError("refused"), what="server", url="u", ca_hint="h") is None
