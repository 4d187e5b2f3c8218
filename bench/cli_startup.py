"""Start-up cost of the `moorage` command: wall time and peak RSS of a whole process, start to exit.

    .venv/bin/python bench/cli_startup.py [--runs 5] [--moorage .venv/bin/moorage]

Runs the real entry point (the console script next to this Python, like a user does) for
`moorage --help`, `moorage addons list --help` and `moorage cluster list` against a server URL
nobody listens on (http://127.0.0.1:9: refused at once, exit 2), so each number is the cost of
importing and starting the CLI; then `moorage addons list -c bench` against a real local
`moorage server` (started here, one registered cluster): start-up plus one answered request.
Each child's own peak RSS comes from `os.wait4`. Prints one JSON
object: per command each run's seconds, and the medians of wall seconds, CPU seconds (user + sys)
and peak RSS in MiB."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

UNREACHABLE = "http://127.0.0.1:9"
COMMANDS: dict[str, tuple[list[str], int]] = {
    "moorage --help": (["--help"], 0),
    "moorage addons list --help": (["addons", "list", "--help"], 0),
    f"moorage cluster list --server {UNREACHABLE}": (["cluster", "list", "--server", UNREACHABLE], 2),
}


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A throwaway `moorage server` with one registered cluster; (process, URL, admin token)."""
    import secrets
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "mrg_" + secrets.token_urlsafe(24)
    env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": token}
    argv = [sys.executable, "-m", "moorage.cli.main", "server", "--port", str(port), "--data-dir", str(work)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    headers = {"Authorization": f"Bearer {token}"}
    httpx.post(
        f"{url}/api/v1/clusters", json={"name": "bench"}, headers=headers, timeout=30
    ).raise_for_status()
    return proc, url, token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--moorage",
        type=Path,
        default=Path(sys.executable).parent / "moorage",
        help="The console script to run (default: the one next to this Python).",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("MOORAGE_SERVER", "MOORAGE_TOKEN")}
    env["COLUMNS"] = "120"
    results: dict[str, dict[str, object]] = {}
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="moorage-cli-bench-"))
    server, url, token = start_server(work)
    commands = {
        **COMMANDS,
        "moorage addons list -c bench (a local server)": (
            ["addons", "list", "-c", "bench", "--server", url],
            0,
        ),
    }
    env["MOORAGE_TOKEN"] = token
    try:
        measure(commands, args, env, results)
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps({"runs": args.runs, "commands": results}, indent=2))


def measure(
    commands: dict[str, tuple[list[str], int]],
    args: argparse.Namespace,
    env: dict[str, str],
    results: dict[str, dict[str, object]],
) -> None:
    for name, (argv, expected) in commands.items():
        run_once([str(args.moorage), *argv], env)  # warm the page cache and the .pyc files
        walls, cpus, rss = [], [], []
        for _ in range(args.runs):
            wall, cpu, peak, code = run_once([str(args.moorage), *argv], env)
            if code != expected:
                raise SystemExit(f"{name}: exit code {code}, expected {expected}")
            walls.append(round(wall, 3))
            cpus.append(round(cpu, 3))
            rss.append(round(peak, 1))
        results[name] = {
            "seconds": walls,
            "median_seconds": statistics.median(walls),
            "median_cpu_seconds": statistics.median(cpus),
            "median_peak_rss_mib": statistics.median(rss),
        }


if __name__ == "__main__":
    main()
