"""A size-, depth- and alias-limited YAML loader that remembers where every value came from.

Built on libyaml's event parser (``yaml._yaml.CParser``): the C code tokenises, and this module
composes the events into plain Python values itself. Composing here rather than in C is what lets
us count nodes (alias bombs), bound nesting, refuse duplicate keys and record line/column for every
value and key without a second pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import _yaml as libyaml

from moorage.spec.report import Location, SpecError

PathKey = tuple[str | int, ...]

_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_VALUE = "tag:yaml.org,2002:value"
_PLAIN_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _MERGE, _VALUE}


@dataclass(frozen=True)
class Limits:
    """Bounds applied to every untrusted file; defaults fit real cluster definitions and CRDs."""

    max_file_bytes: int = 8 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024
    max_files: int = 5000
    max_documents: int = 1000
    max_depth: int = 100
    max_nodes: int = 1_000_000
    max_alias_nodes: int = 100_000
    max_include_depth: int = 8


DEFAULT_LIMITS = Limits()


@dataclass
class YamlDoc:
    """One YAML document: the value, and where each value and mapping key started (0-based)."""

    value: Any
    file: str
    locs: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_locs: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # Source text of plain scalars that did not become strings, to explain type traps (1.20 -> 1.2).
    raws: dict[PathKey, str] = field(default_factory=dict)
    line_offset: int = 0

    def location(self, path: PathKey, *, key: bool = False) -> Location:
        """Where ``path`` starts; a path with no entry (e.g. reached through an alias) uses its parent."""
        pos = self.key_locs.get(path) if key else None
        probe = path
        while pos is None:
            pos = self.locs.get(probe)
            if pos is None:
                if not probe:
                    pos = (0, 0)
                probe = probe[:-1]
        return Location(self.file, pos[0] + 1 + self.line_offset, pos[1] + 1)


def decode_text(data: bytes, file: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Decode untrusted bytes as UTF-8 text, refusing oversized, binary or non-UTF-8 content."""
    if len(data) > limits.max_file_bytes:
        raise SpecError(
            f"file is too large ({len(data)} bytes; the limit is {limits.max_file_bytes} bytes)",
            code="limit-file-size",
            location=Location(file),
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise SpecError(
            "file looks binary (it contains a NUL byte); only UTF-8 text is accepted",
            code="binary-content",
            location=_offset_location(data, nul, file),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"file is not valid UTF-8 (invalid byte 0x{data[exc.start]:02x})",
            code="not-utf8",
            location=_offset_location(data, exc.start, file),
            hint="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _offset_location(data: bytes, offset: int, file: str) -> Location:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return Location(file, line, offset - start + 1)


class _Composer:
    def __init__(self, file: str, limits: Limits) -> None:
        self.file = file
        self.limits = limits
        self.nodes = 0
        self.alias_nodes = 0

    def compose_all(self, text: str) -> list[YamlDoc]:
        parser: Any = libyaml.CParser(text)
        docs: list[YamlDoc] = []
        try:
            event = parser.get_event()  # StreamStart
            while True:
                event = parser.get_event()
                if isinstance(event, yaml.StreamEndEvent):
                    break
                # DocumentStartEvent
                if len(docs) >= self.limits.max_documents:
                    raise SpecError(
                        f"too many YAML documents (the limit is {self.limits.max_documents} per file)",
                        code="limit-documents",
                        location=self._loc(event.start_mark),
                    )
                doc = YamlDoc(None, self.file)
                anchors: dict[str, tuple[Any, int]] = {}
                doc.value = self._node(parser, parser.get_event(), (), 0, doc, anchors)
                parser.get_event()  # DocumentEnd
                docs.append(doc)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or "invalid YAML"
            context = f" {exc.context}" if exc.context else ""
            raise SpecError(
                f"the file is not valid YAML: {problem}{context}",
                code="yaml-syntax",
                location=self._loc(mark) if mark else Location(self.file),
                hint=_syntax_hint(problem),
            ) from None
        except yaml.YAMLError as exc:
            raise SpecError(
                f"the file is not valid YAML: {exc}", code="yaml-syntax", location=Location(self.file)
            ) from None
        return docs

    def _loc(self, mark: Any) -> Location:
        return Location(self.file, mark.line + 1, mark.column + 1)

    def _count(self, mark: Any, n: int = 1) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            raise SpecError(
                f"too many YAML nodes (the limit is {self.limits.max_nodes} per file)",
                code="limit-nodes",
                location=self._loc(mark),
            )

    def _node(
        self,
        parser: Any,
        event: Any,
        path: PathKey,
        depth: int,
        doc: YamlDoc,
        anchors: dict[str, tuple[Any, int]],
    ) -> Any:
        mark = event.start_mark
        if depth > self.limits.max_depth:
            raise SpecError(
                f"YAML nesting is too deep (the limit is {self.limits.max_depth} levels)",
                code="limit-depth",
                location=self._loc(mark),
            )
        doc.locs[path] = (mark.line, mark.column)
        if isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor or "")
            if target is None:
                raise SpecError(
                    f"unknown YAML alias *{event.anchor}", code="yaml-syntax", location=self._loc(mark)
                )
            value, size = target
            # Aliases share one Python object, but everything downstream walks the expanded tree:
            # count the expansion so a "billion laughs" document is refused here, cheaply.
            self.alias_nodes += size
            if self.alias_nodes > self.limits.max_alias_nodes:
                raise SpecError(
                    "YAML aliases expand to too many nodes "
                    f"(more than {self.limits.max_alias_nodes}); this looks like an alias bomb",
                    code="limit-aliases",
                    location=self._loc(mark),
                )
            self._count(mark, size)
            return value
        start_nodes = self.nodes
        self._count(mark)
        if isinstance(event, yaml.ScalarEvent):
            value = self._scalar(event, path, doc)
        elif isinstance(event, yaml.SequenceStartEvent):
            self._check_tag(event.tag, _SEQ, mark)
            items: list[Any] = []
            value = items
            index = 0
            while True:
                child = parser.get_event()
                if isinstance(child, yaml.SequenceEndEvent):
                    break
                items.append(self._node(parser, child, (*path, index), depth + 1, doc, anchors))
                index += 1
        elif isinstance(event, yaml.MappingStartEvent):
            self._check_tag(event.tag, _MAP, mark)
            value = self._mapping(parser, path, depth, doc, anchors)
        else:  # pragma: no cover - libyaml emits only the events above inside a document
            raise SpecError("unexpected YAML event", code="yaml-syntax", location=self._loc(mark))
        if event.anchor is not None:
            anchors[event.anchor] = (value, self.nodes - start_nodes)
        return value

    def _check_tag(self, tag: str | None, expected: str, mark: Any) -> None:
        if tag not in (None, "!", expected):
            raise SpecError(
                f"unsupported YAML tag {tag}",
                code="yaml-tag",
                location=self._loc(mark),
                hint="remove the tag; only plain YAML is accepted",
            )

    def _mapping(
        self,
        parser: Any,
        path: PathKey,
        depth: int,
        doc: YamlDoc,
        anchors: dict[str, tuple[Any, int]],
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        while True:
            key_event = parser.get_event()
            if isinstance(key_event, yaml.MappingEndEvent):
                break
            kmark = key_event.start_mark
            if not isinstance(key_event, yaml.ScalarEvent):
                raise SpecError(
                    "mapping keys must be plain scalars (complex keys are not supported)",
                    code="yaml-key",
                    location=self._loc(kmark),
                )
            if key_event.tag == _MERGE or (
                key_event.value == "<<" and key_event.implicit[0] and key_event.tag is None
            ):
                source = self._node(parser, parser.get_event(), (*path, "<<"), depth + 1, doc, anchors)
                sources = source if isinstance(source, list) else [source]
                for item in reversed(sources):
                    if not isinstance(item, dict):
                        raise SpecError(
                            "a YAML merge key (<<) needs a mapping or a list of mappings",
                            code="yaml-merge",
                            location=self._loc(kmark),
                        )
                    merged.update(item)
                continue
            # Keys keep their source text: `on:` or `1.20:` as a key means the text, not a bool/float.
            key = key_event.value
            self._count(kmark)
            if key in first_seen:
                raise SpecError(
                    f"duplicate key '{key}' (first defined on line {first_seen[key] + 1})",
                    code="duplicate-key",
                    location=self._loc(kmark),
                    hint="YAML keeps only one value per key; remove or merge the duplicates",
                )
            first_seen[key] = kmark.line
            child_path = (*path, key)
            doc.key_locs[child_path] = (kmark.line, kmark.column)
            result[key] = self._node(parser, parser.get_event(), child_path, depth + 1, doc, anchors)
        if merged:
            for key, value in merged.items():
                result.setdefault(key, value)
        return result

    def _scalar(self, event: Any, path: PathKey, doc: YamlDoc) -> Any:
        value: str = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if event.implicit[0]:
                tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
            else:
                return value
        if tag in (_STR, _VALUE):
            return value
        if tag not in _PLAIN_TAGS:
            raise SpecError(
                f"unsupported YAML tag {tag}",
                code="yaml-tag",
                location=self._loc(event.start_mark),
                hint="remove the tag; only plain YAML is accepted",
            )
        if event.implicit[0]:
            doc.raws[path] = value
        if tag == _NULL:
            return None
        if tag in (_TIMESTAMP, _MERGE):
            # A date is almost always meant as text in a cluster definition; keep the text.
            return value
        node = yaml.ScalarNode(tag, value)
        try:
            if tag == _BOOL:
                return _CONSTRUCTOR.construct_yaml_bool(node)
            if tag == _INT:
                return _CONSTRUCTOR.construct_yaml_int(node)
            return _CONSTRUCTOR.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            raise SpecError(
                f"cannot read {value!r} as {tag.rsplit(':', 1)[-1]}",
                code="yaml-scalar",
                location=self._loc(event.start_mark),
            ) from None


def _syntax_hint(problem: str) -> str:
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    if "found character '\\t'" in problem or "tab" in problem:
        return "YAML indentation must use spaces, not tabs"
    if "expected <block end>" in problem:
        return "check the indentation of this line against the lines above"
    return ""


def parse_documents(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> list[YamlDoc]:
    """Parse every document of ``text``; raises SpecError (with a location) on any problem."""
    return _Composer(file, limits).compose_all(text)


def parse_bytes(data: bytes, file: str, limits: Limits = DEFAULT_LIMITS) -> list[YamlDoc]:
    return parse_documents(decode_text(data, file, limits), file, limits)


_TRAP_FLOAT = re.compile(r"^[-+]?\d+\.\d*0$")


def explain_trap(raw: str, value: Any) -> str:
    """Explain why unquoted ``raw`` did not stay text, or return ""."""
    low = raw.lower()
    if isinstance(value, bool):
        return (
            f"unquoted {raw} is read by YAML as the boolean {str(value).lower()}; "
            f'quote it ("{raw}") if you meant text'
        )
    if value is None:
        return f"unquoted {raw or 'empty value'} is read by YAML as null; quote it if you meant text"
    if isinstance(value, float):
        if _TRAP_FLOAT.match(raw):
            return (
                f"unquoted {raw} is read by YAML as the number {value!r}, "
                f'which loses the trailing zero; write "{raw}"'
            )
        if low in (".inf", "-.inf", "+.inf", ".nan"):
            return f'unquoted {raw} is read by YAML as a special float; write "{raw}"'
        return f'unquoted {raw} is read by YAML as a number; write "{raw}"'
    if isinstance(value, int):
        if ":" in raw:
            return f'unquoted {raw} is read by YAML 1.1 as the base-60 number {value}; write "{raw}"'
        if raw.startswith(("0o", "0x", "0b")) or (len(raw) > 1 and raw.startswith("0")):
            return f'unquoted {raw} is read by YAML as the number {value}; write "{raw}"'
        return f'unquoted {raw} is read by YAML as a number; write "{raw}"'
    return ""
