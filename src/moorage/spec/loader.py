"""Loading a definition from a repository checkout: root file, includes, validation, plan.

``load(path)`` never raises for problems in the repository: every problem becomes a report item
with a file, line, column, field path and hint. It raises only for programming errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from moorage.spec import rules
from moorage.spec.assembly import Assembly, Entry
from moorage.spec.content import ResolvedCluster, Resolver, resolve_all
from moorage.spec.graph import Plan, build_plan
from moorage.spec.models import (
    WIRE_ONLY_FIELDS,
    Addon,
    AddonConfiguration,
    Application,
    HelmRegistry,
    ImportCluster,
    Manifest,
    Metadata,
    Parent,
    Spec,
    Stack,
)
from moorage.spec.paths import YAML_SUFFIXES, RepoFS
from moorage.spec.report import Location, Report, SpecError
from moorage.spec.sourcemap import SourceMap
from moorage.spec.validate import Context, validate_piece
from moorage.spec.yamlsafe import DEFAULT_LIMITS, Limits, PathKey, YamlDoc, parse_documents

ROOT_FILE_NAMES = ("import-cluster.yaml", "import-cluster.yml", "cluster.yaml", "cluster.yml")
_ENTRY_LISTS = ("manifests", "addons")


@dataclass(frozen=True)
class LoadOptions:
    limits: Limits = DEFAULT_LIMITS
    cluster_variables: Mapping[str, str] = field(default_factory=dict)
    org_variables: Mapping[str, str] = field(default_factory=dict)
    decrypt: bool = True
    strict_secrets: bool = False
    strict_variables: bool = False
    sops_env: Mapping[str, str] | None = None
    # Without any age key configured, SOPS files for age recipients are reported as not checked
    # (a warning) instead of failing; with a key, every decryption failure is still an error.
    key_optional: bool = False


class UsageError(Exception):
    """The path given does not name a definition (not a problem *in* a definition)."""


def find_root_file(path: Path, repo_root: Path | None = None) -> tuple[Path, Path]:
    """(repository root, root definition file) for a file or directory given by the user."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if path.is_file():
        root = repo_root or _repo_root_of(path.parent)
        return root, path
    for name in ROOT_FILE_NAMES:
        candidate = path / name
        if candidate.is_file():
            return repo_root or path, candidate
    found = []
    for candidate in sorted(path.iterdir()):
        if candidate.is_file() and candidate.name.endswith(YAML_SUFFIXES):
            head = candidate.read_bytes()[:65536]
            if b"kind: ImportCluster" in head or b'kind: "ImportCluster"' in head:
                found.append(candidate)
    if len(found) == 1:
        return repo_root or path, found[0]
    if not found:
        raise UsageError(
            f"no ImportCluster definition found in {path} (looked for {', '.join(ROOT_FILE_NAMES)})"
        )
    raise UsageError(
        f"several ImportCluster definitions in {path}: {', '.join(f.name for f in found)}; name one of them"
    )


def _repo_root_of(start: Path) -> Path:
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


