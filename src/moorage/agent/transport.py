"""What the agent agrees to connect to: its token crosses both the HTTP connection to the server (as a
bearer token) and the NATS connection (as the password), so neither may be plain text unless it stays
on this machine (loopback) or the operator said `--insecure`. Pure decisions plus the TLS contexts."""

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SECURE_SCHEMES = {"https": "http", "tls": "nats", "wss": "ws"}  # secure scheme -> its plain twin
PLAIN_SCHEMES = {plain: secure for secure, plain in SECURE_SCHEMES.items()}
INSECURE_ENV = "MOORAGE_AGENT_INSECURE"


class TransportRefused(ValueError):
    """A URL the agent will not send its token to; the message says what to do instead."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Verdict:
    tls: bool  # connect with TLS
    warning: str | None = None  # plain text allowed by --insecure: say so once


def check_url(url: str, *, what: str, insecure: bool) -> Verdict:
    """`url` (the server's http(s):// or NATS's nats|tls|ws|wss://) may carry the token when it is
    encrypted, or plain to loopback, or plain anywhere with `insecure` (with a warning)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise TransportRefused(f"the {what} URL {url!r} is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme in SECURE_SCHEMES:
        if not host:
            raise TransportRefused(f"the {what} URL {url!r} names no host")
        return Verdict(tls=True)
    if scheme not in PLAIN_SCHEMES or not host:
        expected = "https://HOST" if what == "server" else "tls://HOST:PORT"
        raise TransportRefused(f"the {what} URL {url!r} is not {expected}")
    if is_loopback(host):
        return Verdict(tls=False)
    secure = PLAIN_SCHEMES[scheme]
    if insecure:
        return Verdict(
            tls=False,
            warning=f"--insecure: the agent token goes to the {what} at {url} in plain text",
        )
    if what == "server":
        fix = (
            f"use {secure}://{parts.netloc} (serve HTTPS with `moorage server --tls-cert FILE "
            "--tls-key FILE`, or terminate TLS in front of it; --ca FILE / MOORAGE_CA for a private CA)"
        )
    else:
        fix = (
            "give the NATS server TLS and tell agents a tls:// URL (the embedded NATS of `moorage server` "
            "has TLS; for your own NATS: `--nats-url tls://…` and `--nats-ca FILE` on the server)"
        )
    raise TransportRefused(
        f"refusing to send the agent token in plain text to the {what} at {url}: {fix}; "
        f"or, on a network you trust, pass --insecure (${INSECURE_ENV}=1)"
    )


def client_context(ca_file: Path | None = None, ca_pem: str | None = None) -> ssl.SSLContext:
    """A TLS client context trusting only `ca_file`, else only `ca_pem`, else the system's CAs."""
    if ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as e:
            raise TransportRefused(f"cannot read the CA file {ca_file}: {e}") from None
    elif ca_pem is not None:
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except ssl.SSLError as e:
            raise TransportRefused(f"the CA the server handed out is not a PEM certificate: {e}") from None
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def explain_tls_failure(error: BaseException, *, what: str, url: str, ca_hint: str) -> str | None:
    """A clear message for a certificate the agent does not trust (None: not a certificate error)."""
    seen: BaseException | None = error
    for _ in range(8):  # the ssl error may be the cause of an httpx or nats error
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            reason = seen.verify_message or seen.reason or str(seen)
            return (
                f"the {what} at {url} presented a certificate the agent does not trust ({reason}); {ca_hint}"
            )
        seen = seen.__cause__ or seen.__context__
    return None
