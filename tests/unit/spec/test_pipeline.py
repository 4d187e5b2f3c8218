"""Example repository, SOPS, variables, plan properties and the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519
from typer.testing import CliRunner

from moorage.cli.spec_commands import register
from moorage.spec.loader import LoadOptions, load
from moorage.spec.render import render_yaml
from tests.unit.spec.helpers import EXAMPLE, EXAMPLE_KEY, HEADER, Loader, at, issues, one

SECRET = "s3cr3t-Example-Passw0rd"
ROOT = "import-cluster.yaml"


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLE_KEY))
    monkeypatch.delenv("SOPS_AGE_KEY", raising=False)


def test_example_loads_and_decrypts(key_env: None) -> None:
    before = sorted(p.name for p in EXAMPLE.rglob("*"))
    result = load(EXAMPLE)
    assert result.ok, result.report.to_text()
    assert result.plan is not None
    assert result.resolved is not None
    assert [g.wave for g in result.plan.groups] == [1, 2]
    stateful = result.resolved.addons["stateful"]
    assert stateful.values.reveal()["password"] == SECRET
    assert stateful.values.masked()["password"] == "********"
    assert SECRET not in repr(stateful)
    assert SECRET not in result.report.to_text()
    text = render_yaml(result.plan, result.resolved)
    assert SECRET not in text
    assert render_yaml(load(EXAMPLE).plan, load(EXAMPLE).resolved) == text  # type: ignore[arg-type]
    webapp = result.resolved.addons["webapp"].values.reveal()
    assert webapp == {
        "replicaCount": 2,
        "greeting": "hello from moorage",
        "environment": "demo",
        "service": {"port": 8080},
    }
    assert sorted(p.name for p in EXAMPLE.rglob("*")) == before  # nothing written


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "none.agekey"))
    monkeypatch.setenv("HOME", str(tmp_path))
    result = load(EXAMPLE)
    issue = one(result, "sops-decrypt")
    assert issue.message == "no age key is available to decrypt this SOPS file"
    assert at(issue)[0] == "values/stateful.enc.yaml"
    assert SECRET not in result.report.to_text()


def test_wrong_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.agekey"
    wrong.write_text(str(x25519.Identity.generate()) + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(wrong))
    issue = one(load(EXAMPLE), "sops-decrypt")
    assert "cannot decrypt this file" in issue.message
    assert at(issue)[0] == "values/stateful.enc.yaml"


def test_key_from_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    key = next(line for line in EXAMPLE_KEY.read_text().splitlines() if line.startswith("AGE-SECRET-KEY"))
    monkeypatch.setenv("SOPS_AGE_KEY", key)
    assert load(EXAMPLE).ok


def test_no_decrypt_masks_without_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", "/nonexistent")
    result = load(EXAMPLE, LoadOptions(decrypt=False))
    assert result.ok
    assert result.resolved is not None
    assert result.resolved.addons["stateful"].values.masked()["password"] == "********"


def test_encrypted_paths_on_plaintext_file_is_error(repo: Loader) -> None:
    body = (
        "  stacks:\n    - name: s\n      addons:\n        - name: a\n          chart_name: x\n"
        "          chart_version: '1'\n          registry_name: local\n          namespace: a\n"
        "          configuration: {from_file: v.yaml, encrypted_paths: [password]}\n"
    )
    result = repo({ROOT: HEADER + body, "v.yaml": "password: hunter2hunter2\n"})
    issue = one(result, "encrypted-paths")
    assert "not SOPS-encrypted" in issue.message
    assert "hunter2" not in result.report.to_text()
    assert at(issue) == ("v.yaml", 1, 1)


def test_plaintext_secret_warning_not_for_durations(repo: Loader) -> None:
    values = "auth:\n  password: hunter2hunter2\n  passwordTimeout: 30s\n  existingSecret: my-secret\ntoken: ${{ ankra.T }}\n"  # noqa: E501
    body = (
        "  stacks:\n    - name: s\n      variables: {T: x}\n      addons:\n        - name: a\n          chart_name: x\n"  # noqa: E501
        "          chart_version: '1'\n          registry_name: local\n          namespace: a\n"
        "          configuration: {from_file: v.yaml}\n"
    )
    result = repo({ROOT: HEADER + body, "v.yaml": values})
    warnings = issues(result, "plaintext-secret")
    assert len(warnings) == 1
    assert warnings[0].severity.value == "warning"
    assert warnings[0].message == "auth.password looks like a plaintext secret"
    assert at(warnings[0]) == ("v.yaml", 2, 13)
    assert "hunter2" not in result.report.to_text()
    strict = repo({ROOT: HEADER + body, "v.yaml": values}, strict_secrets=True)
    assert not strict.ok


def test_variable_precedence_and_alias(repo: Loader) -> None:
    body = (
        "  variables: {A: cluster, B: cluster}\n  stacks:\n    - name: s\n      variables: {A: stack}\n"
        "      manifests:\n        - name: m\n          from_file: m.yaml\n"
    )
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
        "data: {a: '${{ ankra.A }}', b: '${{ moorage.B }}', c: '${{ankra.C}}', d: '${{ ankra.NOPE }}'}\n"
    )
    result = repo({ROOT: HEADER + body, "m.yaml": manifest}, org_variables={"C": "org", "B": "org"})
    assert result.resolved is not None
    data = result.resolved.manifests["m"].objects.reveal()[0]["data"]
    assert data == {"a": "stack", "b": "cluster", "c": "org", "d": "${{ ankra.NOPE }}"}
    issue = one(result, "unresolved-variable")
    assert issue.severity.value == "warning"
    assert "'NOPE'" in issue.message
    assert at(issue) == ("m.yaml", 4, 75)
    strict = repo({ROOT: HEADER + body, "m.yaml": manifest}, strict_variables=True, org_variables={"C": "o"})
    assert one(strict, "unresolved-variable").severity.value == "error"


def test_include_folder_file_and_cycle(repo: Loader) -> None:
    body = "  stacks:\n    - name: s\n      manifests:\n        - include: inc/\n"
    files = {
        ROOT: HEADER + body,
        "inc/a.yaml": "name: a\nmanifest: 'apiVersion: v1\n\n  kind: Namespace\n\n  metadata: {name: a}'\n",
        "inc/b.yaml": "- include: ../more/c.yaml\n",
        "more/c.yaml": "- name: c\n  from_file: ../k/c.yaml\n- include: ../inc/b.yaml\n",
        "k/c.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n",
    }
    result = repo(files)
    issue = one(result, "include-cycle")
    assert issue.message == "include cycle: inc/b.yaml -> more/c.yaml -> inc/b.yaml"
    assert at(issue) == ("more/c.yaml", 3, 12)
    assert result.resolved is not None
    assert set(result.resolved.manifests) == {"a", "c"}


def test_error_inside_included_file_points_there(repo: Loader) -> None:
    body = "  stacks:\n    - name: s\n      addons:\n        - include: addons/x.yaml\n"
    files = {
        ROOT: HEADER + body,
        "addons/x.yaml": "name: x\nchart_name: x\nchart_version: 1.10\nregistry_name: local\nnamespace: a\n",
    }
    issue = one(repo(files), "type")
    assert at(issue) == ("addons/x.yaml", 3, 16)
    assert issue.path == "stacks[s].addons[x].chart_version"


# ---------------------------------------------------------------------------- plan properties

names = st.sampled_from([f"r{i}" for i in range(8)])


@st.composite
def graphs(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 8))
    waves = [draw(st.one_of(st.none(), st.sampled_from([0, 3, 7]))) for _ in range(3)]
    lines = ["  stacks:"]
    for s, wave in enumerate(waves):
        lines.append(f"    - name: st{s}")
        if wave is not None:
            lines.append(f"      deploy_wave: {wave}")
        lines.append("      addons:")
        for i in range(s, n, 3):
            parents = draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=3)) if i else []
            plist = ", ".join(f"{{addon: r{p}}}" for p in parents if p < i)
            lines.append(
                f"        - {{name: r{i}, chart_name: c, chart_version: '1', registry_name: local,"
                f" namespace: ns, parents: [{plist}]}}"
            )
    return HEADER + "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=graphs())
def test_every_plan_respects_every_edge(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("g")
    (root / ROOT).write_text(text)
    result = load(root / ROOT, repo_root=root)
    if result.plan is None:
        assert not result.ok
        return
    plan = result.plan
    position = {ref: i for i, ref in enumerate(plan.order)}
    assert len(position) == len(plan.steps)
    for ref in plan.steps:
        for dep in plan.dependencies(ref):
            assert position[dep] < position[ref], (dep, ref)
    teardown = {ref: i for i, ref in enumerate(plan.teardown_order)}
    for ref in plan.steps:
        for dep in plan.dependencies(ref):
            assert teardown[dep] > teardown[ref]
    waves = [g.wave for g in plan.groups if g.wave is not None]
    assert waves == sorted(waves)
    for group in plan.groups:
        layer_of = {r: i for i, layer in enumerate(group.layers) for r in layer}
        for ref in layer_of:
            for p in plan.steps[ref].parents:
                if p in layer_of:
                    assert layer_of[p] < layer_of[ref]


yaml_trees = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["name", "stacks", "addons", "manifests", "parents", "include", "spec", "kind", "x"]
            ),
            children,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(tree=yaml_trees, wrap=st.booleans())
def test_loader_never_crashes(tmp_path_factory: pytest.TempPathFactory, tree: object, wrap: bool) -> None:
    root = tmp_path_factory.mktemp("p")
    doc = {"apiVersion": "v1", "kind": "ImportCluster", "metadata": {"name": "x"}, "spec": {"stacks": [tree]}}
    (root / ROOT).write_text(json.dumps(doc if wrap else tree))
    result = load(root / ROOT, repo_root=root)
    for issue in result.report:
        assert issue.message


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_validate_text_and_json(cli: typer.Typer, key_env: None, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["validate", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "0 error(s)" in ok.output
    bad = tmp_path / ROOT
    bad.write_text(HEADER.replace("ImportCluster", "Cluster") + "  stacks: []\n")
    res = runner.invoke(cli, ["validate", str(bad)])
    assert res.exit_code == 1
    assert f"{ROOT}:2:7: error: kind must be ImportCluster, found 'Cluster'" in res.output
    res_json = runner.invoke(cli, ["validate", str(bad), "--output", "json"])
    data = json.loads(res_json.output)
    assert data["valid"] is False
    assert data["errors"][0]["line"] == 2
    assert runner.invoke(cli, ["validate", str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(cli, ["validate", str(bad), "--output", "xml"]).exit_code == 2


def test_cli_render_masks_secrets(cli: typer.Typer, key_env: None) -> None:
    res = CliRunner().invoke(cli, ["render", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    assert "password: '********'" in res.output
    assert SECRET not in res.output
    assert "chart: stateful" in res.output
    assert "version: 1.0.0" in res.output
    again = CliRunner().invoke(cli, ["render", str(EXAMPLE)])
    assert again.output == res.output


def test_no_plaintext_files_left(key_env: None, tmp_path: Path) -> None:
    before = set(os.listdir("/tmp"))
    load(EXAMPLE)
    leaked = [n for n in set(os.listdir("/tmp")) - before if (Path("/tmp") / n).is_file()]
    for name in leaked:
        assert SECRET not in (Path("/tmp") / name).read_text(errors="ignore")
