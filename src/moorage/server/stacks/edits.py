"""Edits of a cluster definition, applied to a copy of the repository's files.

An edit names stacks and entries by name; the workspace finds the file and node that define each
(following `include`s as the loader does) and changes that file with round-trip YAML, so comments,
key order and layout stay. A new entry goes where its stack's includes say: a file of its own in an
included folder, else beside the stack's inline entries, else at the end of an included list file,
else in a new file next to an included single-entry file (with an include for it).

Nothing here talks to Git or the network; secret values are handed to an `Encryptor` (sops) and only
its ciphertext is written."""

import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from moorage.server.stacks.yamlmove import MoveError, move_item
from moorage.server.stacks.yamlrt import RoundTrip, YamlEditError, dump_value, load_text
from moorage.spec.paths import RepoFS
from moorage.spec.report import Location, SpecError
from moorage.spec.sops import is_encrypted_value, is_sops_document, listed_key
from moorage.spec.sopswrite import SOPS_CONFIG, EncryptError, encrypt_yaml, rule_for, unmatched

Kind = Literal["addon", "manifest"]
LIST_KEYS: dict[str, str] = {"addon": "addons", "manifest": "manifests"}
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.yaml$")
FILE_FIELDS = ("from_file", "description_from_file", "agents_md_from_file")

# (plaintext YAML, age recipients, secret paths) -> the SOPS-encrypted YAML text
Encryptor = Callable[[str, tuple[str, ...], tuple[str, ...]], str]


class EditError(ValueError):
    """The edit cannot be applied; `message` says why and what to do (it never holds a value)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------------------------------ edits


@dataclass(frozen=True)
class AddEntry:
    stack: str
    kind: Kind
    entry: Mapping[str, Any]


@dataclass(frozen=True)
class ChangeEntry:
    """Set fields of an entry: None removes a field, a mapping is merged into the one there."""

    stack: str
    kind: Kind
    name: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class RemoveEntry:
    stack: str
    kind: Kind
    name: str


@dataclass(frozen=True)
class SetValues:
    """Replace an add-on's values; the keys `secret` names are SOPS-encrypted (for `recipients`, else
    the age recipients of the repository's .sops.yaml rule for the values file)."""

    stack: str
    addon: str
    values: Mapping[str, Any]
    secret: tuple[str, ...] = ()
    recipients: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:  # never the values: some are secret
        return f"SetValues({self.stack!r}, {self.addon!r}, secret={list(self.secret)!r})"


@dataclass(frozen=True)
class SetChartVersion:
    stack: str
    addon: str
    version: str


@dataclass(frozen=True)
class ChangeStack:
    """Set fields of a stack (deploy_wave, description, variables …): None removes one, a mapping is
    merged; its name and its entry lists are changed by the other edits."""

    name: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class MoveEntry:
    """Move an add-on or manifest right before or right after another of the same stack (exactly
    one of `before` / `after`), within the list of the file that holds both."""

    stack: str
    kind: Kind
    name: str
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True)
class MoveStack:
    """Move a stack right before or right after another (exactly one of `before` / `after`)."""

    name: str
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True)
class AddStack:
    stack: Mapping[str, Any]


@dataclass(frozen=True)
class RemoveStack:
    name: str


@dataclass(frozen=True)
class SaveTemplate:
    """Move stack `stack` into a file of its own at repo-relative `path` (a reusable stack, kept in
    Git), included from where it was; its `${{ ankra.X }}` variables come from each cluster's
    `spec.variables`."""

    stack: str
    path: str


@dataclass(frozen=True)
class UseTemplate:
    """Include the stack template at repo-relative `path` in this definition, with `variables` set in
    its `spec.variables`."""

    path: str
    variables: Mapping[str, str] = field(default_factory=dict)


Edit = (
    AddEntry
    | ChangeEntry
    | RemoveEntry
    | SetValues
    | SetChartVersion
    | AddStack
    | ChangeStack
    | RemoveStack
    | SaveTemplate
    | UseTemplate
    | MoveEntry
    | MoveStack
)


