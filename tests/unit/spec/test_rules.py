"""Every rule of ankra-spec §2.11-2.12 (and §2.8-2.9 field rules): message and location."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.unit.spec.helpers import HEADER, Loader, at, issues, one

ROOT = "import-cluster.yaml"


def stacks(body: str) -> str:
    return HEADER + "  stacks:\n" + body


ADDON = """\
    - name: s
      addons:
        - name: web
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: apps
"""


def test_valid_minimal(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON)})
    assert result.ok, result.report.to_text()
    assert result.cluster is not None
    addon = result.cluster.spec.stacks[0].addons[0]
    assert addon.settings.sync_policy.self_heal is True
    assert addon.settings.retry_policy.limit == 5
    assert addon.job_configuration.create_job_timeout == 420
    assert result.resolved is not None
    assert result.resolved.addons["web"].registry_url == "http://127.0.0.1:8879"


def test_not_yaml(repo: Loader) -> None:
    result = repo({ROOT: "apiVersion: v1\nkind: [ImportCluster\n"})
    issue = one(result, "yaml-syntax")
    assert issue.message.startswith("the file is not valid YAML")
    assert at(issue)[0] == ROOT
    assert at(issue)[1] == 3


def test_kind_wrong_names_found_value(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON).replace("kind: ImportCluster", "kind: Cluster")})
    issue = one(result, "wrong-kind")
    assert issue.message == "kind must be ImportCluster, found 'Cluster'"
    assert at(issue) == (ROOT, 2, 7)


def test_kind_missing(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON).replace("kind: ImportCluster\n", "")})
    issue = next(i for i in issues(result, "missing-field") if i.path == "kind")
    assert issue.message == "missing required field 'kind'"
    assert issue.hint == "for example: kind: ImportCluster"
    assert at(issue) == (ROOT, 1, 1)


def test_metadata_name_and_spec_missing(repo: Loader) -> None:
    result = repo({ROOT: "apiVersion: v1\nkind: ImportCluster\nmetadata:\n  description: x\n"})
    messages = {i.path: i for i in issues(result, "missing-field")}
    assert messages["metadata.name"].message == "missing required field 'name'"
    assert at(messages["metadata.name"]) == (ROOT, 4, 3)
    spec_issue = next(i for i in issues(result, "missing-field") if "'spec'" in i.message)
    assert "stacks" in spec_issue.hint


def test_metadata_name_characters(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON).replace("name: test-cluster", "name: test_cluster!")})
    issue = one(result, "cluster-name")
    assert "letters, digits and '-'" in issue.message
    assert at(issue) == (ROOT, 4, 9)


def test_stack_not_an_object(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "    - just-a-string\n")})
    issue = one(result, "type")
    assert issue.message.startswith("stack #2 is not a valid object")
    assert "name" in issue.hint
    assert "deploy_wave" in issue.hint
    assert at(issue) == (ROOT, 17, 7)


def test_addon_and_manifest_need_names(repo: Loader) -> None:
    body = """\
    - name: s
      manifests:
        - from_file: a.yaml
      addons:
        - chart_name: x
          chart_version: "1"
          registry_name: local
          namespace: apps
