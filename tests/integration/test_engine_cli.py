"""`moorage sync | diff | status | sweep PATH --kubeconfig K` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from moorage.devcluster import DevCluster
from moorage.devcluster.chartsources import ChartRepo
from tests.integration.conftest import Kubectl
from tests.integration.engine_support import new_definition

DEFINITION = """
apiVersion: v1
kind: ImportCluster
metadata:
  name: cli-SFX
spec:
  helm_registries:
    - name: http-repo
      url: {http}
  stacks:
    - name: apps
      manifests:
        - name: settings-SFX
          namespace: cli-SFX
          manifest: |
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: settings}}
            data: {{color: blue}}
      addons:
        - name: web-SFX
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: http-repo
          namespace: cli-SFX
          parents:
            - manifest: settings-SFX
          configuration:
            values: {{replicaCount: 1}}
          settings:
            sync_policy: {{self_heal: false}}
"""


def moorage(*args: str, helm_home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLUMNS": "250",
        "HELM_CACHE_HOME": str(helm_home / "cache"),
        "HELM_CONFIG_HOME": str(helm_home / "config"),
        "HELM_DATA_HOME": str(helm_home / "data"),
    }
    argv = [sys.executable, "-m", "moorage.cli.main", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_sync_status_diff_sweep_from_the_command_line(
    cluster: DevCluster, helm_home: Path, kubectl: Kubectl, chart_repo: ChartRepo, tmp_path: Path
) -> None:
    d = new_definition(tmp_path)
    d.write(DEFINITION.format(http=chart_repo.url))
    path, kc = str(d.root), f"--kubeconfig={cluster.kubeconfig}"

    dry = moorage("sync", path, kc, "--dry-run", "--json", helm_home=helm_home)
    assert dry.returncode == 0, dry.stderr
    assert {e["status"] for e in json.loads(dry.stdout)} == {"planned"}
    assert kubectl.run("get", "ns", d.ns("cli"), check=False).returncode != 0  # nothing changed

    first = moorage("sync", path, kc, helm_home=helm_home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"addon/web-{d.suffix}" in first.stdout
    assert "applied" in first.stdout

    second = moorage("sync", path, kc, "--json", helm_home=helm_home)
    assert {e["status"] for e in json.loads(second.stdout)} == {"unchanged"}

    status = moorage("status", path, kc, "--json", helm_home=helm_home)
    assert status.returncode == 0, status.stdout
    (row,) = json.loads(status.stdout)
    assert row["health"] == "Healthy"

    kubectl.run("scale", "-n", d.ns("cli"), f"deploy/web-{d.suffix}", "--replicas=3")
    diff = moorage("diff", path, kc, helm_home=helm_home)
    assert diff.returncode == 1
    assert f"Deployment {d.ns('cli')}/web-{d.suffix} (modified)" in diff.stdout
    assert "spec.replicas: want 1, live 3" in diff.stdout

    sweep = moorage("sweep", path, kc, helm_home=helm_home)
    assert sweep.returncode == 0, sweep.stderr
    beat = json.loads(sweep.stdout)
    assert (beat["addons_inspected"], beat["drifted"], beat["healed"]) == (1, 1, 0)

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ImportCluster\nmetadata: {name: x}\nspec:\n  stackz: []\n")
    refused = moorage("sync", str(bad), kc, helm_home=helm_home)
    assert refused.returncode == 1
    assert "did you mean 'stacks'" in refused.stdout + refused.stderr
    assert "nothing was changed" in refused.stderr
