"""The example's charts for a devcluster: `moorage devcluster up --with-charts` packages the charts
of a folder (the checkout's `tests/charts`) and serves them as a Helm repository at
http://127.0.0.1:8879, where `examples/gitops-repo` expects its registry `local`, in a process of
its own that lives as long as the devcluster (`down` stops it with the other components).

    python -m moorage.devcluster.chartserver ROOT PORT    # the serving process itself
"""

import socket
import sys
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from moorage.devcluster import chartsources, http, process
from moorage.devcluster.cluster import DevCluster
from moorage.devcluster.errors import ComponentFailed, DevclusterError

COMPONENT = "charts"
EXAMPLE_PORT = 8879  # examples/gitops-repo: helm_registries[local].url


def default_charts_dir() -> Path | None:
    """The checkout's test charts (the example's charts among them), when Moorage runs from one."""
    candidate = Path(__file__).resolve().parents[3] / "tests" / "charts"
    return candidate if candidate.is_dir() else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no owner
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start(cluster: DevCluster, charts: Path, port: int = EXAMPLE_PORT, timeout: float = 30.0) -> str:
    """Package every chart folder under `charts`, serve them on 127.0.0.1:`port` as a process of the
    devcluster, and return the repository's URL."""
    folders = sorted(p for p in charts.iterdir() if (p / "Chart.yaml").is_file()) if charts.is_dir() else []
    if not folders:
        raise DevclusterError(f"no charts in {charts} (folders with a Chart.yaml)")
    if not _port_free(port):
        raise DevclusterError(
            f"port {port} on 127.0.0.1 is taken (another devcluster serving charts, or `make demo`?); "
            "stop it or give another --charts-port"
        )
    url = f"http://127.0.0.1:{port}"
    root = cluster.dir / "charts"
    helm_home = cluster.dir / "helm"
    chartsources.package_charts(folders, root, helm_home)
    chartsources.index_repo(root, url, helm_home)
    started = process.start(
        COMPONENT,
        [sys.executable, "-m", "moorage.devcluster.chartserver", str(root), str(port)],
        cluster.log(COMPONENT),
    )
    cluster.processes.append(started)
    cluster.save()  # from here `down` stops it too
    deadline = time.monotonic() + timeout
    while not http.probe("127.0.0.1", port, "/index.yaml"):
        if not process.alive(started):
            raise ComponentFailed(COMPONENT, "the process exited", process.log_tail(started.log))
        if time.monotonic() > deadline:
            raise ComponentFailed(COMPONENT, f"not ready after {timeout:.0f}s", process.log_tail(started.log))
        time.sleep(0.05)
    return url


class _Unrecorded(chartsources.RequestLog):
    """A long-running server keeps no record of its requests (the tests' RequestLog grows)."""

    def add(self, path: str, status: int) -> None:
        pass


def main(argv: list[str]) -> int:
    root, port = Path(argv[0]).resolve(), int(argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), chartsources._handler(root, _Unrecorded()))
    print(f"serving {root} on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