def describe(edit: Edit) -> str:
    """What the edit changes, for the commit message (names only, never values)."""
    if isinstance(edit, AddEntry):
        return f"add {_kind_word(edit.kind)} {edit.entry.get('name')} to stack {edit.stack}"
    if isinstance(edit, ChangeEntry):
        what = ", ".join(sorted(edit.fields))
        return f"change {what} of {_kind_word(edit.kind)} {edit.name} in stack {edit.stack}"
    if isinstance(edit, RemoveEntry):
        return f"remove {_kind_word(edit.kind)} {edit.name} from stack {edit.stack}"
    if isinstance(edit, SetValues):
        secret = f" ({len(edit.secret)} encrypted with SOPS)" if edit.secret else ""
        return f"set values of add-on {edit.addon} in stack {edit.stack}{secret}"
    if isinstance(edit, SetChartVersion):
        return f"chart version of add-on {edit.addon} in stack {edit.stack} to {edit.version}"
    if isinstance(edit, AddStack):
        return f"add stack {edit.stack.get('name')}"
    if isinstance(edit, ChangeStack):
        return f"change {', '.join(sorted(edit.fields))} of stack {edit.name}"
    if isinstance(edit, SaveTemplate):
        return f"keep stack {edit.stack} as the template {edit.path}"
    if isinstance(edit, UseTemplate):
        names = f" with {', '.join(sorted(edit.variables))}" if edit.variables else ""
        return f"use the stack template {edit.path}{names}"
    if isinstance(edit, MoveEntry):
        where = f"before {edit.before}" if edit.before is not None else f"after {edit.after}"
        return f"move {_kind_word(edit.kind)} {edit.name} {where} in stack {edit.stack}"
    if isinstance(edit, MoveStack):
        where = f"before {edit.before}" if edit.before is not None else f"after {edit.after}"
        return f"move stack {edit.name} {where}"
    return f"remove stack {edit.name}"


def _kind_word(kind: str) -> str:
    return "add-on" if kind == "addon" else kind


# ------------------------------------------------------------------------------------- workspace


@dataclass
class Slot:
    """Where a stack or entry is defined: its node, the file, and the list holding it (None when the
    node is a document of its own)."""

    file: str
    node: CommentedMap
    container: CommentedSeq | None
    index: int  # in the container, or the document's index in the file


@dataclass
class _Item:
    """An item of a list written in `file`: the list and the item's index."""

    file: str
    items: CommentedSeq
    index: int


@dataclass
class _Target:
    kind: Literal["folder", "list", "single"]
    file: str  # the folder, list file or single-entry file
    index: int  # the include item's index in the stack's own list


