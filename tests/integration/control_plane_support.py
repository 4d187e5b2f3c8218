"""Running `moorage server` and `moorage agent` as real processes in tests."""

import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gitops-repo"
ADMIN = "mrg_" + "integration-test-bootstrap-token-000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    database_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # more `moorage server` flags (e.g. --tls-cert)
    ca: Path | None = None  # the CA of its HTTPS certificate, trusted by `api` and agents

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else True

    @property
    def cli_env(self) -> dict[str, str]:
        """What a `moorage` CLI process needs to trust this server (besides its token)."""
        return {"MOORAGE_CA": str(self.ca)} if self.ca else {}

    def start(self) -> None:
        log = (self.data_dir / "server.log").open("ab")
        # the tests' Git server and chart sources are on loopback, which a real server refuses
        env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": ADMIN, "MOORAGE_EGRESS_ALLOW": "loopback", **self.env}
        argv = [sys.executable, "-m", "moorage.cli.main", "server", "--port", str(self.port)]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        self.proc = subprocess.Popen(
            [*argv, "--data-dir", str(self.data_dir), *self.args], stdout=log, stderr=log, env=env
        )
        deadline = time.monotonic() + 120  # a loaded 2-core machine starts it slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, (self.data_dir / "server.log").read_text()[-2000:]
            time.sleep(0.2)
        raise AssertionError("server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def api(self, method: str, path: str, token: str = ADMIN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=300, verify=self.verify, **kwargs
        )


class Agents:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, server: Server, token: str, kubeconfig: Path, *args: str) -> subprocess.Popen[bytes]:
        log = (self.base / f"agent-{len(self.procs)}.log").open("ab")
        env = {
            **os.environ,
            "MOORAGE_AGENT_TOKEN": token,
            "SOPS_AGE_KEY_FILE": str(EXAMPLE / "keys" / "test-only.agekey"),
        }
        argv = [sys.executable, "-m", "moorage.cli.main", "agent", "--server", server.url]
        argv += ["--kubeconfig", str(kubeconfig), "--health-port", str(free_port()), *args]
        if server.ca is not None and "--ca" not in args:
            argv += ["--ca", str(server.ca)]
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        self.procs.append(proc)
        return proc


def https(directory: Path) -> tuple[list[str], Path]:
    """`moorage server` flags for HTTPS with a certificate for loopback from a private CA made in
    `directory`, and that CA's file (Server.ca)."""
    from moorage.server.pki import LOOPBACK_HOSTS, NatsPki

    pki = NatsPki(directory)
    pki.ensure(LOOPBACK_HOSTS)
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)], pki.ca_cert


def nats_tls(registration: dict[str, Any]) -> dict[str, Any]:
    """nats.connect's TLS options for what /agent/register answered, as the agent uses them: only the
    CA the server handed out, TLS before nats-server's INFO."""
    if not str(registration["nats_url"]).startswith("tls://"):
        return {}
    context = ssl.create_default_context(cadata=registration["nats_ca"])
    return {"tls": context, "tls_handshake_first": True}


def register(server: Server, name: str) -> str:
    response = server.api("POST", "/clusters", json={"name": name})
    assert response.status_code == 201, response.text
    token: str = response.json()["agent_token"]
    return token


def wait_state(server: Server, name: str, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster: dict[str, Any] = server.api("GET", f"/clusters/{name}").json()
        if cluster["state"] == state:
            return cluster
        time.sleep(0.3)
    raise AssertionError(f"cluster {name} never became {state}")


def wait_operation(server: Server, operation: str, timeout: float = 180) -> dict[str, Any]:
    """The operation once it is no longer pending or running (or as it is when `timeout` runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        op: dict[str, Any] = server.api("GET", f"/operations/{operation}").json()
        if op["state"] not in ("running", "pending") or time.monotonic() > deadline:
            return op
        time.sleep(0.3)


CHAIN = """
apiVersion: v1
kind: ImportCluster
metadata: {{name: crash}}
spec:
  helm_registries:
    - {{name: repo, url: "{url}"}}
  stacks:
    - name: chain
      addons:
{addons}
"""


def chain(url: str, count: int) -> str:
    addons = []
    for i in range(count):
        entry = [
            f"        - name: link-{i}",
            "          chart_name: webapp",
            '          chart_version: "1.0.0"',
            "          registry_name: repo",
            "          namespace: crash",
            "          configuration: {values: {replicaCount: 1}}",
        ]
        if i:
            entry += ["          parents:", f"            - addon: link-{i - 1}"]
        addons += entry
    return CHAIN.format(url=url, addons="\n".join(addons))
