"""Per-agent permissions on an external NATS (issue 19 item 3): the nats-server configuration that
docs/security.md gives ("An external NATS: one user per agent"), read from that page, run by a real
nats-server; a real `moorage server` on it and a real agent of cluster A on the devcluster work, and
a connection as agent A is refused B's subjects (permissions violation) and the replicas' fan-out."""

import asyncio
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import nats
import pytest

from moorage.devcluster import DevCluster
from moorage.server.nats_embedded import find_nats_server
from moorage.spec import kubeproxy, protocol
from tests.integration.control_plane_support import Agents, Server, free_port, register, wait_state

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
SERVER_USER = "moorage-server"


def documented_config() -> str:
    text = DOC.read_text()
    marker = text.index("<!-- external-nats-config -->")
    block = re.search(r"```\n(.*?)```", text[marker:], re.DOTALL)
    assert block, "the configuration block after <!-- external-nats-config --> in docs/security.md"
    return block.group(1)


AGENT_ENTRY = re.compile(r'^ *\{ user: "agent-CLUSTER_ID".*?^ *\} \}\n', re.DOTALL | re.MULTILINE)


def _hash(secret: str) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=10)).decode()


def render(template: str, listen: str, store: Path, server_password: str, agents: dict[str, str]) -> str:
    """The documented configuration with its placeholders filled: one agent entry per cluster id."""
    entry = AGENT_ENTRY.search(template)
    assert entry, "the documented configuration has an agent-CLUSTER_ID user"
    entries = "".join(
        entry.group(0).replace("CLUSTER_ID", cid).replace("AGENT_TOKEN_BCRYPT", _hash(token))
        for cid, token in agents.items()
    )
    config = template.replace(entry.group(0), entries)
    config = config.replace("SERVER_PASSWORD_BCRYPT", _hash(server_password))
    return config.replace("STORE_DIR", str(store)).replace("LISTEN", listen)


def _quoted(section: str) -> set[str]:
    return set(re.findall(r'"([^"]+)"', section))


def test_the_documented_permissions_are_the_agents_own_subjects() -> None:
    entry = AGENT_ENTRY.search(documented_config())
    assert entry
    text = entry.group(0)
    publish = text[text.index("publish:") : text.index("subscribe:")]
    subscribe = text[text.index("subscribe:") :]
    wanted = protocol.agent_permissions("CLUSTER_ID")
    assert _quoted(publish) == set(wanted["publish"]["allow"])
    assert _quoted(subscribe) == set(wanted["subscribe"]["allow"])


class NatsServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.conf = base / "nats.conf"
        self.server_password = secrets.token_urlsafe(24)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write(self, agents: dict[str, str]) -> None:
        self.conf.write_text(
            render(
                documented_config(), f"127.0.0.1:{self.port}", self.base / "js", self.server_password, agents
            )
        )

    def start(self) -> None:
        log = (self.base / "nats.log").open("ab")
        self.proc = subprocess.Popen([find_nats_server(), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, (self.base / "nats.log").read_text()[-3000:]
            time.sleep(0.05)
        raise AssertionError("nats-server did not start")

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)  # `nats-server --signal reload`
        time.sleep(1)
        assert self.proc.poll() is None, (self.base / "nats.log").read_text()[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def external_nats(tmp_path: Path) -> Iterator[NatsServer]:
    (tmp_path / "nats").mkdir()
    server = NatsServer(tmp_path / "nats")
    server.write({})  # no cluster yet: the server's user only
    server.start()
    yield server
    server.stop()


async def _violations(url: str, cluster_id: str, token: str, other: str) -> tuple[list[str], list[str]]:
    """Connect as agent `cluster_id`; try its own subjects, then `other`'s and the server's; the
    permission errors nats-server sent for each group."""
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(
        url,
        user=f"agent-{cluster_id}",
        password=token,
        inbox_prefix=protocol.agent_inbox(cluster_id).encode(),
        error_cb=on_error,
        max_reconnect_attempts=0,
        allow_reconnect=False,
    )
    try:
        # its own: no error
        await nc.subscribe(protocol.control_subject(cluster_id))
        await nc.subscribe(kubeproxy.kube_to_agent_subject(cluster_id))
        await nc.publish(protocol.heartbeat_subject(cluster_id), b"{}")
        await nc.flush()
        await asyncio.sleep(0.5)
        own = list(errors)
        errors.clear()
        # the other agent's, and the replicas' fan-out
        for subject in (
            protocol.control_subject(other),
            kubeproxy.kube_to_agent_subject(other),
            f"{protocol.agent_inbox(other)}.>",
            protocol.jobs_subject(other),
        ):
            await nc.subscribe(subject)
        for subject in (
            protocol.results_subject(other),
            protocol.state_subject(other),
            protocol.heartbeat_subject(other),
            f"$JS.API.CONSUMER.MSG.NEXT.{protocol.JOBS_STREAM}.{protocol.agent_consumer(other)}",
            f"$JS.ACK.{protocol.JOBS_STREAM}.{protocol.agent_consumer(other)}.1.1.1.1.1",
            "moorage.server.fanout.events",
        ):
            await nc.publish(subject, b"{}")
        await nc.flush()
        deadline = time.monotonic() + 10
        while len(errors) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return own, list(errors)
    finally:
        await nc.close()


@pytest.mark.timeout(300)
def test_an_agent_on_the_documented_external_nats_works_and_cannot_touch_another_agents_subjects(
    external_nats: NatsServer, agents: Agents, cluster: DevCluster, tmp_path: Path
) -> None:
    port = free_port()
    (tmp_path / "server").mkdir()
    server = Server(
        f"http://127.0.0.1:{port}",
        tmp_path / "server",
        port,
        env={"MOORAGE_NATS_USER": SERVER_USER, "MOORAGE_NATS_PASSWORD": external_nats.server_password},
        args=["--nats-url", external_nats.url],
    )
    server.start()
    try:
        tokens = {name: register(server, name) for name in ("ext-a", "ext-b")}
        ids = {name: server.api("GET", f"/clusters/{name}").json()["id"] for name in tokens}
        # the operator's step after registering: one user per cluster, then a reload
        external_nats.write({ids[name]: tokens[name] for name in tokens})
        external_nats.reload()

        agents.start(server, tokens["ext-a"], cluster.kubeconfig)
        wait_state(server, "ext-a", "online")  # heartbeats reach the server
        kinds = server.api("GET", "/clusters/ext-a/kinds")  # a read job: the queue, the agent, the result
        assert kinds.status_code == 200, kinds.text
        assert "Deployment" in kinds.text, kinds.text[:500]

        own, refused = asyncio.run(
            _violations(external_nats.url, ids["ext-a"], tokens["ext-a"], ids["ext-b"])
        )
        assert own == []
        assert all("permissions violation" in e.lower() for e in refused), refused
        b = ids["ext-b"]
        for what in (
            f'Subscription to "moorage.control.{b}"',
            f'Subscription to "moorage.kube.{b}"',
            f'Subscription to "_INBOX_{b}.>"',
            f'Subscription to "moorage.jobs.{b}"',
            f'Publish to "moorage.results.{b}"',
            f'Publish to "moorage.state.{b}"',
            f'Publish to "agent.heartbeat.native_reconcile.{b}"',
            f'Publish to "$JS.API.CONSUMER.MSG.NEXT.MOORAGE_JOBS.agent-{b}"',
            'Publish to "moorage.server.fanout.events"',
        ):
            assert any(what.lower() in e.lower() for e in refused), (what, refused)
        # B's token is not A's password, nor A's user B's
        wrong = asyncio.run(_connect_fails(external_nats.url, ids["ext-a"], tokens["ext-b"]))
        assert "authorization" in wrong.lower(), wrong
        log = (tmp_path / "server" / "server.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        server.stop()


async def _connect_fails(url: str, cluster_id: str, password: str) -> str:
    try:
        nc = await nats.connect(
            url,
            user=f"agent-{cluster_id}",
            password=password,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    await nc.close()
    return "connected"