class Workspace:
    """The repository copy at `root` (a commit's tree) and the definition whose root is `root_file`."""

    def __init__(self, root: Path, root_file: str, encrypt: Encryptor | None = None) -> None:
        self.fs = RepoFS(Path(root))
        self.root_file = root_file
        self.encrypt: Encryptor = encrypt or (lambda text, rcpt, paths: encrypt_yaml(text, rcpt, paths))
        self._files: dict[str, RoundTrip] = {}
        self._written: dict[str, str] = {}  # whole files written anew
        self._deleted: set[str] = set()
        self._originals: dict[str, str | None] = {}

    # ---------------------------------------------------------------- files

    def _exists(self, rel: str) -> bool:
        if rel in self._deleted:
            return False
        return rel in self._written or rel in self._files or (self.fs.root / rel).is_file()

    def file(self, rel: str) -> RoundTrip:
        if rel not in self._files:
            try:
                text = self._written.pop(rel) if rel in self._written else self.fs.read_text(rel)
            except SpecError as e:
                raise EditError(f"{rel}: {e.message}") from None
            try:
                self._files[rel] = RoundTrip.load(rel, text)
            except YamlEditError as e:
                raise EditError(e.message) from None
        return self._files[rel]

    def original(self, rel: str) -> str | None:
        """The file's text before any edit (None: it did not exist)."""
        if rel not in self._originals:
            path = self.fs.root / rel
            self._originals[rel] = path.read_text(encoding="utf-8") if path.is_file() else None
        return self._originals[rel]

    def changes(self) -> dict[str, str | None]:
        """Each changed file's new text (None: deleted), by repo-relative path."""
        out: dict[str, str | None] = {}
        for rel, rt in self._files.items():
            text = rt.text()
            if text != self.original(rel):  # (a moved list reloads a file: its `original` is then newer)
                out[rel] = text
        for rel, text in self._written.items():
            if text != self.original(rel):
                out[rel] = text
        for rel in self._deleted:
            if self.original(rel) is not None:
                out[rel] = None
        return dict(sorted(out.items()))

    def write_back(self) -> None:
        """Write the changes into the copy at `root` (for the validator to read)."""
        root = os.path.realpath(self.fs.root)
        for rel, text in self.changes().items():
            path = self.fs.root / rel
            if not os.path.realpath(path).startswith(root + os.sep):
                raise EditError(f"refusing to write {rel!r}: it is outside the repository")
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")

    def _resolve(self, ref: Any, referrer: str, what: str) -> str:
        if not isinstance(ref, str):
            raise EditError(f"{referrer}: {what} must be a path")
        try:
            return self.fs.resolve(ref, referrer, Location(referrer), what)
        except SpecError as e:
            raise EditError(f"{referrer}: {e.message}") from None

    def _included(self, ref: Any, referrer: str) -> list[str]:
        rel = self._resolve(ref, referrer, "include")
        if self.fs.is_dir(rel):
            return [f for f in self.fs.yaml_files_in(rel, Location(referrer)) if f not in self._deleted]
        return [rel]

    # ---------------------------------------------------------------- finding things

    def _walk(self, items: Any, file: str, depth: int = 0) -> Iterator[Slot]:
        """The mappings of a list that may hold includes (followed as the loader does), each as a Slot."""
        if not isinstance(items, CommentedSeq) or depth > 8:
            return
        for index, item in enumerate(items):
            if isinstance(item, CommentedMap) and "include" in item:
                for sub in self._included(item["include"], file):
                    rt = self.file(sub)
                    for di, doc in enumerate(rt.docs):
                        if isinstance(doc, CommentedSeq):
                            yield from self._walk(doc, sub, depth + 1)
                        elif isinstance(doc, CommentedMap):
                            yield Slot(sub, doc, None, di)
            elif isinstance(item, CommentedMap):
                yield Slot(file, item, items, index)

    def _spec(self) -> CommentedMap:
        rt = self.file(self.root_file)
        doc = rt.docs[0] if rt.docs else None
        spec = doc.get("spec") if isinstance(doc, CommentedMap) else None
        if not isinstance(spec, CommentedMap) or not isinstance(spec.get("stacks"), CommentedSeq):
            raise EditError(f"{self.root_file} has no spec.stacks list to edit")
        return spec

    def stacks(self) -> list[Slot]:
        return list(self._walk(self._spec()["stacks"], self.root_file))

    def stack(self, name: str) -> Slot:
        found = [s for s in self.stacks() if s.node.get("name") == name]
        if not found:
            names = ", ".join(str(s.node.get("name")) for s in self.stacks()) or "none"
            raise EditError(f"stack {name!r} is not in the definition (its stacks: {names})")
        return found[0]

    def entries(self, stack: Slot, kind: str) -> list[Slot]:
        items = stack.node.get(LIST_KEYS[kind])
        return list(self._walk(items, stack.file))

    def entry(self, stack_name: str, kind: str, name: str) -> tuple[Slot, Slot]:
        stack = self.stack(stack_name)
        for slot in self.entries(stack, kind):
            if slot.node.get("name") == name:
                return stack, slot
        raise EditError(f"stack {stack_name!r} has no {_kind_word(kind)} named {name!r}")

    # ---------------------------------------------------------------- placing and removing

    def _place(self, holder: CommentedMap, key: str, file: str, entry: CommentedMap, name: str) -> str:
        """Put a new `entry` into list `holder[key]` (written in `file`) where its includes say;
        returns the file it went to."""
        items = holder.get(key)
        targets: list[_Target] = []
        inline = False
        if isinstance(items, CommentedSeq):
            for index, item in enumerate(items):
                if isinstance(item, CommentedMap) and "include" in item:
                    rel = self._resolve(item["include"], file, "include")
                    if self.fs.is_dir(rel):
                        targets.append(_Target("folder", rel, index))
                    else:
                        docs = self.file(rel).docs
                        is_list = bool(docs) and isinstance(docs[-1], CommentedSeq)
                        targets.append(_Target("list" if is_list else "single", rel, index))
                else:
                    inline = True
        folders = [t for t in targets if t.kind == "folder"]
        lists = [t for t in targets if t.kind == "list"]
        singles = [t for t in targets if t.kind == "single"]
        if folders:
            return self._new_file(posixpath.join(folders[-1].file, f"{name}.yaml"), entry)
        if inline or not targets:
            if not isinstance(items, CommentedSeq):
                holder[key] = items = CommentedSeq()
            items.append(entry)
            return file
        if lists:
            self.file(lists[-1].file).docs[-1].append(entry)
            return lists[-1].file
        single = singles[-1]
        rel = self._new_file(posixpath.join(posixpath.dirname(single.file), f"{name}.yaml"), entry)
        assert isinstance(items, CommentedSeq)
        items.insert(single.index + 1, CommentedMap(include=_relative(rel, file)))
        return rel

    def _new_file(self, rel: str, content: Any) -> str:
        name = posixpath.basename(rel)
        if not _FILE_NAME.match(name) or posixpath.normpath(rel) != rel or rel.startswith("../"):
            raise EditError(
                f"cannot make the file {rel[:120]!r}: a new entry's name may hold only letters, "
                "digits, '-', '_' and '.'"
            )
        if self._exists(rel):
            raise EditError(f"{rel} already exists; give the new entry another name or move that file")
        self._written[rel] = dump_value(content)
        self._deleted.discard(rel)
        return rel

    def _remove(self, slot: Slot, holder_items: Any, holder_file: str) -> None:
        if slot.container is not None:
            del slot.container[slot.index]
            if not slot.container and slot.file != holder_file:
                self._drop_file(slot.file, holder_items, holder_file)
            return
        rt = self.file(slot.file)
        del rt.docs[slot.index]
        if not rt.docs:
            self._drop_file(slot.file, holder_items, holder_file)

    def _drop_file(self, rel: str, holder_items: Any, holder_file: str) -> None:
        """An included file left empty is deleted, with an include naming exactly it."""
        self._files.pop(rel, None)
        self._deleted.add(rel)
        if isinstance(holder_items, CommentedSeq):
            for index, item in enumerate(holder_items):
                if isinstance(item, CommentedMap) and "include" in item:
                    target = posixpath.normpath(
                        posixpath.join(posixpath.dirname(holder_file), item["include"])
                    )
                    if target == rel:
                        del holder_items[index]
                        return

    # ---------------------------------------------------------------- applying

    def apply(self, edit: Edit) -> None:
        if isinstance(edit, AddEntry):
            self._add_entry(edit)
        elif isinstance(edit, ChangeEntry):
            _, slot = self.entry(edit.stack, edit.kind, edit.name)
            if "name" in edit.fields and edit.fields["name"] != edit.name:
                raise EditError("an entry's name cannot be changed (remove it and add it under the new name)")
            merge(slot.node, edit.fields, replace=False)
        elif isinstance(edit, RemoveEntry):
            stack, slot = self.entry(edit.stack, edit.kind, edit.name)
            self._remove(slot, stack.node.get(LIST_KEYS[edit.kind]), stack.file)
        elif isinstance(edit, SetChartVersion):
            _, slot = self.entry(edit.stack, "addon", edit.addon)
            slot.node["chart_version"] = edit.version
        elif isinstance(edit, SetValues):
            self._set_values(edit)
        elif isinstance(edit, AddStack):
            name = _name_of(edit.stack, "stack")
            if any(s.node.get("name") == name for s in self.stacks()):
                raise EditError(f"the definition already has a stack named {name!r}")
            self._place(self._spec(), "stacks", self.root_file, _nodes(edit.stack), name)
        elif isinstance(edit, ChangeStack):
            slot = self.stack(edit.name)
            fixed = sorted(k for k in edit.fields if k in ("name", *LIST_KEYS.values(), "applications"))
            if fixed:
                raise EditError(
                    f"{', '.join(fixed)} of a stack cannot be set this way (rename by adding a new stack; "
                    "change entries with the add-on and manifest edits)"
                )
            merge(slot.node, edit.fields, replace=False)
        elif isinstance(edit, SaveTemplate):
            self._save_template(edit)
        elif isinstance(edit, UseTemplate):
            self._use_template(edit)
        elif isinstance(edit, MoveEntry):
            target = _move_target(edit.before, edit.after)
            stack, moved = self.entry(edit.stack, edit.kind, edit.name)
            _, other = self.entry(edit.stack, edit.kind, target)
            word = _kind_word(edit.kind)
            self._move(
                stack.node.get(LIST_KEYS[edit.kind]),
                stack.file,
                (moved, f"{word} {edit.name!r}"),
                (other, f"{word} {target!r}"),
                after=edit.before is None,
            )
        elif isinstance(edit, MoveStack):
            target = _move_target(edit.before, edit.after)
            moved, other = self.stack(edit.name), self.stack(target)
            self._move(
                self._spec()["stacks"],
                self.root_file,
                (moved, f"stack {edit.name!r}"),
                (other, f"stack {target!r}"),
                after=edit.before is None,
            )
        else:
            slot = self.stack(edit.name)
            self._remove(slot, self._spec()["stacks"], self.root_file)

    # ---------------------------------------------------------------- moving

    def _move(
        self,
        holder_items: Any,
        holder_file: str,
        moved: tuple[Slot, str],
        target: tuple[Slot, str],
        *,
        after: bool,
    ) -> None:
        """Move `moved` right before (or after) `target` in the list item order of the file that
        writes both; refused when they are written in different files or lists."""
        src = self._item_of(moved[0], holder_items, holder_file, moved[1])
        dst = self._item_of(target[0], holder_items, holder_file, target[1])
        if moved[0].node is target[0].node:
            raise EditError(f"{moved[1]} cannot move next to itself")
        if src.file != dst.file or src.items is not dst.items:
            where = (
                f"in {src.file} and {target[1]} in {dst.file}"
                if src.file != dst.file
                else (f"and {target[1]} in different lists of {src.file}")
            )
            raise EditError(
                f"cannot move {moved[1]} next to {target[1]}: {moved[1]} is written {where}; an entry "
                "moves only within the list that holds it (move the include, or the entry, in Git)"
            )
        to = dst.index + (1 if after else 0)
        if src.index < to:
            to -= 1
        if to != src.index:  # (else it is there already: the save answers that nothing changes)
            self._move_in_file(src.file, src.items, src.index, to)

    def list_of(self, slot: Slot, stack: Slot | None, kind: str = "") -> str | None:
        """Which list of which file writes `slot` (an entry of `stack` of `kind`, or with `stack`
        None a stack): entries with the same answer can be moved next to each other; None when it
        cannot be moved (a file of an included folder)."""
        holder, file = (
            (stack.node.get(LIST_KEYS[kind]), stack.file)
            if stack
            else (self._spec()["stacks"], self.root_file)
        )
        try:
            item = self._item_of(slot, holder, file, "it")
        except EditError:
            return None
        return f"{item.file}:{item.items.lc.line + 1}"

    def _item_of(self, slot: Slot, holder_items: Any, holder_file: str, what: str) -> "_Item":
        """The list item that puts `slot` where it is in its stack's order: its own mapping, or the
        include naming exactly its file."""
        if slot.container is not None:
            return _Item(slot.file, slot.container, slot.index)
        found = self._include_naming(slot.file, holder_items, holder_file, 0)
        if isinstance(found, str):
            raise EditError(
                f"cannot move {what}: it is the file {slot.file} of the folder include {found}, and the "
                "loader reads a folder's files in name order (rename the files to reorder them)"
            )
        if found is None:
            raise EditError(f"cannot move {what}: no include in {holder_file} names {slot.file}")
        if len(self.file(slot.file).docs) != 1:
            raise EditError(
                f"cannot move {what}: it is one of several documents of {slot.file} (reorder them in Git)"
            )
        return found

    def _include_naming(self, rel: str, items: Any, file: str, depth: int) -> "_Item | str | None":
        """The include item (in `items` of `file`, or of a list file they include) naming file `rel`;
        the folder's path when `rel` is read from an included folder."""
        if not isinstance(items, CommentedSeq) or depth > 8:
            return None
        for index, item in enumerate(items):
            if not (isinstance(item, CommentedMap) and "include" in item):
                continue
            target = self._resolve(item["include"], file, "include")
            subs = self._included(item["include"], file)
            if target == rel:
                return _Item(file, items, index)
            if self.fs.is_dir(target) and rel in subs:
                return target
            for sub in subs:
                for doc in self.file(sub).docs:
                    found = self._include_naming(rel, doc, sub, depth + 1)
                    if found is not None:
                        return found
        return None

    def _move_in_file(self, rel: str, items: CommentedSeq, index: int, to: int) -> None:
        """Reorder list `items` of file `rel` as a text edit (yamlmove.py), on the file's text as
        edited so far, and load the result back; refused unless it parses to the reordered data."""
        rt = self.file(rel)
        path = _path_to(rt.docs, items)
        assert path is not None
        current = rt.text()
        fresh = RoundTrip.load(rel, current)  # line numbers of the text as edited so far
        seq = _follow(fresh.docs, path)
        try:
            moved = move_item(current, seq, index, to)
        except MoveError as e:
            raise EditError(f"{rel}: {e.message}") from None
        seq.insert(to, seq.pop(index))
        try:
            result = RoundTrip.load(rel, moved)
        except YamlEditError:
            result = None
        if result is None or _plain(result.docs) != _plain(fresh.docs):
            raise EditError(
                f"{rel}: the list cannot be reordered keeping the file's text (an anchor used across its "
                "entries?); reorder it in Git"
            )
        self._files[rel] = result

    def _template_path(self, path: str) -> str:
        rel = posixpath.normpath(path)
        if rel != path or rel.startswith(("../", "/")) or not _FILE_NAME.match(posixpath.basename(rel)):
            raise EditError(
                f"the template path {path[:120]!r} must be a repository-relative .yaml file whose name holds "
                "only letters, digits, '-', '_' and '.' (e.g. stacks/web.yaml)"
            )
        return rel

    def _save_template(self, edit: SaveTemplate) -> None:
        path = self._template_path(edit.path)
        slot = self.stack(edit.stack)
        spec_stacks: CommentedSeq = self._spec()["stacks"]
        if slot.container is not spec_stacks:
            raise EditError(
                f"stack {edit.stack!r} is already kept in a file of its own ({slot.file}); "
                "include that file from other definitions"
            )
        data = rebase_stack(_plain(slot.node), slot.file, path)
        self._new_file(path, data)
        spec_stacks[slot.index] = CommentedMap(include=_relative(path, self.root_file))

    def _use_template(self, edit: UseTemplate) -> None:
        path = self._template_path(edit.path)
        if not self._exists(path):
            raise EditError(f"there is no stack template {path} in the repository")
        docs = self.file(path).docs
        if (
            len(docs) != 1
            or not isinstance(docs[0], CommentedMap)
            or not isinstance(docs[0].get("name"), str)
        ):
            raise EditError(f"{path} is not a stack template (one mapping with a name)")
        name = docs[0]["name"]
        if any(s.node.get("name") == name for s in self.stacks()):
            raise EditError(f"the definition already has a stack named {name!r}")
        spec = self._spec()
        spec["stacks"].append(CommentedMap(include=_relative(path, self.root_file)))
        if edit.variables:
            variables = spec.get("variables")
            if not isinstance(variables, CommentedMap):
                variables = CommentedMap()
                spec["variables"] = variables
            for key, value in edit.variables.items():
                variables[key] = str(value)

    def _add_entry(self, edit: AddEntry) -> None:
        name = _name_of(edit.entry, _kind_word(edit.kind))
        stack = self.stack(edit.stack)
        # (a name used in another stack is reported by the validation, with both places)
        if any(e.node.get("name") == name for e in self.entries(stack, edit.kind)):
            raise EditError(
                f"stack {edit.stack!r} already has {_kind_word(edit.kind)} {name!r}; "
                "names are unique in a cluster"
            )
        self._place(stack.node, LIST_KEYS[edit.kind], stack.file, _nodes(edit.entry), name)

    def _set_values(self, edit: SetValues) -> None:
        _, slot = self.entry(edit.stack, "addon", edit.addon)
        encrypted = sorted(str(path) for path in _encrypted_in(edit.values))
        if encrypted:
            raise EditError(
                f"the values hold SOPS ciphertext (ENC[…]) at {', '.join(encrypted)}: the server holds no "
                "key to decrypt it, so give the plaintext and mark the value as secret"
            )
        conf = slot.node.get("configuration")
        if not isinstance(conf, CommentedMap):
            conf = CommentedMap()
        values_file = (
            self._resolve(conf["from_file"], slot.file, "configuration.from_file")
            if isinstance(conf.get("from_file"), str)
            else None
        )
        secret = tuple(edit.secret)
        was_sops = False
        if values_file is not None:
            current = self.file(values_file).docs
            was_sops = bool(current) and is_sops_document(_plain(current[0]))
            if was_sops and not secret:
                secret = tuple(str(p) for p in conf.get("encrypted_paths") or ())
        if secret:
            missing = unmatched(dict(edit.values), secret)
            if missing:
                raise EditError(
                    f"the values marked as secret name no key of the values: {', '.join(missing)}"
                    + (" (the values file is encrypted: give every secret value again)" if was_sops else "")
                )
            target = values_file or self._secret_file(slot, edit.addon)
            recipients = tuple(edit.recipients) or self._recipients_for(target)
            plaintext = dump_value(dict(edit.values))
            try:
                ciphertext = self.encrypt(plaintext, recipients, secret)
            except EncryptError as e:
                raise EditError(f"{target}: {e.message}") from None
            self._files.pop(target, None)
            self._written[target] = ciphertext
            for key in ("values", "values_base64"):
                conf.pop(key, None)
            listed = sorted({listed_key(p) for p in secret})
            if values_file != target:
                conf["from_file"] = _relative(target, slot.file)
            if sorted(str(p) for p in conf.get("encrypted_paths") or ()) != listed:
                conf["encrypted_paths"] = listed
            slot.node["configuration"] = conf
            return
        if values_file is not None:
            docs = self.file(values_file).docs
            if docs and isinstance(docs[0], CommentedMap):
                merge(docs[0], edit.values, replace=True)
            else:
                self.file(values_file).docs[:] = [_nodes(edit.values)]
            conf.pop("encrypted_paths", None)
            return
        values = conf.get("values")
        if isinstance(values, CommentedMap):
            merge(values, edit.values, replace=True)
        elif isinstance(values, str):
            tree = load_text(f"{slot.file}: configuration.values", values)
            if isinstance(tree, CommentedMap):
                merge(tree, edit.values, replace=True)
            else:
                tree = _nodes(edit.values)
            conf["values"] = LiteralScalarString(dump_value(tree))
        else:
            conf.pop("values_base64", None)
            conf["values"] = _nodes(edit.values)
        slot.node["configuration"] = conf

    def _secret_file(self, slot: Slot, addon: str) -> str:
        rel = posixpath.join(posixpath.dirname(slot.file), "values", f"{addon}.enc.yaml")
        if not _FILE_NAME.match(posixpath.basename(rel)) or posixpath.normpath(rel) != rel:
            raise EditError(
                f"cannot make the values file {rel[:120]!r} for add-on {addon[:80]!r}: give the add-on a "
                "configuration.from_file to encrypt into"
            )
        if self._exists(rel):
            raise EditError(
                f"{rel} already exists; point the add-on's configuration.from_file at it or move it"
            )
        return rel

    def _recipients_for(self, target: str) -> tuple[str, ...]:
        """The age recipients of the nearest .sops.yaml (from the file's folder up to the root)."""
        folder = posixpath.dirname(target)
        while True:
            config = posixpath.join(folder, SOPS_CONFIG) if folder else SOPS_CONFIG
            if (self.fs.root / config).is_file():
                try:
                    rule = rule_for((self.fs.root / config).read_text(encoding="utf-8"), target)
                except EncryptError as e:
                    raise EditError(e.message) from None
                if rule is None:
                    break
                return rule.recipients
            if not folder:
                break
            folder = posixpath.dirname(folder)
        raise EditError(
            f"no age recipient for {target}: add a creation rule with `age:` and a path_regex matching it "
            f"to {SOPS_CONFIG}, or give the recipients with the edit"
        )


