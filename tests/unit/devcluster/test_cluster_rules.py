import os
import socket
from pathlib import Path

import pytest

from moorage.devcluster import binaries, cluster, network, process
from moorage.devcluster.errors import ComponentFailed, DevclusterError


@pytest.mark.parametrize("name", ["dev", "test-1", "a", "x" * 40])
def test_valid_names(name: str) -> None:
    assert cluster._check_name(name) == name


@pytest.mark.parametrize("name", ["", "Dev", "-a", "a-", "../etc", "a/b", "x" * 41, "a_b"])
def test_invalid_names_are_refused_with_an_example(name: str) -> None:
    with pytest.raises(DevclusterError, match=r"e\.g\. 'dev'"):
        cluster._check_name(name)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = network.free_ports(6)
    assert len(set(ports)) == 6
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_advertise_address_is_not_loopback() -> None:
    assert not network.advertise_address().startswith("127.")


def test_missing_binary_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOORAGE_BIN_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevclusterError, match="make tools"):
        binaries.find("definitely-not-a-binary")


def test_bin_dir_overrides_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MOORAGE_BIN_DIR", str(tmp_path))
    assert binaries.find("etcd") == fake


def test_component_failure_message_carries_name_and_log() -> None:
    error = ComponentFailed("etcd", "the process exited", "open /data: permission denied")
    assert str(error).startswith("etcd failed to start: the process exited")
    assert "    open /data: permission denied" in str(error)


def test_down_of_unknown_cluster_is_false(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MOORAGE_DEVCLUSTER_HOME", str(tmp_path))
    assert cluster.down("nothing-here") is False
    assert cluster.list_clusters() == []
    with pytest.raises(DevclusterError, match="no devcluster named"):
        cluster.find("nothing-here")


def test_state_round_trips(tmp_path: Path) -> None:
    original = cluster.DevCluster("c", tmp_path, cluster.Ports(1, 2, 3, 4, 5, 6), nodes=2)
    original.processes.append(process.Started("etcd", os.getpid(), 42, tmp_path / "etcd.log"))
    original.save()
    assert cluster.DevCluster.load(tmp_path) == original


def test_audit_is_opt_in_and_logs_each_request_once_at_metadata_level(tmp_path: Path) -> None:
    dev = cluster.DevCluster("audit", tmp_path, cluster.Ports(1, 2, 3, 4, 5, 6), nodes=1)
    flags = cluster.audit_flags(dev)
    assert f"--audit-log-path={dev.audit_log}" in flags
    assert f"--audit-policy-file={tmp_path / 'audit-policy.json'}" in flags
    assert cluster.AUDIT_POLICY["rules"] == [{"level": "Metadata"}]  # no request or response bodies
    assert set(cluster.AUDIT_POLICY["omitStages"]) == {"RequestReceived", "ResponseStarted"}
    assert not any(a.startswith("--audit") for a in cluster._argv(dev, "10.0.0.1")["kube-apiserver"])
