"""bench/peers.py's table: every metric a row, each tool's median and each peer's ratio to Moorage."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peers.py"


def peers_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module
    spec.loader.exec_module(module)
    return module


def test_the_table_has_a_row_per_metric_with_values_and_ratios() -> None:
    peers = peers_module()
    ours = dict.fromkeys(peers.METRICS, 2.0) | {"idle_requests": 0}
    theirs = dict.fromkeys(peers.METRICS, 5.0)
    out = {
        "n": 20,
        "runs": 3,
        "idle_s": 60,
        "date": "2026-12-03 12:00 UTC",
        "machine": "x86_64, 2 CPUs",
        "moorage": ours,
        "flux": theirs,
        "ratios_vs_moorage": {"flux": {m: (None if m == "idle_requests" else 2.5) for m in peers.METRICS}},
    }
    lines = peers.table(out).splitlines()
    assert lines[0] == "20 releases, median of 3 run(s), idle 60 s; 2026-12-03 12:00 UTC, x86_64, 2 CPUs"
    assert lines[2] == "| metric | moorage | flux | flux / moorage |"
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[4:]}
    assert list(rows) == list(peers.METRICS)
    assert rows["deploy_s"] == "| deploy_s | 2 s | 5 s | 2.50x |"
    assert rows["peak_rss_mib"] == "| peak_rss_mib | 2 MiB | 5 MiB | 2.50x |"
    assert rows["idle_requests"] == "| idle_requests | 0 | 5 | n/a |"
