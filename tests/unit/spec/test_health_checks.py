"""spec.health_checks: the entry's shape, Argo CD's key, and scripts that do not compile or
expressions that do not parse reported with file, line and field like every other spec error."""

from __future__ import annotations

from tests.unit.spec.helpers import HEADER, Loader, at, one

ROOT = "import-cluster.yaml"


def definition(checks: str) -> str:
    return HEADER + "  health_checks:\n" + checks + "  stacks: []\n"


GOOD = """\
    - argocd_key: resource.customizations.health.cert-manager.io_Certificate
      lua: |
        hs = {}
        hs.status = "Healthy"
        return hs
    - apiVersion: bitnami.com/v1alpha1
      kind: SealedSecret
      cel:
        failed: status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')
        current: status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')
    - argocd_key: Service
      cel: {current: "true"}
"""


def test_valid_checks_and_their_keys(repo: Loader) -> None:
    result = repo({ROOT: definition(GOOD)})
    assert result.ok, result.report.to_text()
    assert result.cluster is not None
    checks = result.cluster.spec.health_checks
    assert [c.group_kind for c in checks] == [
        ("cert-manager.io", "Certificate"),
        ("bitnami.com", "SealedSecret"),
        ("", "Service"),
    ]
    assert checks[1].cel is not None
    assert [name for name, _ in checks[1].cel.expressions()] == ["failed", "current"]


def test_lua_that_does_not_compile_names_file_line_and_field(repo: Loader) -> None:
    bad = """\
    - argocd_key: example.com_Widget
      lua: |
        local hs = {}
        if obj.status ~= nil then
          hs.status = "Healthy"
        end
        return hs end
"""
    issue = one(repo({ROOT: definition(bad)}), "health-check-lua")
    assert issue.message == (
        "the Lua health check for example.com/Widget does not compile: line 5: <eof> expected near 'end'"
    )
    assert at(issue)[:2] == (ROOT, 16)  # the line of `return hs end` in the file
    assert issue.path == "health_checks[0].lua"


def test_cel_that_does_not_parse_names_file_line_and_field(repo: Loader) -> None:
    bad = """\
    - group: example.com
      kind: Gadget
      cel:
        current: "status.phase == 'Ready'"
        inProgress: "status.phase =="
"""
    issue = one(repo({ROOT: definition(bad)}), "health-check-cel")
    assert issue.message.startswith("the CEL expression 'inProgress' for example.com/Gadget does not parse: ")
    assert at(issue)[:2] == (ROOT, 14)
    assert issue.path == "health_checks[0].cel.inProgress"


def test_cel_comprehensions_nested_too_deep(repo: Loader) -> None:
    bad = """\
    - group: example.com
      kind: Gadget
      cel:
        current: "[1,2].all(a, [1,2].all(b, [1,2].all(c, a + b + c > 0)))"
"""
    issue = one(repo({ROOT: definition(bad)}), "health-check-cel")
    assert "nest 3 deep; at most 2 are allowed" in issue.message


def test_duplicate_kind(repo: Loader) -> None:
    dup = """\
    - argocd_key: example.com_Widget
      cel: {current: "true"}
    - group: example.com
      kind: Widget
      lua: 'return {status = "Healthy"}'
"""
    issue = one(repo({ROOT: definition(dup)}), "duplicate-health-check")
    assert issue.message.startswith("example.com/Widget has more than one health check (first at ")
    assert at(issue)[:2] == (ROOT, 12)


def test_shape_errors(repo: Loader) -> None:
    both = "    - kind: Widget\n      lua: x\n      cel: {current: 'true'}\n"
    issue = one(repo({ROOT: definition(both)}), "health-check-shape")
    assert issue.message == "a health check needs exactly one of 'lua' or 'cel'"
    assert at(issue)[:2] == (ROOT, 10)
    no_kind = "    - group: example.com\n      cel: {current: 'true'}\n"
    assert "needs 'kind'" in one(repo({ROOT: definition(no_kind)}), "health-check-key").message
    wildcard = "    - argocd_key: '*.crossplane.io_*'\n      cel: {current: 'true'}\n"
    assert (
        "wildcards are not supported" in one(repo({ROOT: definition(wildcard)}), "health-check-key").message
    )
    no_current = "    - kind: Widget\n      cel: {failed: 'true'}\n"
    assert (
        one(repo({ROOT: definition(no_current)}), "missing-field").message
        == "missing required field 'current'"
    )
