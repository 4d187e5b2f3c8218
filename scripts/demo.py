"""`make demo`: the whole local platform on one machine.

1. a devcluster (etcd, kube-apiserver, controllers, kwok nodes);
2. the test charts on a local Helm repository (HTTP) and an OCI registry; one chart installed with
   plain helm from the OCI registry, to show that Moorage releases are ordinary Helm releases;
3. `moorage server` (SQLite, embedded NATS) and `moorage agent` for the devcluster;
4. examples/gitops-repo pushed to a local Git server (git http-backend) and the cluster connected to
   it (GitOps: polling every 30 s, a webhook URL, Sync Now), then a status table.

It keeps running until Ctrl-C, which stops everything it started (the devcluster included).

    .venv/bin/python scripts/demo.py [--screenshots docs/screenshots] [--ha [N]]

With --ha (`make demo-ha`) step 3 is the high-availability control plane instead (tests/ha_support.py):
a PostgreSQL, three nats-server nodes clustered with JetStream and N (default 2) `moorage server`
replicas sharing them; the agent registers through one replica, the cluster is connected to Git
through another, and any replica answers.

With --screenshots it signs in to the web UI in Debian's chromium, saves a picture of each main page
into that folder, and stops (`make screenshots`)."""

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from moorage import devcluster
from moorage.devcluster import binaries, chartsources
from moorage.devcluster.gitserver import GitServer, WorkTree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gitops-repo"
CHARTS = ROOT / "tests" / "charts"
NAME = "demo"


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM, SIGHUP) while the demo was still starting."""


def _drop_output() -> None:
    """Send the rest of the demo's output to /dev/null (its reader is gone)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class QuietOnBrokenPipe(Console):
    """`make demo | tee demo.log` stopped with Ctrl-C kills tee too, so the demo's next line meets a
    closed pipe. rich then raises SystemExit(1), which skipped the clean-up after "stopping" and left
    etcd, the API server, the controllers and kwok running; here the output is dropped instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _drop_output()


console = QuietOnBrokenPipe()


def say(*items: Any) -> None:
    try:
        console.print(*items)
    except OSError:  # EIO of a terminal that went away
        console.quiet = True
        _drop_output()


def step(text: str) -> None:
    say(f"\n[bold]==> {text}[/bold]")


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited early; last lines of {log}:\n" + log.read_text()[-2000:])
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s (see {log})")


def example_files(chart_repo_url: str) -> dict[str, str | None]:
    return {
        str(p.relative_to(EXAMPLE)): p.read_text().replace("http://127.0.0.1:8879", chart_repo_url)
        for p in EXAMPLE.rglob("*")
        if p.is_file()
    }


def wait_synced(api: httpx.Client, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = api.get(f"/clusters/{NAME}/gitops/status").json()
        if state["sync_status"] in ("synced", "error") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def wait_reported(api: httpx.Client, timeout: float = 120) -> dict[str, Any]:
    """The add-ons once the agent reported them all and none is still changing."""
    deadline = time.monotonic() + timeout
    while True:
        data: dict[str, Any] = api.get(f"/clusters/{NAME}/addons").json()
        settled = data["result"] and all(a["state"] not in ("Pending", "Deploying") for a in data["result"])
        if settled or time.monotonic() > deadline:
            return data
        time.sleep(0.5)


SHOTS = [
    ("clusters", "/clusters", None),
    ("addons", f"/clusters/{NAME}", None),
    ("addon-map", f"/clusters/{NAME}/addons/webapp?tab=map", "svg.map .node"),
    ("addon", f"/clusters/{NAME}/addons/webapp", None),
    ("gitops", f"/clusters/{NAME}/gitops", None),
    ("addon-history", f"/clusters/{NAME}/addons/stateful?tab=history", "#history table"),
]


def screenshots(server_url: str, user: str, password: str, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server_url}/login")
        page.fill("#username", user)
        page.fill("#password", password)
        page.click("#signin button[type=submit]")
        page.wait_for_url(f"{server_url}/clusters")
        for name, path, ready in SHOTS:
            page.goto(server_url + path)
            if ready:
                page.wait_for_selector(ready, timeout=30_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(folder / f"{name}.png"))
            say(f"saved {folder / (name + '.png')}")
        browser.close()


def start_server(processes: list[subprocess.Popen[bytes]], work: Path, token: str) -> str:
    """`moorage server` on SQLite with its embedded NATS; its URL."""
    step("moorage server (SQLite, embedded NATS with JetStream)")
    port = free_port(8000)
    server_url = f"http://127.0.0.1:{port}"
    server_log = work / "server.log"
    # the demo's Git server is on loopback, which the server refuses unless allowed
    env = {**os.environ, "MOORAGE_BOOTSTRAP_TOKEN": token, "MOORAGE_EGRESS_ALLOW": "loopback"}
    argv = [sys.executable, "-m", "moorage.cli.main", "server", "--port", str(port)]
    argv += ["--data-dir", str(work / "server")]
    server = subprocess.Popen(argv, stdout=server_log.open("ab"), stderr=subprocess.STDOUT, env=env)
    processes.append(server)
    wait_http(f"{server_url}/healthz", server, server_log)
    return server_url


def start_ha(stack: contextlib.ExitStack, work: Path, token: str, replicas: int) -> list[str]:
    """PostgreSQL, three clustered nats-servers and `replicas` servers (tests/ha_support.py), stopped
    when `stack` closes; the replicas' URLs."""
    step(f"HA control plane: PostgreSQL, 3 nats-server nodes (JetStream cluster), {replicas} moorage servers")
    sys.path.insert(0, str(ROOT))
    from tests import postgres
    from tests.ha_support import running_ha

    if reason := postgres.available():
        raise SystemExit(f"--ha needs PostgreSQL: {reason}")
    # the demo's Git server is on loopback (allowed by the fixture), the admin token is the demo's
    ha = stack.enter_context(
        running_ha(work / "ha", replicas=replicas, env={"MOORAGE_BOOTSTRAP_TOKEN": token})
    )
    say(f"PostgreSQL {ha.database_url}")
    say(f"NATS       {ha.nats.url}")
    for server in ha.servers:
        say(f"replica {server.data_dir.name}  {server.url}   (log {server.data_dir / 'server.log'})")
    return [server.url for server in ha.servers]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshots", type=Path, help="save pictures of the UI's main pages here and stop")
    parser.add_argument(
        "--ha",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="N",
        help="N server replicas (default 2) on PostgreSQL and a three-node NATS cluster",
    )
    options = parser.parse_args()
    stop = False
    starting = True

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop, starting
        stop = True
        if starting:  # still starting: unwind now, not after minutes of waiting for a sync
            starting = False
            raise Interrupted

    # SIGHUP: the terminal (or the ssh session) went away
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    work = Path(tempfile.mkdtemp(prefix="moorage-demo-"))
    processes: list[subprocess.Popen[bytes]] = []

    try:
        step("devcluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
        started = time.monotonic()
        if any(c.name == NAME for c in devcluster.list_clusters()):
            devcluster.down(NAME)
        cluster = devcluster.up(NAME, nodes=3)
        say(f"ready in {time.monotonic() - started:.1f}s; kubeconfig {cluster.kubeconfig}")
        kubeconfig = str(cluster.kubeconfig)
        helm_env = chartsources.helm_env(work / "helm")
        archives = chartsources.package_charts(
            sorted(p for p in CHARTS.iterdir() if p.is_dir()), work / "repo", work / "helm"
        )
        with (
            chartsources.serve_chart_repo(work / "repo") as repo,
            chartsources.run_registry(work / "registry") as registry,
            GitServer(work / "git") as git,
            contextlib.ExitStack() as stack,
        ):
            chartsources.index_repo(work / "repo", repo.url, work / "helm")
            chartsources.push_charts(archives, registry, work / "helm")
            step(f"charts: Helm repository {repo.url}, OCI registry {registry.url}")
            helm = [str(binaries.find("helm")), "upgrade", "--install", "hello", f"{registry.url}/webapp"]
            helm += ["--plain-http", "--namespace", "hello", "--create-namespace", "--wait"]
            subprocess.run(
                [*helm, f"--kubeconfig={kubeconfig}"], check=True, env=helm_env, stdout=subprocess.DEVNULL
            )
            say("helm installed release hello from the OCI registry")

            token = "mrg_" + secrets.token_urlsafe(32)
            if options.ha:
                server_urls = start_ha(stack, work, token, options.ha)
            else:
                server_urls = [start_server(processes, work, token)]
            server_url = server_urls[0]
            api = httpx.Client(
                base_url=f"{server_url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=300
            )
            agent_token = api.post("/clusters", json={"name": NAME}).raise_for_status().json()["agent_token"]

            step("moorage agent (outbound connections only)")
            agent_log = work / "agent.log"
            agent_env = {
                **os.environ,
                "MOORAGE_AGENT_TOKEN": agent_token,
                "SOPS_AGE_KEY_FILE": str(EXAMPLE / "keys" / "test-only.agekey"),
            }
            health = free_port(8080)
            argv = [sys.executable, "-m", "moorage.cli.main", "agent", "--server", server_url]
            argv += ["--kubeconfig", kubeconfig, "--health-port", str(health)]
            agent = subprocess.Popen(
                argv, stdout=agent_log.open("ab"), stderr=subprocess.STDOUT, env=agent_env
            )
            processes.append(agent)
            wait_http(f"http://127.0.0.1:{health}/readyz", agent, agent_log)

            step("examples/gitops-repo pushed to a Git server; the cluster connected to it")
            tree = WorkTree(work / "gitops-repo", git.create_repo("moorage-demo/gitops-repo.git"))
            tree.commit_and_push(example_files(repo.url), "the example definition")
            # with replicas: connected through the last one (the agent registered through the first)
            connected = httpx.put(
                f"{server_urls[-1]}/api/v1/clusters/{NAME}/gitops",
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
                json={"url": git.repo_url("moorage-demo/gitops-repo.git"), "path": "import-cluster.yaml"}
                | {"poll_interval_seconds": 30},
            ).raise_for_status()
            say(f"webhook {connected.json()['git_repo']['webhook_url']} (polling every 30 s)")
            state = wait_synced(api)
            say(f"GitOps: {state['sync_status']} at {state['last_commit_sha']}")
            addons = wait_reported(api)
            table = Table(
                "add-on", "state", "chart", "reason", title=f"cluster {NAME} (agent {addons['agent']})"
            )
            for row in addons["result"]:
                table.add_row(row["name"], row["state"], f"{row['chart']} {row['version']}", row["reason"])
            say(table)
            password = secrets.token_urlsafe(12)
            api.post(
                "/users", json={"username": "demo", "password": password, "role": "admin"}
            ).raise_for_status()
            if options.screenshots:
                step("screenshots of the web UI")
                screenshots(server_url, "demo", password, options.screenshots)
                return 0

            step("running")
            for url in server_urls:
                say(f"web UI     {url}/   (user demo, password {password})")
            say(f"API        {server_url}/api/v1   (OpenAPI: {server_url}/docs)")
            say(f"token      export MOORAGE_TOKEN={token}")
            say(f"kubeconfig {kubeconfig}")
            say(f"logs       {work}")
            say(f"Git        edit {tree.path}, then git commit and git push: synced within 30 s")
            say(f"           (moorage cluster sync {NAME} for now; moorage cluster history {NAME})")
            what = "the replicas, NATS, PostgreSQL" if options.ha else "the server"
            say(f"Ctrl-C stops the agent, {what}, the chart sources and the devcluster.")
            starting = False
            while not stop:
                time.sleep(0.5)
    except Interrupted:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        step("stopping")
        for proc in reversed(processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        try:
            devcluster.down(NAME)
        except devcluster.DevclusterError as e:
            say(f"could not stop the devcluster: {e}")
        say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