"""
    result = repo({ROOT: stacks(body), "a.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"})
    missing = {i.path: i for i in issues(result, "missing-field")}
    assert missing["stacks[s].manifests[0].name"].message == "missing required field 'name'"
    assert at(missing["stacks[s].manifests[0].name"]) == (ROOT, 12, 11)
    assert at(missing["stacks[s].addons[0].name"]) == (ROOT, 14, 11)


@pytest.mark.parametrize(
    ("entry", "found"),
    [
        ("        - name: m\n          namespace: x\n", "none"),
        (
            "        - name: m\n          manifest: 'a: 1'\n          from_file: a.yaml\n",
            "manifest, from_file",
        ),
    ],
)
def test_manifest_exactly_one_source(repo: Loader, entry: str, found: str) -> None:
    result = repo({ROOT: stacks("    - name: s\n      manifests:\n" + entry), "a.yaml": "x: 1\n"})
    issue = one(result, "manifest-source")
    assert issue.message == f"manifest 'm' needs exactly one content source, found {found}"
    assert "manifest_base64" in issue.hint
    assert at(issue) == (ROOT, 12, 11)
    assert issue.path == "stacks[s].manifests[m]"


@pytest.mark.parametrize(
    ("ref", "code", "needle"),
    [
        ("/etc/passwd", "path-absolute", "is absolute"),
        ("C:/x.yaml", "path-absolute", "is absolute"),
        ("../../outside.yaml", "path-escape", "leaves the repository root"),
        ("dir\\\\x.yaml", "path-invalid", "backslashes"),
        ("missing.yaml", "path-missing", "does not exist"),
    ],
)
def test_path_safety_from_file(repo: Loader, ref: str, code: str, needle: str) -> None:
    body = f'    - name: s\n      manifests:\n        - name: m\n          from_file: "{ref}"\n'
    result = repo({ROOT: stacks(body)})
    issue = one(result, code)
    assert needle in issue.message
    assert at(issue) == (ROOT, 13, 22)


@pytest.mark.parametrize("field", ["description_from_file", "agents_md_from_file"])
def test_path_safety_other_fields(repo: Loader, field: str) -> None:
    if field == "description_from_file":
        body = '    - name: s\n      description_from_file: "../x.md"\n'
        line = 11
    else:
        body = ADDON + '          agents_md_from_file: "/abs.md"\n'
        line = 17
    result = repo({ROOT: stacks(body)})
    found = issues(result, "path-escape") + issues(result, "path-absolute")
    assert len(found) == 1
    assert at(found[0])[:2] == (ROOT, line)


def test_symlink_leading_outside_is_refused(repo: Loader, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    os.symlink(outside, tmp_path / "link.yaml")
    body = "    - name: s\n      manifests:\n        - name: m\n          from_file: link.yaml\n"
    result = repo({ROOT: stacks(body)})
    issue = one(result, "path-symlink")
    assert "symlink" in issue.message
    assert "outside the repository" in issue.message
    assert at(issue) == (ROOT, 13, 22)


def test_unquoted_chart_version_trap(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace('"1.0.0"', "1.20"))})
    issue = one(result, "type")
    assert issue.message == "'chart_version' must be a string, got the number 1.2"
    assert 'write "1.20"' in issue.hint
    assert issue.path == "stacks[s].addons[web].chart_version"
    assert at(issue) == (ROOT, 14, 26)


def test_unquoted_chart_name_number(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("chart_name: webapp", "chart_name: 42"))})
    issue = one(result, "type")
    assert issue.message == "'chart_name' must be a string, got the number 42"


def test_group_must_be_string(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          group: yes\n")})
    issue = one(result, "type")
    assert issue.message == "'group' must be a string, got the boolean true"
    assert "boolean" in issue.hint
    assert at(issue) == (ROOT, 17, 18)


def test_group_length(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + f"          group: {'g' * 64}\n")})
    issue = one(result, "string-too-long")
    assert issue.message == "'group' must be at most 63 characters"


@pytest.mark.parametrize(
    ("wave", "code", "message"),
    [
        ("-1", "greater-than-equal", "'deploy_wave' must be greater than or equal to 0, found -1"),
        ('"1"', "type", "'deploy_wave' must be an integer, got a string"),
        ("1.5", "type", "'deploy_wave' must be an integer, got the number 1.5"),
    ],
)
def test_deploy_wave_integer_ge_0(repo: Loader, wave: str, code: str, message: str) -> None:
    result = repo(
        {ROOT: stacks(ADDON.replace("    - name: s\n", f"    - name: s\n      deploy_wave: {wave}\n"))}
    )
    issue = one(result, code)
    assert issue.message == message
    assert at(issue) == (ROOT, 11, 20)


def test_variables_are_strings(repo: Loader) -> None:
    body = ADDON.replace(
        "    - name: s\n",
        "    - name: s\n      variables:\n        OK_INT: 3\n        OK_BOOL: true\n        BAD: 1.20\n"
        "        MAP: {a: 1}\n        bad-name: x\n",
    )
    result = repo({ROOT: stacks(body)})
    assert True
    types = {i.path: i for i in issues(result, "type")}
    assert types["stacks[s].variables.BAD"].message == "'BAD' must be a string, got the number 1.2"
    assert "trailing zero" in types["stacks[s].variables.BAD"].hint
    assert at(types["stacks[s].variables.BAD"]) == (ROOT, 14, 14)
    assert types["stacks[s].variables.MAP"].message == "'MAP' must be a string, got a mapping"
    name = one(result, "string-pattern-mismatch")
    assert name.message == "variable name 'bad-name' is invalid"
    assert at(name) == (ROOT, 16, 9)


def test_unknown_field_did_you_mean(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("chart_version", "chart_verison"))})
    unknown = one(result, "unknown-field")
    assert unknown.message == "unknown field 'chart_verison'"
    assert unknown.hint == "did you mean 'chart_version'?"
    assert unknown.path == "stacks[s].addons[web].chart_verison"
    assert at(unknown) == (ROOT, 14, 11)
    missing = one(result, "missing-field")
    assert missing.message == "missing required field 'chart_version'"
    assert missing.hint == 'for example: chart_version: "0.49.1"'


def test_unknown_field_far_from_everything_lists_accepted(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("    - name: s\n", "    - name: s\n      zzzzzz: 1\n"))})
    issue = one(result, "unknown-field")
    assert issue.hint.startswith("accepted fields: ")
    assert "deploy_wave" in issue.hint


def test_duplicate_names_per_kind(repo: Loader) -> None:
    body = ADDON + (
        "        - name: web\n          chart_name: webapp\n          chart_version: '1.0.0'\n"
        "          registry_name: local\n          namespace: apps\n"
        "      manifests:\n        - name: web\n          manifest: |\n            apiVersion: v1\n"
        "            kind: Namespace\n            metadata: {name: web}\n"
    )
    result = repo({ROOT: stacks(body)})
    issue = one(result, "duplicate-name")
    assert issue.message.startswith('addon "web" is declared more than once')
    assert issue.message.endswith("names must be unique per kind")
    assert at(issue) == (ROOT, 17, 17)


def test_duplicate_stack_names(repo: Loader) -> None:
    result = repo({ROOT: stacks("    - name: s\n    - name: s\n")})
    issue = one(result, "duplicate-name")
    assert issue.message.startswith('stack "s" is declared more than once')
    assert at(issue) == (ROOT, 11, 13)


def test_parent_kind_invalid(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          parents:\n            - chart: x\n")})
    issue = one(result, "parent-kind")
    assert issue.message == "parent kind 'chart' is not valid; use manifest, addon or application"
    assert at(issue) == (ROOT, 18, 15)


def test_parent_kind_invalid_explicit(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          parents:\n            - {name: x, kind: addons}\n")})
    issue = one(result, "literal-error")
    assert issue.message == "'kind' must be 'manifest', 'addon' or 'application', found 'addons'"
    assert issue.hint == "did you mean 'addon'?"
    assert at(issue) == (ROOT, 18, 31)


def test_parent_not_defined(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          parents:\n            - manifest: ns-app\n")})
    issue = one(result, "parent-missing")
    assert issue.message == "addon 'web' has parent manifest 'ns-app', which is not defined"
    assert issue.path == "stacks[s].addons[web].parents[0]"
    assert at(issue) == (ROOT, 18, 15)


def test_parent_other_kind_hint(repo: Loader) -> None:
    body = ADDON + "          parents: [{manifest: web}]\n"
    result = repo({ROOT: stacks(body)})
    issue = one(result, "parent-missing")
    assert "there is a addon named 'web'" in issue.hint


def test_cycle_full_path(repo: Loader) -> None:
    body = """\
    - name: s
      manifests:
        - name: a
          manifest: "apiVersion: v1\\nkind: Namespace\\nmetadata: {name: a}"
          parents: [{addon: b}]
      addons:
        - name: b
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: apps
          parents: [{name: c, kind: addon}]
        - name: c
          chart_name: webapp
          chart_version: "1.0.0"
          registry_name: local
          namespace: apps
          parents: [{manifest: a}]
