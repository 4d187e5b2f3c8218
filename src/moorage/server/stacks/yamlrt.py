"""Round-trip YAML for the Stack Builder: load a file keeping comments, key order and quoting, and
write it back so that only the lines an edit changed differ from the original text.

ruamel.yaml writes every file with one indentation setting, while repositories mix them (a top-level
list at column 0 with nested lists indented by two). So the file's own style is guessed among the
usual ones (the one whose unedited dump differs in the fewest lines), and when the unedited dump
has as many lines as the original, lines the edit did not touch are taken from the original text."""

import difflib
import io
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

# (mapping indent, sequence indent, dash offset)
_STYLES: tuple[tuple[int, int, int], ...] = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 3, 1))


class YamlEditError(ValueError):
    """A file cannot be edited as YAML; `message` names the file and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _yaml(style: tuple[int, int, int], explicit_start: bool) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = style
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.explicit_start = explicit_start
    return yaml


def _dump(docs: list[Any], style: tuple[int, int, int], explicit_start: bool) -> str:
    out = io.StringIO()
    _yaml(style, explicit_start).dump_all(docs, out)
    return out.getvalue()


@dataclass
class RoundTrip:
    """One file's documents (ruamel nodes, edited in place) with what is needed to write it back."""

    path: str
    original: str
    docs: list[Any]
    style: tuple[int, int, int] = (2, 4, 2)
    explicit_start: bool = False
    baseline: str = field(default="", repr=False)  # the unedited documents as ruamel dumps them

    @classmethod
    def load(cls, path: str, text: str) -> "RoundTrip":
        explicit = text.lstrip().startswith("---")
        try:
            docs = list(_yaml(_STYLES[0], explicit).load_all(text))
        except YAMLError as e:
            raise YamlEditError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
        best: tuple[int, tuple[int, int, int], str] | None = None
        for style in _STYLES:
            dumped = _dump(docs, style, explicit)
            score = _changed_lines(text, dumped)
            if best is None or score < best[0]:
                best = (score, style, dumped)
            if score == 0:
                break
        assert best is not None
        return cls(path, text, docs, best[1], explicit, best[2])

    def text(self) -> str:
        """The documents as text, the original's lines kept wherever the edit left them alone."""
        edited = _dump(self.docs, self.style, self.explicit_start)
        if edited == self.baseline:
            return self.original
        merged = merge_lines(self.original, self.baseline, edited)
        if merged != edited and not _same(merged, edited):
            return edited  # the original's style could not be kept: the file is re-indented
        return merged


def _same(a: str, b: str) -> bool:
    """Both texts mean the same documents (and `a` is valid YAML)."""
    safe = YAML(typ="safe", pure=True)
    try:
        return list(safe.load_all(a)) == list(safe.load_all(b))
    except YAMLError:
        return False


def _changed_lines(a: str, b: str) -> int:
    matcher = difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def _shape(line: str) -> tuple[int, bool]:
    stripped = line.lstrip(" ")
    return len(line) - len(stripped), stripped.startswith("- ")


def _shift(line: str, base: list[str], orig: list[str], at: int) -> str:
    """`line` (written by the dumper) re-indented like the original's lines of the same shape
    (indent and whether it starts a list item) nearest before `at`, else after it."""
    if not line.strip():
        return line
    shape = _shape(line)
    order = [*range(at - 1, -1, -1), *range(at, len(base))]
    for i in order:
        if base[i].strip() and _shape(base[i]) == shape:
            delta = _shape(orig[i])[0] - shape[0]
            return " " * (shape[0] + delta) + line.lstrip(" ") if shape[0] + delta >= 0 else line
    return line


def merge_lines(original: str, baseline: str, edited: str) -> str:
    """`edited`, with every line that is unchanged from `baseline` written as in `original` and
    new lines indented like their neighbours there.

    `baseline` is `original` re-dumped without edits; when the two have the same number of lines,
    line i of one is line i of the other (only indentation or spacing differ). The caller checks
    that the result still means `edited`."""
    orig = original.splitlines(keepends=True)
    base = baseline.splitlines(keepends=True)
    new = edited.splitlines(keepends=True)
    if len(orig) != len(base):
        return edited
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, base, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(orig[i1:i2])
        else:
            out.extend(_shift(line, base, orig, i1) for line in new[j1:j2])
    text = "".join(out)
    if original.endswith("\n") and not text.endswith("\n"):
        text += "\n"
    return text


def dump_value(value: Any, style: tuple[int, int, int] = (2, 4, 2)) -> str:
    """A plain value (a mapping of values, a new file's content) as YAML text."""
    return _dump([value], style, False)


def load_text(path: str, text: str) -> Any:
    """One document as round-trip nodes (for a YAML string held inside another file)."""
    try:
        return _yaml(_STYLES[0], False).load(text)
    except YAMLError as e:
        raise YamlEditError(f"{path}: the YAML text is not valid: {str(e).splitlines()[0]}") from None
