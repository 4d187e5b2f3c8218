"""Every problem in one pass: a broken field in one entry hides neither that entry's reference
errors nor other entries' problems (issue 16, item 6)."""

from __future__ import annotations

import pytest

from tests.unit.spec.helpers import HEADER, Loader

ROOT = "import-cluster.yaml"


def _addon(name: str, extra: str = "", parents: str = "") -> str:
    text = (
        f"        - name: {name}\n          chart_name: c\n          chart_version: '1.0.0'\n"
        f"          registry_name: local\n          namespace: ns\n"
    )
    if parents:
        text += f"          parents: {parents}\n"
    return text + extra


def _manifest(name: str, body: str = "", extra: str = "", parents: str = "") -> str:
    body = body or f"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {{name: {name}, namespace: ns}}\\n"
    text = f'        - name: {name}\n          manifest: "{body}"\n'
    if parents:
        text += f"          parents: {parents}\n"
    return text + extra


def _stack(name: str, manifests: str = "", addons: str = "", extra: str = "") -> str:
    text = f"    - name: {name}\n{extra}"
    if manifests:
        text += "      manifests:\n" + manifests
    if addons:
        text += "      addons:\n" + addons
    return text


def _doc(*stacks: str, spec_extra: str = "") -> str:
    return HEADER + spec_extra + "  stacks:\n" + "".join(stacks)


# (case id, definition, codes expected (each at least once), codes or message parts that must not appear)
CASES = [
    (
        "misspelt field keeps the entry's unknown parent",
        _doc(_stack("s", addons=_addon("a", "          chart_versoin: x\n", "[{manifest: nope}]"))),
        {"unknown-field", "parent-missing"},
        set(),
    ),
    (
        "missing field keeps the entry's unknown parent",
        _doc(
            _stack(
                "s",
                addons="        - name: a\n          chart_name: c\n          registry_name: local\n"
                "          namespace: ns\n          parents: [{addon: ghost}]\n",
            )
        ),
        {"missing-field", "parent-missing"},
        set(),
    ),
    (
        "a broken entry is still a parent others may name",
        _doc(
            _stack(
                "s",
                addons=_addon("a", "          chart_versoin: x\n") + _addon("b", parents="[{addon: a}]"),
            )
        ),
        {"unknown-field"},
        {"parent-missing"},
    ),
    (
        "a cycle through a broken entry",
        _doc(
            _stack(
                "s",
                addons=_addon("a", "          colour: red\n", "[{addon: b}]")
                + _addon("b", parents="[{addon: a}]"),
            )
        ),
        {"unknown-field", "cycle"},
        set(),
    ),
    (
        "a broken stack keeps its entries in the graph",
        _doc(
            _stack(
                "s",
                extra="      deploy_wav: 1\n",
                manifests=_manifest("m", parents="[{manifest: missing}]"),
            ),
            _stack("t", addons=_addon("b", parents="[{manifest: m}]")),
        ),
        {"unknown-field", "parent-missing"},
        {"manifest 'm', which is not defined"},
    ),
    (
        "one broken entry does not hide another entry's problem",
        _doc(
            _stack("s", addons=_addon("a", "          chart_versoin: x\n")),
            _stack("t", addons=_addon("b", parents="[{manifest: nope}]")),
        ),
        {"unknown-field", "parent-missing"},
        set(),
    ),
    (
        "a misspelt spec field does not make every registry unknown",
        _doc(_stack("s", addons=_addon("a")), spec_extra="  variabels: {A: b}\n"),
        {"unknown-field"},
        {"registry"},
    ),
    (
        "a broken manifest parent in a cycle with a broken add-on",
        _doc(
            _stack(
                "s",
                manifests=_manifest("m", extra="          forse: true\n", parents="[{addon: a}]"),
                addons=_addon("a", "          chart_versoin: x\n", "[{manifest: m}]"),
            )
        ),
        {"unknown-field", "cycle"},
        set(),
    ),
]


@pytest.mark.parametrize(("text", "expected", "absent"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_problem_in_one_pass(repo: Loader, text: str, expected: set[str], absent: set[str]) -> None:
    result = repo({ROOT: text})
    codes = {i.code for i in result.report.errors}
    assert expected <= codes, result.report.to_text()
    assert not (absent & codes), result.report.to_text()
    text_out = result.report.to_text()
    for part in (a for a in absent if " " in a):
        assert part not in text_out
    assert not result.ok


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\ndata: {a: b}\n"


def test_two_entries_defining_one_object_name_both_places(repo: Loader) -> None:
    body = (
        "  stacks:\n    - name: s\n      manifests:\n"
        "        - name: one\n          from_file: one.yaml\n"
        "        - name: two\n          from_file: two.yaml\n"
        "        - name: elsewhere\n          from_file: three.yaml\n"
    )
    three = CM.replace("namespace: apps", "namespace: other")  # another namespace: no conflict
    result = repo({ROOT: HEADER + body, "one.yaml": CM, "two.yaml": "---\n" + CM, "three.yaml": three})
    found = [i for i in result.report.errors if i.code == "duplicate-object"]
    assert len(found) == 1, result.report.to_text()
    assert found[0].message == (
        "ConfigMap apps/settings is defined twice: here and by manifest 'one' at one.yaml:1:1; "
        "the two would overwrite each other"
    )
    assert found[0].location is not None
    assert (found[0].location.file, found[0].location.line) == ("two.yaml", 2)


def test_entry_namespace_and_cluster_scoped_kinds_count(repo: Loader) -> None:
    no_ns = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
    ns_a = "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n"
    ns_b = "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps, namespace: ignored}\n"
    body = (
        "  stacks:\n    - name: s\n      manifests:\n"
        "        - name: one\n          namespace: apps\n          from_file: one.yaml\n"
        "        - name: two\n          from_file: two.yaml\n"
        "        - name: n1\n          from_file: n1.yaml\n"
        "        - name: n2\n          from_file: n2.yaml\n"
    )
    files = {ROOT: HEADER + body, "one.yaml": no_ns, "two.yaml": CM, "n1.yaml": ns_a, "n2.yaml": ns_b}
    result = repo(files)
    messages = sorted(i.message.split(" is defined")[0] for i in result.report.errors)
    assert messages == ["ConfigMap apps/settings", "Namespace apps"], result.report.to_text()


def test_a_broken_entry_still_has_its_files_checked(repo: Loader) -> None:
    body = (
        "  stacks:\n    - name: s\n      manifests:\n"
        "        - name: m\n          forse: true\n          from_file: missing.yaml\n"
        "      addons:\n"
        "        - name: a\n          chart_name: c\n          chart_versoin: '1'\n"
        "          registry_name: local\n          namespace: ns\n"
        "          configuration: {from_file: values-missing.yaml}\n"
    )
    result = repo({ROOT: HEADER + body})
    text = result.report.to_text()
    assert text.count("unknown field") == 2, text
    assert "missing.yaml" in text
    assert "values-missing.yaml" in text
    assert result.resolved is not None
    assert result.resolved.addons == {}  # a broken entry deploys nothing
    assert result.resolved.manifests == {}


def test_a_broken_entry_still_conflicts_with_others(repo: Loader) -> None:
    body = (
        "  stacks:\n    - name: s\n      manifests:\n"
        "        - name: one\n          from_file: one.yaml\n"
        "        - name: two\n          colour: red\n          from_file: two.yaml\n"
    )
    result = repo({ROOT: HEADER + body, "one.yaml": CM, "two.yaml": CM})
    codes = sorted(i.code for i in result.report.errors)
    assert codes == ["duplicate-object", "unknown-field"], result.report.to_text()
