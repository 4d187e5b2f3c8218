"""Resolving what each entry deploys: manifest objects and add-on values.

Order per source (file, inline string or base64): decode and size-check the bytes, parse with the
limited loader, decrypt SOPS in memory if the document carries SOPS metadata, substitute
variables (never inside encrypted values), then check secrets and shapes.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moorage.spec.assembly import Assembly, Entry
from moorage.spec.models import Addon, AddonSettings, JobConfiguration, Manifest
from moorage.spec.paths import RepoFS
from moorage.spec.report import Location, SpecError
from moorage.spec.secrets import scan
from moorage.spec.sops import (
    age_key_configured,
    age_only,
    decrypt_yaml,
    encrypted_paths,
    glob_problem,
    is_encrypted_value,
    is_sops_document,
    listed_matches,
)
from moorage.spec.validate import Context
from moorage.spec.variables import Scopes, substitute, substitute_tree
from moorage.spec.yamlsafe import Limits, PathKey, YamlDoc, decode_text, parse_documents

MASK = "********"
# Built-in kinds without a namespace (a namespace written on them is ignored by the API server).
CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("apiregistration.k8s.io", "APIService"),
        ("networking.k8s.io", "IngressClass"),
    }
)


class Sensitive:
    """A parsed tree that may hold decrypted secrets. ``repr`` and ``masked()`` never show them."""

    __slots__ = ("_data", "secret_paths")

    def __init__(self, data: Any, secret_paths: frozenset[PathKey] = frozenset()) -> None:
        self._data = data
        self.secret_paths = secret_paths

    def reveal(self) -> Any:
        """The real content, decrypted secrets included. Do not log it."""
        return self._data

    def masked(self) -> Any:
        def walk(node: Any, path: PathKey) -> Any:
            if path in self.secret_paths:
                return MASK
            if isinstance(node, dict):
                return {k: walk(v, (*path, k)) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v, (*path, i)) for i, v in enumerate(node)]
            return MASK if is_encrypted_value(node) else node

        return walk(self._data, ())

    def __repr__(self) -> str:
        return f"Sensitive({len(self.secret_paths)} secret value(s) masked)"


@dataclass
class ResolvedManifest:
    name: str
    stack: str
    namespace: str | None
    objects: Sensitive  # a list of Kubernetes objects (mappings)
    force: bool
    auto_remediate: bool
    encrypted: bool


@dataclass
class ResolvedAddon:
    name: str
    stack: str
    chart_name: str
    chart_version: str
    registry_name: str | None
    registry_url: str | None
    namespace: str
    values: Sensitive  # a mapping
    settings: AddonSettings
    job_configuration: JobConfiguration
    encrypted: bool
    defined_at: str = ""  # "file:line" of the entry in the repository, when known
    # the server-side credential of its registry: the add-on's registry_credential_name, else the
    # credential_name of its spec.helm_registries entry (None: a public source)
    credential_name: str | None = None
    # where a value path of `values` is written (file, line), for problems about one value
    value_locations: Callable[[PathKey], Location | None] | None = field(
        default=None, repr=False, compare=False
    )
    # the SOPS document the values were decrypted from, as committed (ciphertext: no secret), for
    # engines that decrypt inside the cluster themselves (the ArgoCD engine's plugin)
    sops_document: str | None = field(default=None, repr=False)


@dataclass
class ResolvedCluster:
    name: str
    descriptions: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, ResolvedManifest] = field(default_factory=dict)
    addons: dict[str, ResolvedAddon] = field(default_factory=dict)
    # spec.deployment_engine: the engine of add-ons that name none (None: ankra_native)
    default_engine: str | None = None


@dataclass
class _Source:
    text: str
    file: str
    line_offset: int  # added to lines found inside the text (inline content)
    location: Location  # where the content is referenced (for problems about it as a whole)


@dataclass
class Resolver:
    fs: RepoFS
    ctx: Context
    limits: Limits
    org_variables: Mapping[str, str]
    cluster_variables: Mapping[str, str]
    decrypt: bool
    strict_secrets: bool
    strict_variables: bool
    sops_env: Mapping[str, str] | None
    # a SOPS file for age recipients with no age key configured is a warning, not an error (validate)
    key_optional: bool = False
    # (group, kind, namespace, name) -> (where, manifest entry) of each object seen, for conflicts
    defined: dict[tuple[str, str, str, str], tuple[Location, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ sources

    def _inline(self, text: str, path: PathKey) -> _Source:
        loc = self.ctx.sources.location(path) or Location(self.ctx.sources.file_of(path) or "?")
        # Block scalars (`|`) start on the line after the key; others on the key's line.
        offset = loc.line if "\n" in text.rstrip("\n") or text.endswith("\n") else loc.line - 1
        return _Source(text, loc.file, max(offset, 0), loc)

    def _file(self, ref: str, path: PathKey, what: str) -> _Source:
        referrer = self.ctx.sources.file_of(path) or ""
        loc = self.ctx.sources.location(path) or Location(referrer)
        rel = self.fs.resolve(ref, referrer, loc, what)
        if self.fs.is_dir(rel):
            raise SpecError(
                f"{what} '{ref}' is a folder; a file is expected", code="path-not-file", location=loc
            )
        return _Source(self.fs.read_text(rel, loc), rel, 0, Location(rel, 1, 1))

    def _base64(self, data: str, path: PathKey, what: str) -> _Source:
        loc = self.ctx.sources.location(path) or Location("?")
        compact = "".join(data.split())
        if not compact:
            raise SpecError(f"{what} is empty", code="empty-content", location=loc)
        try:
            raw = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError(
                f"{what} is not valid base64",
                code="invalid-base64",
                location=loc,
                hint="use standard base64 (A-Z, a-z, 0-9, +, /, = padding)",
            ) from None
        label = f"{loc.file} ({what})"
        try:
            text = decode_text(raw, label, self.limits)
        except SpecError as exc:
            raise SpecError(f"{what}: {exc.message}", code=exc.code, location=loc, hint=exc.hint) from None
        return _Source(text, loc.file, loc.line - 1, loc)

    # ------------------------------------------------------------------ pipeline

    def _parse(self, src: _Source) -> list[YamlDoc]:
        try:
            docs = parse_documents(src.text, src.file, self.limits)
        except SpecError as exc:
            if src.line_offset and exc.location is not None and exc.location.line:
                loc = exc.location
                exc.location = Location(loc.file, loc.line + src.line_offset, loc.column)
            raise
        for doc in docs:
            doc.line_offset = src.line_offset
        return [d for d in docs if d.value is not None]

    def _load(
        self, src: _Source, scopes: Scopes, listed: list[str], path: PathKey
    ) -> tuple[list[Any], frozenset[PathKey], list[YamlDoc] | None, bool]:
        """Parse, decrypt and substitute.

        Returns (documents, secret paths keyed by document index, docs with locations, encrypted).
        """
        docs = self._parse(src)
        sops_docs = [d for d in docs if is_sops_document(d.value)]
        if sops_docs:
            secret: set[PathKey] = set()
            for index, doc in enumerate(docs):
                secret |= {(index, *p) for p in encrypted_paths(doc.value)}
            self._check_listed(docs, listed, src, path)
            if self.decrypt and self.key_optional and not self._key_expected(sops_docs):
                self.ctx.report.warning(
                    "sops-not-checked",
                    "not decrypted: no age key is available, so the encrypted values were not checked",
                    location=src.location,
                    path=self.ctx.where(path)[0],
                    hint="set SOPS_AGE_KEY_FILE to the key file, or SOPS_AGE_KEY, to check them too",
                )
            if not self.decrypt or (self.key_optional and not self._key_expected(sops_docs)):
                values = [{k: v for k, v in d.value.items() if k != "sops"} for d in docs]
                return values, frozenset(secret), docs, True
            plain = decrypt_yaml(
                src.text, src.location, env=dict(self.sops_env) if self.sops_env is not None else None
            )
            try:
                plain_docs = [d for d in parse_documents(plain, src.file, self.limits) if d.value is not None]
            except SpecError:
                raise SpecError(
                    "decrypted content is not valid YAML", code="sops-decrypt", location=src.location
                ) from None
            values = []
            for index, doc in enumerate(plain_docs):
                skip = frozenset(p[1:] for p in secret if p[0] == index)
                values.append(substitute_tree(doc.value, scopes, skip))
            return values, frozenset(secret), None, True
        if listed:
            self.ctx.report.error(
                "encrypted-paths",
                f"encrypted_paths lists {', '.join(listed)} but the content is not SOPS-encrypted; "
                "the secret is stored in plaintext",
                location=src.location,
                path=self.ctx.where(path)[0],
                hint="encrypt the file with sops (--encrypted-regex) before committing it",
            )
        for doc in docs:
            stray = encrypted_paths(doc.value)
            if stray:
                first = sorted(stray, key=str)[0]
                self.ctx.report.error(
                    "sops-metadata",
                    "content has ENC[...] values but no sops metadata block, so it cannot be decrypted",
                    location=doc.location(first),
                    path=self.ctx.where(path)[0],
                )
        sub = substitute(src.text, scopes)
        self._report_tokens(sub.unresolved, sub.malformed, src, path)
        if sub.text != src.text:
            docs = self._parse(_Source(sub.text, src.file, src.line_offset, src.location))
        return [d.value for d in docs], frozenset(), docs, False

    def _key_expected(self, sops_docs: list[YamlDoc]) -> bool:
        env = dict(os.environ) if self.sops_env is None else dict(self.sops_env)
        return age_key_configured(env) or not all(age_only(d.value) for d in sops_docs)

    def _check_listed(self, docs: list[YamlDoc], listed: list[str], src: _Source, path: PathKey) -> None:
        for entry in listed:
            problem = glob_problem(entry)
            if problem:
                self.ctx.report.error(
                    "encrypted-paths",
                    problem,
                    location=src.location,
                    path=self.ctx.where(path)[0],
                    hint="for example: glob:stringData.DB_*",
                )
                continue
            hits: list[tuple[YamlDoc, PathKey, Any]] = []
            for doc in docs:
                hits.extend((doc, p, v) for p, v in listed_matches(doc.value, entry))
            if not hits:
                self.ctx.report.warning(
                    "encrypted-paths",
                    f"encrypted_paths entry '{entry}' matches no key in the content",
                    location=src.location,
                    path=self.ctx.where(path)[0],
                )
            for doc, p, value in hits:
                if not _all_encrypted(value):
                    self.ctx.report.error(
                        "plaintext-secret",
                        f"'{'.'.join(map(str, p))}' is listed in encrypted_paths but is stored in plaintext",
                        location=doc.location(p),
                        path=self.ctx.where(path)[0],
                        hint="re-encrypt the file with sops",
                    )

    def _report_tokens(
        self, unresolved: list[Any], malformed: list[Any], src: _Source, path: PathKey
    ) -> None:
        shown = self.ctx.where(path)[0]
        for item in unresolved:
            loc = _text_location(src, item.offset)
            message = (
                f"variable '{item.name}' is not defined in the stack, cluster or organisation; "
                "the token is left in place"
            )
            hint = "define it under the stack's variables (or as a cluster/organisation variable)"
            if self.strict_variables:
                self.ctx.report.error("unresolved-variable", message, location=loc, path=shown, hint=hint)
            else:
                self.ctx.report.warning("unresolved-variable", message, location=loc, path=shown, hint=hint)
        for item in malformed:
            self.ctx.report.warning(
                "malformed-variable",
                f"'{item.name}' is not a valid variable reference and is left as text",
                location=_text_location(src, item.offset),
                path=shown,
                hint="names start with a letter, then letters, digits or '_': ${{ ankra.MY_NAME }}",
            )

    def _secrets(
        self,
        values: list[Any],
        secret: frozenset[PathKey],
        docs: list[YamlDoc] | None,
        src: _Source,
        path: PathKey,
        multi: bool,
    ) -> None:
        shown = self.ctx.where(path)[0]
        for index, value in enumerate(values):
            skip = {p[1:] for p in secret if p[0] == index}
            for hit in sorted(scan(value, skip), key=str):
                loc = docs[index].location(hit) if docs is not None else src.location
                inner = ".".join(map(str, hit))
                where = f"document {index + 1}: {inner}" if multi else inner
                message = f"{where} looks like a plaintext secret"
                hint = "encrypt it with SOPS and list it in encrypted_paths"
                if self.strict_secrets:
                    self.ctx.report.error("plaintext-secret", message, location=loc, path=shown, hint=hint)
                else:
                    self.ctx.report.warning("plaintext-secret", message, location=loc, path=shown, hint=hint)

    # ------------------------------------------------------------------ entries

    def scopes_for(self, stack_vars: Mapping[str, str], cluster_vars: Mapping[str, str]) -> Scopes:
        return Scopes(
            stack=stack_vars,
            cluster={**self.cluster_variables, **cluster_vars},
            organisation=self.org_variables,
        )

    def manifest(self, entry: Entry[Manifest], scopes: Scopes) -> ResolvedManifest | None:
        m = entry.model
        path = entry.path
        sources = [k for k in ("manifest", "from_file", "manifest_base64") if getattr(m, k) is not None]
        if len(sources) != 1:
            return None  # reported by rules
        kind = sources[0]
        if kind == "manifest" and m.manifest is not None:
            src = self._inline(m.manifest, (*path, "manifest"))
        elif kind == "from_file" and m.from_file is not None:
            src = self._file(m.from_file, (*path, "from_file"), "from_file")
        else:
            src = self._base64(m.manifest_base64 or "", (*path, "manifest_base64"), "manifest_base64")
        values, secret, docs, encrypted = self._load(src, scopes, list(m.encrypted_paths), path)
        objects: list[Any] = []
        for index, obj in enumerate(values):
            loc = docs[index].location(()) if docs is not None else src.location
            problem = _object_problem(obj)
            if problem:
                self.ctx.report.error(
                    "manifest-object",
                    f"document {index + 1} {problem}",
                    location=loc,
                    path=self.ctx.where(path)[0],
                    hint="each document needs apiVersion, kind and metadata.name",
                )
                continue
            self._claim(obj, m, loc, path)
            objects.append(obj)
        if not values:
            self.ctx.report.error(
                "empty-manifest",
                f"manifest '{m.name}' has an empty body (no Kubernetes objects)",
                location=src.location,
                path=self.ctx.where(path)[0],
            )
        self._secrets(values, secret, docs, src, path, multi=len(values) > 1)
        return ResolvedManifest(
            name=m.name,
            stack=entry.stack.name,
            namespace=m.namespace,
            objects=Sensitive(objects, secret),
            force=m.force,
            auto_remediate=m.auto_remediate,
            encrypted=encrypted,
        )

    def _claim(self, obj: dict[str, Any], m: Manifest, loc: Location, path: PathKey) -> None:
        """Report an object (kind, namespace, name) that an earlier document already defines."""
        meta = obj["metadata"]
        name = meta.get("name")
        if not isinstance(name, str):
            return  # generateName: a new object each time
        api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        namespace = "" if (group, kind) in CLUSTER_SCOPED else str(meta.get("namespace") or m.namespace or "")
        key = (group, kind, namespace, name)
        first = self.defined.get(key)
        if first is None:
            self.defined[key] = (loc, m.name)
            return
        where, owner = first
        shown = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        by = f"manifest '{owner}'" if owner != m.name else "the same manifest"
        self.ctx.report.error(
            "duplicate-object",
            f"{shown} is defined twice: here and by {by} at {where}; the two would overwrite each other",
            location=loc,
            path=self.ctx.where(path)[0],
            hint="keep one definition, or give the objects different names or namespaces",
        )

    def addon(self, entry: Entry[Addon], scopes: Scopes, registry_urls: Mapping[str, str]) -> ResolvedAddon:
        a = entry.model
        path = entry.path
        values: Any = {}
        secret: frozenset[PathKey] = frozenset()
        encrypted = False
        locate: Callable[[PathKey], Location | None] | None = None
        conf = a.configuration
        src: _Source | None = None
        if conf is not None:
            cpath = (*path, "configuration")
            if conf.from_file is not None:
                src = self._file(conf.from_file, (*cpath, "from_file"), "from_file")
            elif isinstance(conf.values, dict):
                tree = substitute_tree(conf.values, scopes)
                values = tree
                sources = self.ctx.sources

                def locate(p: PathKey) -> Location | None:
                    return sources.location((*cpath, "values", *p))
            elif conf.values is not None:
                src = self._inline(conf.values, (*cpath, "values"))
            elif conf.values_base64 is not None:
                src = self._base64(conf.values_base64, (*cpath, "values_base64"), "values_base64")
            if src is not None:
                docs_values, secret, docs, encrypted = self._load(
                    src, scopes, list(conf.encrypted_paths), path
                )
                if len(docs_values) > 1:
                    self.ctx.report.error(
                        "values-shape",
                        f"values hold {len(docs_values)} YAML documents; one mapping is expected",
                        location=src.location,
                        path=self.ctx.where(path)[0],
                    )
                first = docs_values[0] if docs_values else {}
                if not isinstance(first, dict):
                    self.ctx.report.error(
                        "values-shape",
                        "values must be a mapping at the top level",
                        location=docs[0].location(()) if docs else src.location,
                        path=self.ctx.where(path)[0],
                        hint="for example: replicaCount: 2",
                    )
                    first = {}
                values = first
                if docs:
                    first_doc = docs[0]

                    def locate(p: PathKey) -> Location | None:
                        return first_doc.location(p)

                secret = frozenset(p[1:] for p in secret if p[0] == 0)
                self._secrets([values], frozenset((0, *p) for p in secret), docs, src, path, multi=False)
            for listed in conf.encrypted_paths:
                secret = secret | {p for p, _ in listed_matches(values, listed)}
        url = (
            a.registry_url
            or a.repository_url
            or (registry_urls.get(a.registry_name) if a.registry_name else None)
        )
        return ResolvedAddon(
            name=a.name,
            stack=entry.stack.name,
            chart_name=a.chart_name,
            chart_version=a.chart_version,
            registry_name=a.registry_name,
            registry_url=url,
            namespace=a.namespace,
            values=Sensitive(values, secret),
            settings=a.settings,
            job_configuration=a.job_configuration,
            encrypted=encrypted,
            defined_at=_at(self.ctx.sources.location(path)),
            value_locations=locate,
            sops_document=src.text if encrypted and src is not None else None,
        )

    def text_file(self, ref: str, path: PathKey, what: str) -> str:
        return self._file(ref, path, what).text


def _text_location(src: _Source, offset: int) -> Location:
    line = src.text.count("\n", 0, offset)
    start = src.text.rfind("\n", 0, offset) + 1
    return Location(src.file, line + 1 + src.line_offset, offset - start + 1)


def _all_encrypted(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_all_encrypted(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_encrypted(v) for v in value)
    return value is None or is_encrypted_value(value)


def _object_problem(obj: Any) -> str:
    if not isinstance(obj, dict):
        return "is not a Kubernetes object (expected a mapping)"
    missing = [k for k in ("apiVersion", "kind") if not isinstance(obj.get(k), str) or not obj.get(k)]
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not (
        isinstance(meta.get("name"), str) or isinstance(meta.get("generateName"), str)
    ):
        missing.append("metadata.name")
    return ("is missing " + ", ".join(missing)) if missing else ""


def resolve_all(asm: Assembly, ctx: Context, resolver: Resolver) -> ResolvedCluster:
    cluster_vars = asm.spec.variables if asm.spec else {}
    resolved = ResolvedCluster(
        name=asm.metadata.name if asm.metadata else "",
        default_engine=asm.spec.deployment_engine if asm.spec else None,
    )
    registry_urls = {r.name: r.url for r in asm.registries}
    registry_credentials = {r.name: r.credential_name for r in asm.registries if r.credential_name}
    for stack, spath, _ in asm.stacks:
        description = stack.description or ""
        if not description and stack.description_from_file:
            try:
                description = resolver.text_file(
                    stack.description_from_file, (*spath, "description_from_file"), "description_from_file"
                )
            except SpecError as exc:
                ctx.report.add_exception(exc, path=ctx.where((*spath, "description_from_file"))[0])
        resolved.descriptions[stack.name] = description
    agents_refs = [(e.model.agents_md_from_file, e.path) for e in asm.manifests] + [
        (e.model.agents_md_from_file, e.path) for e in asm.addons
    ]
    for agents, epath in agents_refs:
        if agents is not None:
            try:
                resolver.text_file(agents, (*epath, "agents_md_from_file"), "agents_md_from_file")
            except SpecError as exc:
                ctx.report.add_exception(exc, path=ctx.where((*epath, "agents_md_from_file"))[0])
    for m_entry in asm.manifests:
        scopes = resolver.scopes_for(m_entry.stack.variables, cluster_vars)
        try:
            rm = resolver.manifest(m_entry, scopes)
        except SpecError as exc:
            ctx.report.add_exception(exc, path=ctx.where(m_entry.path)[0])
            continue
        if rm is not None and m_entry.name not in resolved.manifests:
            resolved.manifests[m_entry.name] = rm
    for a_entry in asm.addons:
        scopes = resolver.scopes_for(a_entry.stack.variables, cluster_vars)
        try:
            ra = resolver.addon(a_entry, scopes, registry_urls)
        except SpecError as exc:
            ctx.report.add_exception(exc, path=ctx.where(a_entry.path)[0])
            continue
        ra.credential_name = a_entry.model.registry_credential_name or registry_credentials.get(
            a_entry.model.registry_name or ""
        )
        if a_entry.name not in resolved.addons:
            resolved.addons[a_entry.name] = ra
    for p_entry in asm.partial:
        # An invalid entry's content is still read, for its problems only (it deploys nothing).
        scopes = resolver.scopes_for(p_entry.stack.variables, cluster_vars)
        try:
            if p_entry.kind == "manifest":
                resolver.manifest(p_entry, scopes)
            elif p_entry.kind == "addon":
                resolver.addon(p_entry, scopes, registry_urls)
        except SpecError as exc:
            ctx.report.add_exception(exc, path=ctx.where(p_entry.path)[0])
    return resolved


__all__ = [
    "MASK",
    "ResolvedAddon",
    "ResolvedCluster",
    "ResolvedManifest",
    "Resolver",
    "Sensitive",
    "resolve_all",
]


def _at(location: Location | None) -> str:
    if location is None or not location.file:
        return ""
    return f"{location.file}:{location.line}" if location.line > 0 else location.file
