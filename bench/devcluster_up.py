"""Devcluster numbers for the README: `up` time (API ready and nodes Ready) and idle memory.

    .venv/bin/python bench/devcluster_up.py [--runs 5] [--nodes 3] [--idle 30]

Prints one JSON object: each run's seconds, their median, the resident memory (RSS) of each component
after `--idle` seconds, and the recorded cold build time of each cached binary set."""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from moorage import devcluster


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build_seconds() -> dict[str, int]:
    cache = Path(os.environ.get("MOORAGE_CACHE", Path.home() / ".cache" / "moorage")) / "bin"
    found = {}
    for marker in sorted(cache.glob("*/.build-seconds")):
        found[marker.parent.name] = int(marker.read_text().strip())
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()

    os.environ["MOORAGE_DEVCLUSTER_HOME"] = tempfile.mkdtemp(prefix="moorage-bench-")
    seconds = []
    memory: dict[str, float] = {}
    for i in range(args.runs):
        started = time.monotonic()
        cluster = devcluster.up(f"bench-{i}", nodes=args.nodes)
        seconds.append(round(time.monotonic() - started, 2))
        try:
            if i == args.runs - 1:
                time.sleep(args.idle)
                memory = {p.component: round(rss_mib(p.pid), 1) for p in cluster.processes}
        finally:
            devcluster.down(cluster.name)
    print(
        json.dumps(
            {
                "up_seconds": seconds,
                "up_seconds_median": statistics.median(seconds),
                "nodes": args.nodes,
                "idle_rss_mib": memory,
                "idle_rss_mib_total": round(sum(memory.values()), 1),
                "cold_build_seconds": build_seconds(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