"""
    result = repo({ROOT: stacks(body)})
    issue = one(result, "cycle")
    assert issue.message == "dependency cycle detected: manifest/a -> addon/b -> addon/c -> manifest/a"
    assert at(issue) == (ROOT, 14, 20)
    assert result.plan is None


def test_self_parent(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          parents: [{addon: web}]\n")})
    issue = one(result, "cycle")
    assert issue.message == "dependency cycle detected: addon/web -> addon/web"


def test_parent_in_later_wave(repo: Loader) -> None:
    body = ADDON.replace("    - name: s\n", "    - name: s\n      deploy_wave: 1\n") + (
        "          parents: [{addon: late}]\n    - name: t\n      deploy_wave: 5\n      addons:\n"
        "        - {name: late, chart_name: x, chart_version: '1', registry_name: local, namespace: a}\n"
    )
    result = repo({ROOT: stacks(body)})
    issue = one(result, "wave-order")
    assert "has parent addon/late in a later wave (5)" in issue.message


def test_namespace_dns_label(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("namespace: apps", "namespace: Apps_NS"))})
    issue = one(result, "namespace")
    assert issue.message == "namespace 'Apps_NS' is not a valid DNS label"
    assert at(issue) == (ROOT, 16, 22)


def test_short_namespace_is_fine(repo: Loader) -> None:
    assert repo({ROOT: stacks(ADDON.replace("namespace: apps", "namespace: ab"))}).ok


def test_configuration_only_unknown_keys_is_error(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          configuration:\n            value: 'a: 1'\n")})
    issue = one(result, "unknown-field")
    assert issue.severity.value == "error"
    assert "configuration has only unknown keys (value)" in issue.message
    assert issue.hint == "did you mean 'values'?"
    assert at(issue) == (ROOT, 18, 13)


def test_configuration_unknown_next_to_valid_is_warning(repo: Loader) -> None:
    result = repo(
        {
            ROOT: stacks(
                ADDON + "          configuration:\n            values: 'a: 1'\n            fromfile: x\n"
            )
        }
    )
    issue = one(result, "unknown-field")
    assert issue.severity.value == "warning"
    assert issue.message == "unknown configuration key 'fromfile' is ignored"
    assert issue.hint == "did you mean 'from_file'?"
    assert result.ok


def test_encrypted_paths_without_values(repo: Loader) -> None:
    result = repo(
        {ROOT: stacks(ADDON + "          configuration:\n            encrypted_paths: [password]\n")}
    )
    issue = one(result, "encrypted-paths")
    assert issue.message == "encrypted_paths is set but there are no values to decrypt"
    assert at(issue) == (ROOT, 18, 13)


def test_encrypted_paths_entries_are_strings(repo: Loader) -> None:
    result = repo(
        {
            ROOT: stacks(
                ADDON
                + "          configuration:\n            values: 'a: 1'\n            encrypted_paths: [1]\n"
            )
        }
    )
    issue = one(result, "type")
    assert "must be a string" in issue.message


def test_values_must_parse(repo: Loader) -> None:
    result = repo(
        {ROOT: stacks(ADDON + "          configuration:\n            values: |\n              a: [1\n")}
    )
    issue = one(result, "yaml-syntax")
    assert at(issue)[0] == ROOT
    assert at(issue)[1] >= 20


def test_invalid_base64(repo: Loader) -> None:
    body = "    - name: s\n      manifests:\n        - name: m\n          manifest_base64: 'not base64!!'\n"
    result = repo({ROOT: stacks(body)})
    issue = one(result, "invalid-base64")
    assert issue.message == "manifest_base64 is not valid base64"
    assert at(issue) == (ROOT, 13, 28)


def test_empty_manifest_base64(repo: Loader) -> None:
    body = "    - name: s\n      manifests:\n        - name: m\n          manifest_base64: ''\n"
    issue = one(repo({ROOT: stacks(body)}), "empty-content")
    assert issue.message == "manifest_base64 is empty"


def test_base64_binary_content(repo: Loader) -> None:
    data = base64.b64encode(b"\x00\x01binary").decode()
    body = f"    - name: s\n      manifests:\n        - name: m\n          manifest_base64: {data}\n"
    issue = one(repo({ROOT: stacks(body)}), "binary-content")
    assert issue.message.startswith("manifest_base64: file looks binary")
    assert at(issue) == (ROOT, 13, 28)


def test_manifest_base64_round_trip(repo: Loader) -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b64\n"
    data = base64.b64encode(text.encode()).decode()
    body = f"    - name: s\n      manifests:\n        - name: m\n          manifest_base64: {data}\n"
    result = repo({ROOT: stacks(body)})
    assert result.ok, result.report.to_text()
    assert result.resolved is not None
    assert result.resolved.manifests["m"].objects.reveal()[0]["metadata"]["name"] == "b64"


def test_empty_manifest_body(repo: Loader) -> None:
    body = "    - name: s\n      manifests:\n        - name: m\n          from_file: empty.yaml\n"
    issue = one(repo({ROOT: stacks(body), "empty.yaml": "# nothing\n"}), "empty-manifest")
    assert issue.message == "manifest 'm' has an empty body (no Kubernetes objects)"
    assert at(issue) == ("empty.yaml", 1, 1)


def test_manifest_object_shape(repo: Loader) -> None:
    body = "    - name: s\n      manifests:\n        - name: m\n          from_file: k.yaml\n"
    content = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\nkind: ConfigMap\ndata: {}\n"
    issue = one(repo({ROOT: stacks(body), "k.yaml": content}), "manifest-object")
    assert issue.message == "document 2 is missing apiVersion, metadata.name"
    assert at(issue) == ("k.yaml", 5, 1)


def test_registry_missing(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("          registry_name: local\n", ""))})
    issue = next(i for i in issues(result, "missing-field") if "registry" in i.message)
    assert issue.message.startswith("missing registry")
    assert at(issue) == (ROOT, 12, 11)


def test_registry_url_mismatch(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          registry_url: https://other.example.com\n")})
    issue = one(result, "registry-mismatch")
    assert "differs from the url of registry 'local'" in issue.message
    assert at(issue) == (ROOT, 17, 25)


def test_registry_undeclared_did_you_mean(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON.replace("registry_name: local", "registry_name: locl"))})
    warning = one(result, "registry-undeclared")
    assert warning.hint == "did you mean 'local'?"
    error = [i for i in issues(result, "missing-field") if "registry_url is required" in i.message]
    assert len(error) == 1


def test_legacy_repository_url_accepted(repo: Loader) -> None:
    body = ADDON.replace(
        "          registry_name: local\n", "          repository_url: https://charts.example.com\n"
    )
    result = repo({ROOT: stacks(body)})
    assert result.ok, result.report.to_text()
    assert one(result, "legacy-field").severity.value == "warning"
    assert result.resolved is not None
    assert result.resolved.addons["web"].registry_url == "https://charts.example.com"


def test_chart_version_range_refused(repo: Loader) -> None:
    issue = one(repo({ROOT: stacks(ADDON.replace('"1.0.0"', '"^1.0.0"'))}), "chart-version")
    assert "is a range" in issue.message


def test_observability_credentials_refused(repo: Loader) -> None:
    text = stacks(ADDON).replace(
        "  helm_registries:",
        "  prometheus_metrics:\n    endpoint: prom:9090\n    password: x\n  helm_registries:",
    )
    issue = one(repo({ROOT: text}), "unknown-field")
    assert issue.message == "credential field 'password' is not allowed here"
    assert "credential_name" in issue.hint
    assert at(issue) == (ROOT, 8, 5)


def test_log_source_unknown_key_names_accepted_set(repo: Loader) -> None:
    text = stacks(ADDON).replace(
        "  helm_registries:",
        "  log_source:\n    provider: loki\n    endpoint: https://loki:3100\n    tennant_id: x\n  helm_registries:",  # noqa: E501
    )
    issue = one(repo({ROOT: text}), "unknown-field")
    assert issue.hint == "did you mean 'tenant_id'?"


def test_settings_defaults_aliases_and_flat_retry(repo: Loader) -> None:
    settings = (
        "          settings:\n            syncPolicy:\n              automated: {prune: false, selfHeal: true}\n"  # noqa: E501
        "            retry_policy: {limit: 2, backoff_duration: 10s, backoff_factor: 3, backoff_max: 5m}\n"
        "            ignoreDifferences:\n              - kind: Deployment\n                jsonPointers: [/spec/replicas]\n"  # noqa: E501
        "            strict_health_check: true\n"
    )
    result = repo({ROOT: stacks(ADDON + settings)})
    assert result.ok, result.report.to_text()
    assert result.cluster is not None
    s = result.cluster.spec.stacks[0].addons[0].settings
    assert s.sync_policy.auto_prune is False
    assert s.sync_policy.self_heal is True
    assert (s.retry_policy.limit, s.retry_policy.backoff.duration, s.retry_policy.backoff.factor) == (
        2,
        "10s",
        3,
    )
    assert s.retry_policy.backoff.max_duration == "5m"
    assert s.strict_health_check is True
    assert "RespectIgnoreDifferences=true" in s.effective_sync_options


@pytest.mark.parametrize(
    ("settings", "code", "needle"),
    [
        ("sync_policy: {sync_options: [CreateNamespce=true]}", "sync-option", "unknown sync option"),
        ("retry_policy: {limit: 101}", "less-than-equal", "'limit' must be less than or equal to 100"),
        ("retry_policy: {backoff: {factor: 11}}", "less-than-equal", "'factor'"),
        ("revision_history_limit: 0", "greater-than-equal", "'revision_history_limit'"),
        ("sync_window: {enabled: true, schedule: '0 22 * * *'}", "sync-window", "needs both"),
        ("sync_window: {schedule: 'every day'}", "cron", "not a 5-field cron"),
        ("sync_window: {timezone: Mars/Base}", "timezone", "not an IANA time zone"),
        ("retry_policy: {backoff: {duration: 5 seconds}}", "duration", "not a duration"),
        ("ignore_differences: [{json_pointers: [spec/replicas]}]", "json-pointer", "not a JSON pointer"),
    ],
)
def test_settings_rules(repo: Loader, settings: str, code: str, needle: str) -> None:
    result = repo({ROOT: stacks(ADDON + f"          settings: {{{settings}}}\n")})
    issue = one(result, code)
    assert needle in issue.message
    assert at(issue)[:2] == (ROOT, 17)


def test_ignore_rule_without_specifier_warns(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          settings: {ignore_differences: [{kind: Deployment}]}\n")})
    assert one(result, "ignore-rule").severity.value == "warning"
    assert result.ok


def test_git_repository_shapes(repo: Loader) -> None:
    text = stacks(ADDON).replace(
        "  helm_registries:",
        "  git_repository:\n    provider: bitbucket_data_center\n    credential_name: bb\n    branch: main\n"
        "    project_key: OPS\n    repo_slug: clusters\n  helm_registries:",
    )
    issue = one(repo({ROOT: text}), "missing-instance-url")
    assert "instance_url" in issue.message


def test_bitbucket_cloud_shape_ok(repo: Loader) -> None:
    text = stacks(ADDON).replace(
        "  helm_registries:",
        "  git_repository:\n    provider: bitbucket_cloud\n    credential_name: bb\n    branch: env/prod\n"
        "    workspace: acme\n    repo_slug: clusters\n  helm_registries:",
    )
    assert repo({ROOT: text}).ok


def test_wire_only_fields_ignored_with_warning(repo: Loader) -> None:
    result = repo({ROOT: stacks(ADDON + "          state: deployed\n          position: {x: 1, y: 2}\n")})
    assert result.ok
    assert len(issues(result, "ignored-field")) == 2


def test_every_problem_reported_at_once(repo: Loader) -> None:
    body = ADDON.replace('"1.0.0"', "1.20").replace("namespace: apps", "namespace: BAD") + (
        "          parents: [{addon: ghost}]\n"
    )
    result = repo({ROOT: stacks(body + "    - name: t\n      deploy_wave: -3\n")})
    codes = {i.code for i in result.report.errors}
    assert {"type", "greater-than-equal"} <= codes
    # The invalid add-on is left out, but a later, separate stack error is still found.
    assert len(result.report.errors) >= 2
