"""The limited YAML loader: locations, traps and hostile input."""

from __future__ import annotations

import pytest

from moorage.spec.report import SpecError
from moorage.spec.yamlsafe import Limits, decode_text, explain_trap, parse_bytes, parse_documents


def test_locations_of_values_and_keys() -> None:
    (doc,) = parse_documents("a:\n  b: [1, 2]\n  c: x\n", "f.yaml")
    assert doc.value == {"a": {"b": [1, 2], "c": "x"}}
    assert doc.location(("a", "b", 1)) == doc.location(("a", "b", 1))
    loc = doc.location(("a", "b", 1))
    assert (loc.file, loc.line, loc.column) == ("f.yaml", 2, 10)
    key = doc.location(("a", "c"), key=True)
    assert (key.line, key.column) == (3, 3)


def test_plain_scalars_resolve_like_yaml_1_1_and_remember_source() -> None:
    (doc,) = parse_documents("v: 1.20\nb: yes\nn: ~\ns: '1.20'\nd: 2024-01-01\nk: 0755\n", "f.yaml")
    assert doc.value == {"v": 1.2, "b": True, "n": None, "s": "1.20", "d": "2024-01-01", "k": 493}
    assert doc.raws[("v",)] == "1.20"
    assert ("s",) not in doc.raws


@pytest.mark.parametrize(
    ("raw", "value", "needle"),
    [
        ("1.20", 1.2, "loses the trailing zero"),
        ("yes", True, "boolean true"),
        ("off", False, "boolean false"),
        ("~", None, "null"),
        ("1:20", 80, "base-60"),
        ("0755", 493, "the number 493"),
    ],
)
def test_type_traps_are_explained(raw: str, value: object, needle: str) -> None:
    assert needle in explain_trap(raw, value)


def test_keys_keep_their_text() -> None:
    (doc,) = parse_documents("on: 1\n1.20: x\n", "f.yaml")
    assert doc.value == {"on": 1, "1.20": "x"}


def test_merge_keys() -> None:
    (doc,) = parse_documents("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert doc.value["other"] == {"x": 1, "y": 3}


def test_duplicate_key_is_refused_with_both_lines() -> None:
    with pytest.raises(SpecError) as err:
        parse_documents("a: 1\nb: 2\na: 3\n", "dup.yaml")
    assert err.value.code == "duplicate-key"
    assert "duplicate key 'a' (first defined on line 1)" in err.value.message
    assert err.value.location is not None
    assert (err.value.location.file, err.value.location.line, err.value.location.column) == ("dup.yaml", 3, 1)


def test_alias_bomb_is_refused() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(SpecError) as err:
        parse_documents("\n".join(lines) + "\n", "bomb.yaml")
    assert err.value.code == "limit-aliases"
    assert "alias bomb" in err.value.message
    assert err.value.location is not None
    assert err.value.location.file == "bomb.yaml"
    assert err.value.location.line >= 4


def test_deep_nesting_is_refused() -> None:
    text = "[" * 200 + "]" * 200
    with pytest.raises(SpecError) as err:
        parse_documents(text, "deep.yaml", Limits(max_depth=50))
    assert err.value.code == "limit-depth"
    assert "nesting is too deep (the limit is 50 levels)" in err.value.message
    assert err.value.location is not None
    assert err.value.location.line == 1


def test_too_many_documents() -> None:
    text = "---\na: 1\n" * 12
    with pytest.raises(SpecError) as err:
        parse_documents(text, "many.yaml", Limits(max_documents=10))
    assert err.value.code == "limit-documents"
    assert "too many YAML documents (the limit is 10 per file)" in err.value.message
    assert err.value.location is not None
    assert err.value.location.line == 21


def test_oversized_file() -> None:
    with pytest.raises(SpecError) as err:
        decode_text(b"a: 1\n" * 100, "big.yaml", Limits(max_file_bytes=64))
    assert err.value.code == "limit-file-size"
    assert "file is too large (500 bytes; the limit is 64 bytes)" in err.value.message
    assert err.value.location is not None
    assert err.value.location.file == "big.yaml"


def test_binary_content() -> None:
    with pytest.raises(SpecError) as err:
        parse_bytes(b"a: 1\nb: \x00\x01\x02", "bin.yaml")
    assert err.value.code == "binary-content"
    assert "binary" in err.value.message
    assert err.value.location is not None
    assert (err.value.location.line, err.value.location.column) == (2, 4)


def test_non_utf8_content() -> None:
    with pytest.raises(SpecError) as err:
        parse_bytes(b"a: 1\nname: caf\xe9\n", "latin1.yaml")
    assert err.value.code == "not-utf8"
    assert "not valid UTF-8 (invalid byte 0xe9)" in err.value.message
    assert err.value.location is not None
    assert (err.value.location.line, err.value.location.column) == (2, 10)


def test_bom_is_accepted() -> None:
    (doc,) = parse_bytes("\ufeffa: 1\n".encode(), "bom.yaml")
    assert doc.value == {"a": 1}


def test_syntax_error_has_location_and_hint() -> None:
    with pytest.raises(SpecError) as err:
        parse_documents("a: b: c\n", "bad.yaml")
    assert err.value.code == "yaml-syntax"
    assert err.value.message.startswith("the file is not valid YAML")
    assert "quoted" in err.value.hint
    assert err.value.location is not None
    assert err.value.location.line == 1


def test_unknown_tag_is_refused() -> None:
    with pytest.raises(SpecError) as err:
        parse_documents("a: !!python/object:os.system x\n", "tag.yaml")
    assert err.value.code == "yaml-tag"
    assert err.value.location is not None
    assert (err.value.location.line, err.value.location.column) == (1, 4)


def test_too_many_nodes() -> None:
    with pytest.raises(SpecError) as err:
        parse_documents("[" + ",".join(["1"] * 100) + "]", "n.yaml", Limits(max_nodes=50))
    assert err.value.code == "limit-nodes"