class _Assembler:
    def __init__(self, fs: RepoFS, ctx: Context, limits: Limits) -> None:
        self.fs = fs
        self.ctx = ctx
        self.limits = limits
        self.sources = ctx.sources

    def read_docs(self, rel: str, location: Location | None) -> list[YamlDoc]:
        text = self.fs.read_text(rel, location)
        return [d for d in parse_documents(text, rel, self.limits) if d.value is not None]

    def expand(self, container: dict[str, Any], key: str, path: PathKey) -> None:
        """Replace ``container[key]`` (a list) by its entries with every include expanded."""
        items = container[key]
        list_path = (*path, key)
        expanded: list[tuple[Any, YamlDoc, PathKey]] = []
        for index, item in enumerate(items):
            origin = self.sources._resolve((*list_path, index))
            if origin is None:  # pragma: no cover - every assembled value has a mount
                continue
            doc, inner = origin
            if isinstance(item, dict) and "include" in item:
                self._include(item, doc, inner, key, expanded, [doc.file])
            else:
                expanded.append((item, doc, inner))
        container[key] = [item for item, _, _ in expanded]
        for index, (_, doc, inner) in enumerate(expanded):
            self.sources.mount((*list_path, index), doc, inner)

    def _include(
        self,
        item: dict[str, Any],
        doc: YamlDoc,
        inner: PathKey,
        key: str,
        out: list[tuple[Any, YamlDoc, PathKey]],
        chain: list[str],
    ) -> None:
        location = doc.location((*inner, "include"))
        extra = sorted(k for k in item if k != "include")
        try:
            if extra:
                raise SpecError(
                    f"an include entry takes only 'include', found also {', '.join(map(repr, extra))}",
                    code="include-shape",
                    location=doc.location(inner),
                )
            ref = item["include"]
            if not isinstance(ref, str):
                raise SpecError("'include' must be a path (a string)", code="type", location=location)
            if len(chain) > self.limits.max_include_depth:
                raise SpecError(
                    f"includes are nested too deeply (the limit is {self.limits.max_include_depth})",
                    code="limit-include-depth",
                    location=location,
                )
            rel = self.fs.resolve(ref, doc.file, location, "include")
            files = self.fs.yaml_files_in(rel, location) if self.fs.is_dir(rel) else [rel]
            if not files:
                self.ctx.report.warning(
                    "include-empty", f"include folder '{ref}' holds no YAML files", location=location
                )
            for file in files:
                if file in chain:
                    cycle = " -> ".join([*chain[chain.index(file) :], file])
                    raise SpecError(f"include cycle: {cycle}", code="include-cycle", location=location)
                try:
                    docs = self.read_docs(file, location)
                except SpecError as exc:
                    self.ctx.report.add_exception(exc)
                    continue
                for sub in docs:
                    entries: list[tuple[Any, PathKey]] = (
                        [(v, (i,)) for i, v in enumerate(sub.value)]
                        if isinstance(sub.value, list)
                        else [(sub.value, ())]
                    )
                    for value, sub_inner in entries:
                        if isinstance(value, dict) and "include" in value:
                            self._include(value, sub, sub_inner, key, out, [*chain, file])
                            continue
                        if (
                            key == "manifests"
                            and isinstance(value, dict)
                            and "apiVersion" in value
                            and "kind" in value
                        ):
                            self.ctx.report.error(
                                "include-raw-manifest",
                                "this included file is a Kubernetes object, not a manifest entry",
                                location=sub.location(sub_inner),
                                hint="reference it from an entry: {name: my-manifest, from_file: <file>}",
                            )
                            continue
                        out.append((value, sub, sub_inner))
        except SpecError as exc:
            self.ctx.report.add_exception(exc)

    def assemble(self, root_rel: str) -> Any:
        try:
            docs = self.read_docs(root_rel, None)
        except SpecError as exc:
            self.ctx.report.add_exception(exc)
            return None
        if not docs:
            self.ctx.report.error(
                "empty-file", "the definition file is empty", location=Location(root_rel, 1, 1)
            )
            return None
        if len(docs) > 1:
            self.ctx.report.error(
                "multiple-documents",
                f"the definition file holds {len(docs)} YAML documents; one ImportCluster is expected",
                location=docs[1].location(()),
            )
        doc = docs[0]
        self.sources.mount((), doc)
        tree = doc.value
        self.ctx.root = tree
        spec = tree.get("spec") if isinstance(tree, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("stacks"), list):
            # Moorage extension: stacks may be included too.
            self.expand(spec, "stacks", ("spec",))
            for index, stack in enumerate(spec["stacks"]):
                if isinstance(stack, dict):
                    for key in _ENTRY_LISTS:
                        if isinstance(stack.get(key), list):
                            self.expand(stack, key, ("spec", "stacks", index))
        return tree


def _strip_wire_fields(raw: dict[str, Any], kind: str, path: PathKey, ctx: Context) -> dict[str, Any]:
    wire = WIRE_ONLY_FIELDS.get(kind, frozenset())
    present = [k for k in raw if k in wire]
    if not present:
        return raw
    for key in present:
        ctx.warning(
            "ignored-field",
            f"'{key}' is a platform-managed field and is ignored",
            (*path, key),
            key=True,
            hint="remove it from the definition",
        )
    return {k: v for k, v in raw.items() if k not in wire}