# ------------------------------------------------------------------------------------- helpers


def export_stack(ws: Workspace, name: str, target_file: str) -> dict[str, Any]:
    """Stack `name` as plain data to add to the definition rooted at `target_file` (of the same or
    another checkout): its included entries inline, and every file path written relative to
    `target_file`."""
    slot = ws.stack(name)
    stack = _plain(slot.node)
    for kind, key in LIST_KEYS.items():
        if key in stack:
            stack[key] = [_rebase(_plain(e.node), e.file, target_file) for e in ws.entries(slot, kind)]
    return _rebase(stack, slot.file, target_file)


def rebase_stack(stack: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    """A stack (plain data, written in `source`) with every file reference, includes of its entry
    lists too, rewritten for a stack written in `target`."""
    out = _rebase(stack, source, target)
    for key in LIST_KEYS.values():
        items = out.get(key)
        if not isinstance(items, list):
            continue
        rebased: list[Any] = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("include"), str):
                absolute = posixpath.normpath(posixpath.join(posixpath.dirname(source), item["include"]))
                rebased.append({**item, "include": _relative(absolute, target)})
            elif isinstance(item, dict):
                rebased.append(_rebase(item, source, target))
            else:
                rebased.append(item)
        out[key] = rebased
    return out


def _rebase(node: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    out = dict(node)
    for key in FILE_FIELDS:
        if isinstance(out.get(key), str):
            absolute = posixpath.normpath(posixpath.join(posixpath.dirname(source), out[key]))
            out[key] = _relative(absolute, target)
    conf = out.get("configuration")
    if isinstance(conf, dict):
        out["configuration"] = _rebase(conf, source, target)
    return out


def _relative(rel: str, referrer: str) -> str:
    return posixpath.relpath(rel, posixpath.dirname(referrer) or ".")


def _move_target(before: str | None, after: str | None) -> str:
    if (before is None) == (after is None):
        raise EditError("a move names exactly one of before and after (the entry to move next to)")
    return before if before is not None else str(after)


def _path_to(tree: Any, node: Any) -> list[Any] | None:
    """The keys and indexes that lead from `tree` to `node` (by identity)."""
    if tree is node:
        return []
    children = (
        tree.items() if isinstance(tree, Mapping) else enumerate(tree) if isinstance(tree, list) else ()
    )
    for key, child in children:
        found = _path_to(child, node)
        if found is not None:
            return [key, *found]
    return None


def _follow(tree: Any, path: list[Any]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _name_of(entry: Mapping[str, Any], what: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise EditError(f"the new {what} needs a name")
    return name


def _encrypted_in(value: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _encrypted_in(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _encrypted_in(item, (*path, str(index)))
    elif is_encrypted_value(value):
        yield ".".join(path)


def _nodes(value: Any) -> Any:
    """Plain data as round-trip nodes (so it can be merged and dumped like the file's own)."""
    if isinstance(value, Mapping):
        out = CommentedMap()
        for key, item in value.items():
            out[key] = _nodes(item)
        return out
    if isinstance(value, str) and "\n" in value.rstrip("\n"):
        return LiteralScalarString(value)
    if isinstance(value, list | tuple):
        seq = CommentedSeq()
        seq.extend(_nodes(item) for item in value)
        return seq
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | None):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def merge(node: CommentedMap, new: Mapping[str, Any], *, replace: bool) -> None:
    """Change `node` in place to hold `new`: keys kept in their order with their comments and quoting
    where the value is the same; with `replace` keys absent from `new` are removed, else a None
    value removes a key and mappings are merged."""
    if replace:
        for key in [k for k in node if k not in new]:
            del node[key]
    for key, value in new.items():
        if value is None and not replace:
            node.pop(key, None)
            continue
        current = node.get(key)
        if isinstance(current, CommentedMap) and isinstance(value, Mapping):
            merge(current, value, replace=replace)
        elif key in node and _plain(current) == value and type(_plain(current)) is type(value):
            continue  # the same value: keep how it is written
        else:
            node[key] = _nodes(value)
