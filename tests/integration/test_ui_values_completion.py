"""The values editor's completion (static/completion.js) in chromium, on its own: the pure
yamlPathAt (where the cursor is in the YAML) on a table of cases, and the widget on a bare page
with a fixed completion tree: proposals while typing, arrows, Enter, Tab, Escape, Ctrl+Space, a
click, the inserted key's indentation, and axe-core with the list open. No server is needed; the
whole page is exercised in test_ui_stack_builder.py."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.ui_support import accessibility_problems, browser

STATIC = Path(__file__).resolve().parents[2] / "src" / "moorage" / "server" / "ui" / "static"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>completion</title></head>
<body><main>
  <h1>Values</h1>
  <label for="v">Values (YAML)</label>
  <div class="completing">
    <textarea id="v" rows="8" aria-autocomplete="list" aria-controls="c"></textarea>
    <ul id="c" class="completions" role="listbox" aria-label="Keys the chart knows here" hidden></ul>
  </div>
  <p id="s" class="sr" aria-live="polite"></p>
</main></body></html>"""
TREE = {
    "type": "object",
    "keys": {
        "image": {
            "type": "object",
            "description": "The container image.",
            "keys": {"repository": {"type": "string", "default": "nginx"}, "tag": {"type": "string"}},
        },
        "logLevel": {"type": "string", "enum": ["debug", "info"], "default": "info"},
        "hosts": {"type": "array", "items": {"type": "object", "keys": {"host": {"type": "string"}}}},
        "replicas": {"type": "integer"},
    },
}


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with browser() as b:
        p = b.new_page()
        p.set_content(PAGE)
        for name in ("app.css", "stacks.css"):
            p.add_style_tag(path=str(STATIC / name))
        for name in ("app.js", "completion.js"):
            p.add_script_tag(path=str(STATIC / name))
        yield p


CASES = [
    ("rep^", {"path": [], "mode": "key", "prefix": "rep", "indent": 0}),
    ("image:\n  tag: x\n  rep^", {"path": ["image"], "mode": "key", "prefix": "rep", "indent": 2}),
    ("service:\n  type: ClusterIP\nim^", {"path": [], "mode": "key", "prefix": "im"}),
    ("logLevel: in^", {"path": ["logLevel"], "mode": "value", "key": "logLevel", "prefix": "in"}),
    (
        "# c\nimage:\n\n  # c\n  repository: ^",
        {"path": ["image", "repository"], "mode": "value", "prefix": ""},
    ),
    (
        "ingress:\n  hosts:\n    - host: a\n      paths:\n        - p\n      tl^",
        {"path": ["ingress", "hosts", "[]"], "mode": "key", "prefix": "tl", "indent": 6},
    ),
    ("ingress:\n  hosts:\n    - ho^", {"path": ["ingress", "hosts", "[]"], "indent": 6}),
    ("hosts:\n- host: a\n  pa^", {"path": ["hosts", "[]"], "indent": 2}),
    ("- name: a\n  config:\n    x^", {"path": ["[]", "config"], "indent": 4}),
    ("a:\n  b: |\n    text\n  c^", {"path": ["a"], "prefix": "c"}),
    ('"my key":\n  su^', {"path": ["my key"]}),
    ("a:\n  x: 1\n---\nb^", {"path": []}),
    (
        "image:\n  tag: x\n  re^\n  pullPolicy: a\nother: 1",
        {"path": ["image"], "siblings": ["pullPolicy", "tag"]},
    ),
    ("a:\n  b^\n  tags:\n    - x\n  - y\n  c: 1\nd: 2", {"path": ["a"], "siblings": ["tags", "c"]}),
    ("hosts:\n  - host: a\n    pa^\n  - host: b", {"path": ["hosts", "[]"], "siblings": ["host"]}),
    ("a: 1\n  b^", None),  # under a scalar
    ("config: |\n  foo: bar\n  ba^", None),  # inside a block of text
    ("a: b # note^", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_the_yaml_path_at_the_cursor(page: Any, text: str, expected: dict[str, Any] | None) -> None:
    found = page.evaluate(
        "([t, at]) => MoorageCompletion.yamlPathAt(t, at)", [text.replace("^", ""), text.index("^")]
    )
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert {k: found[k] for k in expected} == expected


def test_a_key_already_in_the_mapping_is_not_proposed_again(page: Any) -> None:
    labels = page.evaluate(
        "([tree, t]) => MoorageCompletion.proposals("
        "tree, MoorageCompletion.yamlPathAt(t, t.length - 12), false).map((p) => p.label)",
        [TREE, "image:\n  tag: 1\n  \nreplicas: 2"],
    )
    assert labels == ["repository"]


def options(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#c [role=option] .label").all_inner_texts()]


def test_the_widget_proposes_inserts_with_indentation_and_is_keyboard_driven(page: Any) -> None:
    page.evaluate(
        "(tree) => MoorageCompletion.attach(document.getElementById('v'), document.getElementById('c'),"
        " document.getElementById('s'), () => tree)",
        json.loads(json.dumps(TREE)),
    )
    area = page.locator("#v")
    area.focus()
    area.press_sequentially("ima")
    page.wait_for_selector("#c:not([hidden]) [role=option]")
    assert options(page) == ["image"]
    assert page.inner_text("#c [role=option]").startswith("image")
    assert "The container image." in page.inner_text("#c")
    assert area.get_attribute("aria-activedescendant") == "c-0"
    assert page.get_attribute("#c-0", "aria-selected") == "true"
    problems = accessibility_problems(page)
    assert problems == [], problems

    area.press("Enter")  # an object: its key, and the next line indented under it
    assert area.input_value() == "image:\n  "
    assert options(page) == ["repository", "tag"]  # proposed at once for the new place
    area.press_sequentially("t")
    assert options(page) == ["tag", "repository"]  # starting with it first, then containing it
    area.press("ArrowDown")
    assert area.get_attribute("aria-activedescendant") == "c-1"
    assert page.get_attribute("#c-1", "aria-selected") == "true"
    area.press("ArrowDown")  # wraps around
    assert area.get_attribute("aria-activedescendant") == "c-0"
    area.press("Escape")
    assert page.locator("#c").is_hidden()
    assert area.get_attribute("aria-activedescendant") is None
    area.press("Control+Space")
    assert options(page) == ["tag", "repository"]
    area.press("ArrowUp")
    area.press("Tab")
    assert area.input_value() == "image:\n  repository: "
    assert page.locator("#c").is_hidden()  # a string with no enum: nothing to propose while typing
    area.press("Control+Space")
    assert options(page) == ["nginx"]  # the default, when asked
    area.press("Escape")

    area.press_sequentially("nginx\nlog")
    page.click("#c [role=option]:has-text('logLevel')")
    assert area.input_value() == "image:\n  repository: nginx\nlogLevel: "
    assert options(page) == ["debug", "info"]  # the enum, for the value
    assert page.locator("#c-1 .type").inner_text() == "default"
    area.press("ArrowDown")
    area.press("Enter")
    assert area.input_value().endswith("\nlogLevel: info")
    assert page.locator("#c").is_hidden()

    area.press_sequentially("\nhos")
    area.press("Enter")
    assert area.input_value().endswith("\nhosts:\n  - ")
    assert options(page) == ["host"]  # the list's items' keys
    area.press("Enter")
    assert area.input_value().endswith("\nhosts:\n  - host: ")

    area.press_sequentially("\nimage:\n  zz")
    assert page.locator("#c").is_hidden()  # nothing known starts with or contains it
    area.press("Enter")  # so Enter is a new line
    assert area.input_value().endswith("\nimage:\n  zz\n")
