"""TLS of the control plane, the pure parts: the embedded NATS's CA and server certificate
(server/pki.py), the nats-server config's tls block, and the HTTPS settings."""

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import ValidationError

from moorage.server.main import uvicorn_config
from moorage.server.nats_embedded import render_config
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki, PkiError, subject_alt_names, tls_hosts
from moorage.server.settings import ServerSettings


def test_tls_hosts_are_loopback_the_machine_and_every_configured_host() -> None:
    hosts = tls_hosts(
        agent_nats_url="tls://moorage.moorage.svc:4222",
        public_url="https://Moorage.Example.com./ui",
        listen_host="10.0.0.5",
        extra=[" nats.example.net", "", "127.0.0.1", "2001:db8::7"],
        hostname="moorage-0",
    )
    assert hosts == [
        "localhost",
        "127.0.0.1",
        "::1",
        "moorage-0",
        "moorage.moorage.svc",
        "moorage.example.com",
        "10.0.0.5",
        "nats.example.net",
        "2001:db8::7",
    ]
    # a wildcard listen address names nothing; bracketed IPv6 URLs give the bare address
    assert tls_hosts(listen_host="0.0.0.0", agent_nats_url="tls://[fd00::1]:4222", hostname="h") == [  # noqa: S104
        *LOOPBACK_HOSTS,
        "h",
        "fd00::1",
    ]


def test_addresses_are_ip_entries_and_names_dns_entries() -> None:
    names = subject_alt_names(["localhost", "127.0.0.1", "::1", "nats.example.com", "*.svc.example"])
    assert names == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("nats.example.com"),
        x509.DNSName("*.svc.example"),
    ]
    for bad in ("nats example", "-bad.example", "a..b", "x" * 64 + ".example", "ünï.example", "a*.b"):
        with pytest.raises(PkiError, match="neither an IP address nor a DNS name"):
            subject_alt_names([bad])


def test_the_ca_is_made_once_private_and_the_server_certificate_names_every_host(tmp_path: Path) -> None:
    pki = NatsPki(tmp_path / "tls")
    pki.ensure([*LOOPBACK_HOSTS, "moorage.moorage.svc", "10.1.2.3"])
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    for path in (pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key):
        assert path.stat().st_mode & 0o777 == 0o600, path
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "moorage.moorage.svc"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1", "10.1.2.3"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    # the next start: the same CA (agents keep trusting it), a new server certificate and key
    ca_pem, key_pem, server_key = pki.ca_pem(), pki.ca_key.read_bytes(), pki.server_key.read_bytes()
    pki.ensure([*LOOPBACK_HOSTS, "nats.example.com"])
    assert (pki.ca_pem(), pki.ca_key.read_bytes()) == (ca_pem, key_pem)
    assert pki.server_key.read_bytes() != server_key
    again = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    again.verify_directly_issued_by(ca)
    assert "nats.example.com" in again.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)


def test_an_unreadable_ca_is_an_error_saying_what_to_do(tmp_path: Path) -> None:
    pki = NatsPki(tmp_path / "tls")
    pki.ensure(LOOPBACK_HOSTS)
    pki.ca_key.write_text("not a key")
    with pytest.raises(PkiError, match=r"move ca\.crt and ca\.key away"):
        pki.ensure(LOOPBACK_HOSTS)