def _validate_assembly(tree: Any, root_rel: str, ctx: Context) -> Assembly:
    asm = Assembly(root_file=root_rel, raw=tree)
    if not isinstance(tree, dict):
        ctx.report.error(
            "not-a-definition",
            "the file is not an ImportCluster definition (expected a mapping at the top level)",
            location=ctx.sources.location(()),
            hint="start with: apiVersion: v1 / kind: ImportCluster",
        )
        return asm
    kind = tree.get("kind")
    if kind is not None and kind != "ImportCluster":
        ctx.error(
            "wrong-kind",
            f"kind must be ImportCluster, found {kind!r}",
            ("kind",),
            hint="set kind: ImportCluster",
        )
        tree = {**tree, "kind": "ImportCluster"}
    spec_raw = tree.get("spec")
    top = {k: v for k, v in tree.items() if k != "spec"}
    top["spec"] = {"stacks": []}
    if "spec" not in tree:
        ctx.report.error(
            "missing-field",
            "missing required field 'spec'",
            location=ctx.sources.location(()),
            hint="spec must contain 'stacks' and optionally 'git_repository'",
        )
    head = validate_piece(ImportCluster, top, (), ctx)
    asm.metadata = head.metadata if head else None
    if spec_raw is None:
        return asm
    stacks_raw = spec_raw.get("stacks") if isinstance(spec_raw, dict) else None
    spec_head = (
        {**spec_raw, "stacks": []}
        if isinstance(spec_raw, dict) and isinstance(stacks_raw, list)
        else spec_raw
    )
    asm.spec = validate_piece(Spec, spec_head, ("spec",), ctx)
    asm.head_valid = head is not None and asm.spec is not None
    if asm.spec is None and isinstance(spec_raw, dict):
        asm.salvaged_registries = _salvage(HelmRegistry, spec_raw.get("helm_registries"))
    if not isinstance(stacks_raw, list):
        return asm
    for si, stack_raw in enumerate(stacks_raw):
        spath: PathKey = ("spec", "stacks", si)
        if not isinstance(stack_raw, dict):
            validate_piece(Stack, stack_raw, spath, ctx)  # reports "stack #n is not a valid object"
            continue
        stack_raw = _strip_wire_fields(stack_raw, "stack", spath, ctx)
        lists = {k: stack_raw.get(k) for k in ("manifests", "addons", "applications")}
        stack_head = {**stack_raw, **{k: [] for k, v in lists.items() if isinstance(v, list)}}
        stack = validate_piece(Stack, stack_head, spath, ctx)
        file = ctx.sources.file_of(spath) or root_rel
        holder = stack or _stand_in_stack(stack_raw, si)
        children: dict[str, list[Any]] = {"manifests": [], "addons": [], "applications": []}
        for key, cls, kind_name in (
            ("manifests", Manifest, "manifest"),
            ("addons", Addon, "addon"),
            ("applications", Application, "application"),
        ):
            items = lists[key]
            if not isinstance(items, list):
                continue
            for ei, item in enumerate(items):
                epath: PathKey = (*spath, key, ei)
                if isinstance(item, dict):
                    item = _strip_wire_fields(item, kind_name, epath, ctx)
                model = validate_piece(cls, item, epath, ctx)
                if model is not None:
                    children[key].append((model, epath))
                    if stack is None:
                        asm.partial.append(Entry(kind_name, model, epath, holder, file))
                elif isinstance(item, dict):
                    stand_in = _stand_in(cls, item, ei, kind_name)
                    asm.partial.append(Entry(kind_name, stand_in, epath, holder, file))
        if stack is None:
            continue
        stack.manifests = [m for m, _ in children["manifests"]]
        stack.addons = [m for m, _ in children["addons"]]
        stack.applications = [m for m, _ in children["applications"]]
        asm.stacks.append((stack, spath, file))
        for model, epath in children["manifests"]:
            asm.manifests.append(Entry("manifest", model, epath, stack, ctx.sources.file_of(epath) or file))
        for model, epath in children["addons"]:
            asm.addons.append(Entry("addon", model, epath, stack, ctx.sources.file_of(epath) or file))
        for model, epath in children["applications"]:
            asm.applications.append(
                Entry("application", model, epath, stack, ctx.sources.file_of(epath) or file)
            )
    return asm


_P = TypeVar("_P", bound=BaseModel)


def _salvage(cls: type[_P], items: Any) -> list[_P]:
    """The items of a list that validate on their own (their problems are reported elsewhere)."""
    out: list[_P] = []
    for item in items if isinstance(items, list) else []:
        with contextlib.suppress(ValidationError):
            out.append(cls.model_validate(item))
    return out


