"""`moorage health test`: the rules' answer, a given check's answer, and "not covered"."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from moorage.cli.main import app

WIDGET = """\
apiVersion: moorage.test/v1
kind: Widget
metadata: {name: w1, namespace: apps}
status: {phase: Failed, message: quota exceeded}
"""
CHECK = """\
argocd_key: moorage.test_Widget
lua: |
  if obj.status.phase == "Failed" then
    return {status = "Degraded", message = obj.status.message}
  end
  return {status = "Healthy", message = "phase " .. obj.status.phase}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["health", "test", *args])
    return result.exit_code, result.output


def test_rules_and_not_covered(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WIDGET)
    code, output = run("--kind", "Widget", "--object", str(tmp_path / "w.yaml"))
    assert code == 0, output
    assert "moorage.test/v1 Widget apps/w1" in output
    assert "moorage rules:  Healthy: exists" in output
    assert "[generic rule (kstatus conventions)]" in output
    assert "not covered: judged by the generic rule: Healthy" in output


def test_with_a_check(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WIDGET)
    (tmp_path / "check.yaml").write_text(CHECK)
    code, output = run(
        "--kind", "Widget", "--object", str(tmp_path / "w.yaml"), "--check", str(tmp_path / "check.yaml")
    )
    assert code == 0, output
    assert "check:          Degraded: quota exceeded (Lua check)" in output
    assert "not covered" not in output


def test_dedicated_rule_and_api_version(tmp_path: Path) -> None:
    cert = (
        "kind: Certificate\nmetadata: {name: tls}\n"
        "status:\n  conditions:\n    - {type: Ready, status: 'True'}\n"
    )
    (tmp_path / "c.yaml").write_text(cert)
    code, output = run(
        "--kind", "Certificate", "--api-version", "cert-manager.io/v1", "--object", str(tmp_path / "c.yaml")
    )
    assert code == 0, output
    assert "Healthy" in output
    assert "[dedicated rule]" in output


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WIDGET)
    (tmp_path / "bad.yaml").write_text("argocd_key: moorage.test_Widget\nlua: 'return {'\n")
    code, output = run("--kind", "Gadget", "--object", str(tmp_path / "w.yaml"))
    assert code == 2
    assert "holds no object of kind Gadget" in output
    code, output = run(
        "--kind", "Widget", "--object", str(tmp_path / "w.yaml"), "--check", str(tmp_path / "bad.yaml")
    )
    assert code == 2
    assert "does not compile" in output
