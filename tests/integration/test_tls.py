"""TLS between the agent, the CLI and the control plane, with real processes: `moorage server` over
HTTPS (--tls-cert/--tls-key), its embedded nats-server with TLS from the CA it made, an external
nats-server with TLS, agents and the CLI trusting only the CA they are given, and the agent's refusal
of plain text beyond loopback."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from moorage.server.nats_embedded import find_nats_server
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki
from tests.integration.control_plane_support import ADMIN, Agents, Server, free_port, register, wait_state
from tests.unit.charts.test_charts import pod_address

# the agent needs a kubeconfig; none of this talks to Kubernetes (heartbeats do not need it)
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-used}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls")
    (path / "kubeconfig").write_text(KUBECONFIG)
    return path


@pytest.fixture(scope="module")
def trusted(base: Path) -> NatsPki:
    """A private CA and a certificate for loopback (and this machine's address) made by it."""
    pki = NatsPki(base / "trusted")
    pki.ensure([*LOOPBACK_HOSTS, *pod_address()])
    return pki


@pytest.fixture(scope="module")
def other(base: Path) -> NatsPki:
    """Another CA: what an agent given the wrong file trusts."""
    pki = NatsPki(base / "other")
    pki.ensure(LOOPBACK_HOSTS)
    return pki


@pytest.fixture(scope="module")
def https_server(base: Path, trusted: NatsPki) -> Iterator[Server]:
    port = free_port()
    tls = ["--tls-cert", str(trusted.server_cert), "--tls-key", str(trusted.server_key)]
    srv = Server(f"https://127.0.0.1:{port}", base / "https-server", port, args=tls, ca=trusted.ca_cert)
    srv.data_dir.mkdir()
    srv.start()
    yield srv
    srv.stop()


def run_agent(
    server_url: str, token: str, base: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """An agent that is expected to exit by itself."""
    argv = [sys.executable, "-m", "moorage.cli.main", "agent", "--server", server_url]
    argv += ["--kubeconfig", str(base / "kubeconfig"), "--health-port", str(free_port()), *args]
    env = {**os.environ, "MOORAGE_AGENT_TOKEN": token}
    env.pop("MOORAGE_CA", None)
    env.pop("MOORAGE_NATS_CA", None)
    env.pop("MOORAGE_AGENT_INSECURE", None)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_an_agent_reaches_the_https_server_and_the_embedded_nats_over_tls(
    https_server: Server, agents: Agents, base: Path
) -> None:
    token = register(https_server, "tls-ok")
    registration = https_server.api("POST", "/agent/register", token=token).json()
    assert registration["nats_url"].startswith("tls://127.0.0.1:")
    ca = (https_server.data_dir / "nats" / "tls" / "ca.crt").read_text()
    assert registration["nats_ca"] == ca  # the embedded NATS's own CA, handed out over HTTPS
    tls_dir = https_server.data_dir / "nats" / "tls"
    assert tls_dir.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in tls_dir.iterdir()} == dict.fromkeys(
        ("ca.crt", "ca.key", "server.crt", "server.key"), 0o600
    )
    conf = (https_server.data_dir / "nats" / "nats.conf").read_text()
    assert '"handshake_first": true' in conf

    agents.start(https_server, token, base / "kubeconfig")  # with --ca: the server's private CA
    wait_state(https_server, "tls-ok", "online")

    # the embedded NATS says nothing to a client that does not begin with TLS: no plain INFO to forge
    # or strip (without handshake_first it would send one at once)
    port = int(registration["nats_url"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=1) as plain, pytest.raises(TimeoutError):
        plain.recv(100)

    async def plain_client() -> None:
        await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, connect_timeout=1)

    with pytest.raises(TimeoutError):
        asyncio.run(plain_client())


def test_an_agent_with_the_wrong_ca_stops_with_a_clear_message(
    https_server: Server, base: Path, other: NatsPki
) -> None:
    token = register(https_server, "tls-wrong")
    # the server's HTTPS certificate, checked against another CA
    agent = run_agent(https_server.url, token, base, "--ca", str(other.ca_cert))
    assert agent.returncode == 1, agent.stderr[-2000:]
    assert (
        f"the server at {https_server.url} presented a certificate the agent does not trust" in agent.stderr
    )
    assert "--ca FILE" in agent.stderr
    assert token not in agent.stderr

    # HTTPS right, but NATS checked against another CA than the one the server hands out
    agent = run_agent(
        https_server.url, token, base, "--ca", str(https_server.ca), "--nats-ca", str(other.ca_cert)
    )
    assert agent.returncode == 1, agent.stderr[-2000:]
    assert "the NATS server at tls://127.0.0.1:" in agent.stderr
    assert "presented a certificate the agent does not trust" in agent.stderr
    assert "--nats-ca FILE" in agent.stderr
    assert token not in agent.stderr


@pytest.fixture(scope="module")
def plain_server(base: Path) -> Iterator[Server]:
    """Plain HTTP on every address, with a NATS of its own without TLS that agents are told to reach
    at this machine's address."""
    if not pod_address():
        pytest.skip("this machine has no address but loopback")
    nats_proc, nats_port = nats_server(None, base / "plain-nats")
    port = free_port()
    address = pod_address()[0]
    args = ["--host", "0.0.0.0", "--nats-url", f"nats://127.0.0.1:{nats_port}"]  # noqa: S104
    args += ["--agent-nats-url", f"nats://{address}:{nats_port}"]
    srv = Server(f"http://127.0.0.1:{port}", base / "plain-server", port, args=args)
    srv.data_dir.mkdir()
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        nats_proc.terminate()
        nats_proc.wait(10)


def test_plain_text_beyond_loopback_is_refused_unless_insecure(plain_server: Server, base: Path) -> None:
    token = register(plain_server, "plain")
    address = pod_address()[0]
    url = f"http://{address}:{plain_server.port}"

    agent = run_agent(url, token, base)
    assert agent.returncode == 2, agent.stderr[-2000:]
    assert f"refusing to send the agent token in plain text to the server at {url}" in agent.stderr
    assert f"use https://{address}:{plain_server.port}" in agent.stderr
    assert "--insecure" in agent.stderr
    assert "registered" not in agent.stderr

    # plain http on loopback is allowed (nothing leaves the machine); the plain NATS URL beyond
    # loopback it is then told is refused likewise
    agent = run_agent(plain_server.url, token, base)
    assert agent.returncode == 2, agent.stderr[-2000:]
    nats_url = plain_server.api("POST", "/agent/register", token=token).json()["nats_url"]
    assert nats_url.startswith(f"nats://{address}:")
    assert f"refusing to send the agent token in plain text to the NATS at {nats_url}" in agent.stderr
    assert "tls://" in agent.stderr
    assert token not in agent.stderr


def test_an_insecure_agent_registers_over_plain_http_beyond_loopback(
    base: Path, agents: Agents, tmp_path: Path
) -> None:
    if not pod_address():
        pytest.skip("this machine has no address but loopback")
    port = free_port()
    every_address = ["--host", "0.0.0.0"]  # noqa: S104 - reached at this machine's address
    srv = Server(f"http://127.0.0.1:{port}", tmp_path / "server", port, args=every_address)
    srv.data_dir.mkdir()
    srv.start()
    try:
        token = register(srv, "insecure")
        remote = Server(f"http://{pod_address()[0]}:{port}", srv.data_dir, port)
        agents.start(remote, token, base / "kubeconfig", "--insecure")
        wait_state(srv, "insecure", "online")
        log = (agents.base / "agent-0.log").read_text()
        assert "--insecure: the agent token goes to the server at" in log
    finally:
        srv.stop()


def nats_server(pki: NatsPki | None, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A nats-server of the operator's own (JetStream, no users), with TLS first from `pki`'s
    certificate, or in plain text."""
    port = free_port()
    directory.mkdir()
    conf = directory / "nats.conf"
    tls = ""
    if pki is not None:
        tls = f'tls {{ cert_file: "{pki.server_cert}", key_file: "{pki.server_key}", handshake_first: true }}'
    conf.write_text(
        f'port: {port}\nhost: 127.0.0.1\njetstream {{ store_dir: "{directory / "js"}" }}\n{tls}\n'
    )
    proc = subprocess.Popen(
        [find_nats_server(), "-c", str(conf)],
        stdout=(directory / "log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while "Server is ready" not in (directory / "log").read_text():
        assert proc.poll() is None, (directory / "log").read_text()
        assert time.monotonic() < deadline, "nats-server did not start"
        time.sleep(0.05)
    return proc, port


def test_an_external_nats_with_tls_and_its_ca(base: Path, trusted: NatsPki, agents: Agents) -> None:
    nats_proc, nats_port = nats_server(trusted, base / "external-nats")
    port = free_port()
    args = ["--nats-url", f"tls://127.0.0.1:{nats_port}", "--nats-ca", str(trusted.ca_cert)]
    srv = Server(f"http://127.0.0.1:{port}", base / "external-server", port, args=args)
    srv.data_dir.mkdir()
    try:
        srv.start()
        token = register(srv, "external")
        registration = srv.api("POST", "/agent/register", token=token).json()
        assert registration["nats_url"] == f"tls://127.0.0.1:{nats_port}"
        assert registration["nats_ca"] == trusted.ca_pem()
        assert not (srv.data_dir / "nats").exists()  # no embedded NATS
        agents.start(srv, token, base / "kubeconfig")
        wait_state(srv, "external", "online")
    finally:
        srv.stop()
        nats_proc.terminate()
        nats_proc.wait(10)


def test_the_cli_trusts_a_private_ca_given_with_ca(https_server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "MOORAGE_TOKEN": ADMIN}
    env.pop("MOORAGE_CA", None)
    argv = [sys.executable, "-m", "moorage.cli.main"]
    listing = ["cluster", "list", "--server", https_server.url, "-o", "json"]

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, env={**env, **extra}, timeout=60, check=False
        )

    untrusted = cli(*listing)
    assert untrusted.returncode == 2, untrusted.stderr
    assert "certificate is not trusted: give its CA (`moorage --ca FILE` or $MOORAGE_CA)" in untrusted.stderr

    assert https_server.ca is not None
    trusted = cli("--ca", str(https_server.ca), *listing)
    assert trusted.returncode == 0, trusted.stderr
    assert '"result"' in trusted.stdout
    from_env = cli(*listing, MOORAGE_CA=str(https_server.ca))
    assert from_env.returncode == 0, from_env.stderr