def _handshake(pki: NatsPki, hostname: str, context: ssl.SSLContext) -> None:
    """A real TLS handshake against the server certificate, over a socket pair."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.server_cert, pki.server_key)
    a, b = socket.socketpair()
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as e:
            failure.append(e)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with context.wrap_socket(b, server_hostname=hostname) as s:
            s.sendall(b"x")
    finally:
        thread.join(5)


def test_clients_trusting_the_ca_accept_each_named_host_and_nothing_else(tmp_path: Path) -> None:
    pki = NatsPki(tmp_path / "tls")
    pki.ensure([*LOOPBACK_HOSTS, "moorage.moorage.svc"])
    trusting = ssl.create_default_context(cadata=pki.ca_pem())
    for host in ("127.0.0.1", "localhost", "moorage.moorage.svc"):
        _handshake(pki, host, trusting)
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        _handshake(pki, "other.example", trusting)
    other = NatsPki(tmp_path / "other")
    other.ensure(LOOPBACK_HOSTS)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(pki, "127.0.0.1", ssl.create_default_context(cadata=other.ca_pem()))


def test_the_nats_config_requires_tls_first(tmp_path: Path) -> None:
    pki = NatsPki(tmp_path / "tls")
    config = render_config(4222, 8222, tmp_path / "js", "$2b$hash", [], pki)
    assert config["tls"] == {
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "handshake_first": True,
        "timeout": 5,
    }
    assert "tls" not in render_config(4222, 8222, tmp_path / "js", "$2b$hash", [])


def test_https_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = NatsPki(tmp_path / "tls")
    pki.ensure(LOOPBACK_HOSTS)
    settings = ServerSettings(data_dir=tmp_path, tls_cert=pki.server_cert, tls_key=pki.server_key, port=8443)
    assert settings.base_url() == "https://127.0.0.1:8443"
    # behind TLS termination the public URL is the https one
    assert (
        ServerSettings(data_dir=tmp_path, public_url="https://m.example/").base_url() == "https://m.example"
    )
    config = uvicorn_config(object(), settings)  # type: ignore[arg-type]
    assert (config.ssl_certfile, config.ssl_keyfile) == (pki.server_cert, pki.server_key)
    assert uvicorn_config(object(), ServerSettings(data_dir=tmp_path)).ssl_certfile is None  # type: ignore[arg-type]

    with pytest.raises(ValidationError, match="both --tls-cert and --tls-key"):
        ServerSettings(data_dir=tmp_path, tls_cert=pki.server_cert)
    with pytest.raises(ValidationError, match="no such file"):
        ServerSettings(data_dir=tmp_path, tls_cert=tmp_path / "nope.crt", tls_key=pki.server_key)
    with pytest.raises(ValidationError, match="must start with https://"):
        ServerSettings(data_dir=tmp_path, public_url="moorage.example.com")

    monkeypatch.setenv("MOORAGE_TLS_CERT", str(pki.server_cert))
    monkeypatch.setenv("MOORAGE_TLS_KEY", str(pki.server_key))
    monkeypatch.setenv("MOORAGE_NATS_CA", str(pki.ca_cert))
    monkeypatch.setenv("MOORAGE_NATS_TLS_HOSTS", "nats.example.com")
    from_env = ServerSettings.from_env(data_dir=tmp_path)
    assert (from_env.tls_cert, from_env.tls_key) == (pki.server_cert, pki.server_key)
    assert (from_env.nats_ca, from_env.nats_tls_hosts) == (pki.ca_cert, "nats.example.com")


def test_agents_are_told_tls_for_the_embedded_nats(tmp_path: Path) -> None:
    from moorage.server.main import agent_nats_url
    from moorage.server.nats_embedded import EmbeddedNats

    embedded = EmbeddedNats(tmp_path / "nats")
    settings = ServerSettings(data_dir=tmp_path)
    assert agent_nats_url(settings, embedded, embedded.url) == f"tls://127.0.0.1:{embedded.port}"
    # an older chart value names nats://: the embedded NATS speaks TLS only, so agents get tls://
    old = ServerSettings(data_dir=tmp_path, agent_nats_url="nats://moorage.moorage.svc:4222")
    assert agent_nats_url(old, embedded, embedded.url) == "tls://moorage.moorage.svc:4222"
    # an external NATS's URL is handed out as it is (the agent decides whether it may use it)
    external = ServerSettings(data_dir=tmp_path, nats_url="nats://nats.example.com:4222")
    assert agent_nats_url(external, None, "nats://nats.example.com:4222") == "nats://nats.example.com:4222"
