"""`up`, `down` and `status`: several clusters side by side, nothing left behind, clear failures."""

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from moorage import devcluster
from moorage.devcluster import binaries, network, process


def pids_alive(cluster: devcluster.DevCluster) -> list[str]:
    return [p.component for p in cluster.processes if process.alive(p)]


def children_of(pid: int) -> list[int]:
    result = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(line) for line in result.stdout.split()]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_two_clusters_side_by_side_and_down_leaves_nothing(cluster: devcluster.DevCluster) -> None:
    second = devcluster.up(f"second-{os.getpid()}", nodes=1)
    try:
        first_status = devcluster.status(cluster)
        second_status = devcluster.status(second)
        assert first_status.healthy, first_status
        assert second_status.healthy, second_status
        assert second_status.nodes_ready == 1
        assert second.server != cluster.server
        names = {c.name for c in devcluster.list_clusters()}
        assert {cluster.name, second.name} <= names
        assert sorted(pids_alive(second)) == sorted(binaries.COMPONENT_BINARIES)
    finally:
        assert devcluster.down(second.name)
    assert pids_alive(second) == []
    ours = {p.pid for p in second.processes}
    assert not ours & set(children_of(os.getpid())), "a component of the stopped cluster is still our child"
    assert not second.dir.exists()
    # the first cluster is untouched
    assert devcluster.status(cluster).healthy


def test_up_refuses_a_name_that_is_already_running(cluster: devcluster.DevCluster) -> None:
    with pytest.raises(devcluster.DevclusterError, match="already running"):
        devcluster.up(cluster.name)


def test_failed_component_is_named_with_its_log_and_leaves_no_process(
    devcluster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_bin = tmp_path / "bin"
    bad_bin.mkdir()
    for name in binaries.COMPONENT_BINARIES:
        (bad_bin / name).symlink_to(binaries.find(name))
    (bad_bin / "kube-apiserver").unlink()
    fake = bad_bin / "kube-apiserver"
    fake.write_text(
        "#!/bin/sh\necho 'E1123 failed to listen on 127.0.0.1: address already in use' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("MOORAGE_BIN_DIR", str(bad_bin))

    name = f"broken-{os.getpid()}"
    with pytest.raises(devcluster.ComponentFailed) as failure:
        devcluster.up(name, nodes=1, timeout=30)
    assert failure.value.component == "kube-apiserver"
    assert "address already in use" in failure.value.log_tail
    assert "kube-apiserver failed to start" in str(failure.value)

    broken = devcluster.find(name)
    assert broken.processes == []
    assert processes_mentioning(str(broken.dir)) == []  # etcd, started first, was stopped again
    assert (broken.dir / "logs" / "etcd.log").exists()
    assert devcluster.down(name)


def test_taken_port_names_the_component_and_stops_the_others(devcluster_home: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        free = network.free_ports(5)
        ports = devcluster.Ports(free[0], free[1], taken, free[2], free[3], free[4])
        name = f"port-{os.getpid()}"
        with pytest.raises(devcluster.ComponentFailed) as failure:
            devcluster.up(name, nodes=1, timeout=60, ports=ports)
    assert failure.value.component == "kube-apiserver"
    assert "address already in use" in failure.value.log_tail
    broken = devcluster.find(name)
    assert processes_mentioning(str(broken.dir)) == []
    assert devcluster.down(name)


def test_cli_up_prints_kubeconfig_last_and_status_lists_it(devcluster_home: Path) -> None:
    name = f"cli-{os.getpid()}"
    moorage = [sys.executable, "-m", "moorage.cli.main"]
    env = {**os.environ, "MOORAGE_DEVCLUSTER_HOME": str(devcluster_home), "COLUMNS": "250"}
    up = subprocess.run(
        [*moorage, "devcluster", "up", "--name", name, "--nodes", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        assert kubeconfig.is_file()
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        listed = subprocess.run(
            [*moorage, "devcluster", "status"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert name in listed.stdout
        assert "healthy" in listed.stdout
        assert "unhealthy" not in listed.stdout
        assert listed.returncode == 0
    finally:
        down = subprocess.run(
            [*moorage, "devcluster", "down", "--name", name],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    assert down.returncode == 0, down.stderr
    assert not (devcluster_home / name).exists()
