"""The embedded NATS's certificates: a CA made at the first start and kept in the data directory (agents
trust it), and a server certificate issued from it at every start, naming loopback and every host name
or address agents are told to use. EC P-256 keys (generated in about a millisecond); private keys are
written 0600 in a 0700 folder and never leave it."""

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 20 * 365
SERVER_DAYS = 5 * 365  # reissued at every start, so the CA's life is what counts
_BACKDATE = datetime.timedelta(minutes=5)  # clocks of agents a little behind still accept it


class PkiError(RuntimeError):
    pass


def _host_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        return None


def tls_hosts(
    *,
    agent_nats_url: str | None = None,
    public_url: str | None = None,
    listen_host: str | None = None,
    extra: Iterable[str] = (),
    hostname: str | None = None,
) -> list[str]:
    """The names and addresses the embedded NATS's certificate is valid for, in a stable order without
    duplicates: loopback, the machine's host name, the host of the NATS URL agents are told, of the
    server's public URL, the address it listens on (unless a wildcard), and `extra`
    (MOORAGE_NATS_TLS_HOSTS)."""
    wanted = [*LOOPBACK_HOSTS, hostname if hostname is not None else socket.gethostname()]
    wanted += [_host_of(agent_nats_url) or "", _host_of(public_url) or ""]
    if listen_host not in (None, "", "0.0.0.0", "::"):  # noqa: S104 (compared, not bound)
        wanted.append(listen_host.strip("[]"))
    wanted += [e.strip() for e in extra]
    seen: dict[str, None] = {}
    for host in wanted:
        host = host.strip().lower().rstrip(".")
        if host:
            seen.setdefault(host, None)
    return list(seen)


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    """An IP address entry for each address (IPv6 included), a DNS entry for each name."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            if not _valid_dns_name(host):
                raise PkiError(
                    f"{host!r} is neither an IP address nor a DNS name: fix MOORAGE_NATS_TLS_HOSTS "
                    "or the agent NATS URL"
                ) from None
            names.append(x509.DNSName(host))
    return names


def _valid_dns_name(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = host.split(".")
    return all(
        0 < len(label) <= 63
        and ((label == "*" and i == 0) or all(c.isalnum() or c == "-" for c in label))
        and label.isascii()
        and not label.startswith("-")
        and not label.endswith("-")
        for i, label in enumerate(labels)
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class NatsPki:
    """`<dir>/ca.crt`, `ca.key`, `server.crt`, `server.key` (all 0600, `dir` 0700)."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def ca_pem(self) -> str:
        return self.ca_cert.read_text()

    def ensure(self, hosts: Sequence[str]) -> None:
        """The CA (made once), and a new server certificate for `hosts`."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        ca_cert, ca_key = self._load_or_make_ca()
        self._issue(ca_cert, ca_key, hosts)

    def _load_or_make_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self.ca_cert.exists() and self.ca_key.exists():
            try:
                cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
                key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
            except ValueError as e:
                raise PkiError(
                    f"the embedded NATS's CA in {self.dir} cannot be read ({e}); move ca.crt and ca.key "
                    "away to make a new one (every agent then needs the new CA)"
                ) from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{self.ca_key} is not an EC key")
            return cert, key
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moorage embedded NATS CA")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.ca_key, pem_key)
        _write_private(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def _issue(
        self, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: Sequence[str]
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moorage embedded NATS")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + datetime.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(self.server_key, pem_key)
        _write_private(self.server_cert, cert.public_bytes(serialization.Encoding.PEM))
