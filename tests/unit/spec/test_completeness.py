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
