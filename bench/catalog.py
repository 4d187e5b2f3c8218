"""Chart catalog search over 5 Helm repositories of 500 charts each (3 versions per chart), served on
loopback by the devcluster's chart repository server (index.yaml with ETag).

    .venv/bin/python bench/catalog.py [--registries 5] [--charts 500] [--runs 7]

Cold: a new catalog (empty cache) searches every registry (each index.yaml downloaded and parsed).
Warm: the same search again (each index asked with If-None-Match, answered 304: nothing downloaded).
Prints one JSON object: median cold and warm milliseconds, index bytes per registry, the Python heap
the cache holds after a cold search (tracemalloc, one run), and the 304s seen by the servers. Almost
all of a cold search is composing the YAML of index.yaml in Python (~1 s per 0.5 MB here)."""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from moorage.charts.source import RegistryAuth
from moorage.devcluster.chartsources import ChartRepo, serve_chart_repo
from moorage.server.catalog import Catalog, GlobalRegistry

WORDS = ["web", "db", "cache", "queue", "proxy", "metrics", "logs", "auth", "api", "batch"]


def index(registry: int, charts: int) -> dict[str, Any]:
    entries = {}
    for c in range(charts):
        name = f"{WORDS[c % len(WORDS)]}-{registry}-{c}"
        entries[name] = [
            {
                "apiVersion": "v2",
                "name": name,
                "version": f"1.{v}.0",
                "appVersion": f"2.{v}",
                "created": f"2026-11-{10 + v:02d}T10:00:00Z",
                "description": f"The {name} chart, version {v}",
                "keywords": [WORDS[c % len(WORDS)], "bench"],
                "digest": f"{c:064x}",
                "urls": [f"{name}-1.{v}.0.tgz"],
            }
            for v in (2, 1, 0)
        ]
    return {"apiVersion": "v1", "entries": entries, "generated": "2026-12-02T00:00:00Z"}


async def no_auth(_registry: GlobalRegistry) -> RegistryAuth | None:
    return None


async def search(catalog: Catalog, query: str) -> tuple[float, int]:
    started = time.perf_counter()
    found = await catalog.search(query)
    return (time.perf_counter() - started) * 1000, int(found["total"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registries", type=int, default=5)
    parser.add_argument("--charts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        repos: list[ChartRepo] = []
        sizes = []
        for r in range(args.registries):
            directory = Path(tmp) / f"repo-{r}"
            directory.mkdir()
            text = yaml.safe_dump(index(r, args.charts), sort_keys=False)
            (directory / "index.yaml").write_text(text)
            sizes.append(len(text))
            repos.append(stack.enter_context(serve_chart_repo(directory)))
        registries = [GlobalRegistry(name=f"repo-{i}", url=repo.url) for i, repo in enumerate(repos)]

        cold, warm = [], []
        total = 0
        for _ in range(args.runs):
            catalog = Catalog(registries, no_auth)
            ms, total = asyncio.run(search(catalog, "web"))
            cold.append(ms)
            for _ in range(3):
                ms, again = asyncio.run(search(catalog, "web"))
                assert again == total
                warm.append(ms)
        # the heap a filled cache holds, in a run of its own (tracing slows every allocation)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        catalog = Catalog(registries, no_auth)
        asyncio.run(search(catalog, "web"))
        heap = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        not_modified = sum(s == 304 for repo in repos for _, s in repo.requests.entries)
    print(
        json.dumps(
            {
                "registries": args.registries,
                "charts_per_registry": args.charts,
                "versions_per_chart": 3,
                "matches": total,
                "index_bytes_per_registry": int(statistics.median(sizes)),
                "cold_search_ms_median": round(statistics.median(cold), 1),
                "warm_search_ms_median": round(statistics.median(warm), 1),
                "cache_heap_mib": round(heap / (1 << 20), 2),
                "not_modified_answers": not_modified,
                "runs": args.runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