def _stand_in(
    cls: type[Manifest] | type[Addon] | type[Application], raw: dict[str, Any], index: int, kind: str
) -> Any:
    """An invalid entry reduced to what the graph needs: its name and its parents."""
    name = raw.get("name")
    fields: dict[str, Any] = {
        "name": name if isinstance(name, str) and name else f"<{kind} #{index + 1}>",
        "parents": _salvage(Parent, raw.get("parents")),
    }
    if cls is not Application and isinstance(raw.get("dependencies_override"), list):
        fields["dependencies_override"] = _salvage(Parent, raw["dependencies_override"])
    # What its content needs, when well-typed, so its files and values are checked too.
    texts = _CONTENT_TEXT_FIELDS.get(kind, ())
    fields.update({k: raw[k] for k in texts if isinstance(raw.get(k), str)})
    if kind == "manifest" and isinstance(raw.get("encrypted_paths"), list):
        fields["encrypted_paths"] = [e for e in raw["encrypted_paths"] if isinstance(e, str)]
    if kind == "addon":
        fields.update({k: fields.get(k, "") for k in ("chart_name", "chart_version", "namespace")})
        configuration = _salvage(AddonConfiguration, [raw.get("configuration")])
        fields["configuration"] = configuration[0] if configuration else None
    return cls.model_construct(**fields)


_CONTENT_TEXT_FIELDS = {
    "manifest": ("from_file", "manifest", "manifest_base64", "namespace"),
    "addon": ("chart_name", "chart_version", "namespace", "registry_name", "registry_url", "repository_url"),
}


def _stand_in_stack(raw: dict[str, Any], index: int) -> Stack:
    name = raw.get("name")
    wave = raw.get("deploy_wave")
    return Stack.model_construct(
        name=name if isinstance(name, str) and name else f"<stack #{index + 1}>",
        deploy_wave=wave if isinstance(wave, int) and not isinstance(wave, bool) and wave >= 0 else None,
        variables={},
    )


def assemble(
    fs: RepoFS, root_rel: str, report: Report, limits: Limits = DEFAULT_LIMITS
) -> tuple[Assembly, Context]:
    """Read the root file and its includes, then validate every piece against the models."""
    ctx = Context(report=report, sources=SourceMap(), root=None)
    tree = _Assembler(fs, ctx, limits).assemble(root_rel)
    if tree is None:
        return Assembly(root_file=root_rel, raw=None), ctx
    return _validate_assembly(tree, root_rel, ctx), ctx


@dataclass
class LoadResult:
    report: Report
    root_file: str
    repo_root: Path
    cluster: ImportCluster | None = None
    resolved: ResolvedCluster | None = None
    plan: Plan | None = None
    # the repo-relative files the definition is made of (root, includes, values and manifest files)
    files: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.report.ok


def load(
    path: Path | str, options: LoadOptions | None = None, *, repo_root: Path | None = None
) -> LoadResult:
    """Load, resolve and validate the definition at ``path`` (a root file or a repository folder).

    Raises UsageError only when ``path`` names no definition; every problem inside the repository
    is an item of ``result.report``.
    """
    opts = options or LoadOptions()
    root, root_file = find_root_file(Path(path), Path(repo_root) if repo_root else None)
    fs = RepoFS(root, opts.limits)
    report = Report()
    try:
        root_rel = fs.relative(root_file)
    except SpecError as exc:
        raise UsageError(exc.message) from None
    asm, ctx = assemble(fs, root_rel, report, opts.limits)
    result = LoadResult(report=report, root_file=root_rel, repo_root=root)
    if asm.raw is None:
        result.files = tuple(fs.read_paths())
        return result
    rules.check(asm, ctx)
    resolver = Resolver(
        fs=fs,
        ctx=ctx,
        limits=opts.limits,
        org_variables=opts.org_variables,
        cluster_variables=opts.cluster_variables,
        decrypt=opts.decrypt,
        strict_secrets=opts.strict_secrets,
        strict_variables=opts.strict_variables,
        sops_env=opts.sops_env,
        key_optional=opts.key_optional,
    )
    result.resolved = resolve_all(asm, ctx, resolver)
    result.plan = build_plan(asm, ctx)
    result.cluster = asm.cluster()
    result.files = tuple(fs.read_paths())
    return result


__all__ = ["LoadOptions", "LoadResult", "Metadata", "UsageError", "assemble", "find_root_file", "load"]
