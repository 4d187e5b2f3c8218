"""Checks that need more than one field: content sources, registries, names, settings (§2.8-2.12, §5)."""

from __future__ import annotations

import re
from typing import Any

from moorage.spec.assembly import Assembly
from moorage.spec.hints import closest
from moorage.spec.models import CONFIGURATION_KEYS, DNS_LABEL_RE
from moorage.spec.secrets import looks_like_secret_key
from moorage.spec.validate import Context
from moorage.spec.yamlsafe import PathKey

SYNC_OPTIONS: dict[str, tuple[str, ...]] = {
    "CreateNamespace": ("true", "false"),
    "ServerSideApply": ("true", "false"),
    "ApplyOutOfSyncOnly": ("true", "false"),
    "RespectIgnoreDifferences": ("true", "false"),
    "PrunePropagationPolicy": ("foreground", "background", "orphan"),
    "PruneLast": ("true", "false"),
    "Replace": ("true", "false"),
    "FailOnSharedResource": ("true", "false"),
    "Validate": ("true", "false"),
    "SkipDryRunOnMissingResource": ("true", "false"),
}
_VERSION_RANGE = re.compile(r"[\^~*<>=|, ]|(^|\.)[xX](\.|$)")


def _get(raw: Any, path: PathKey) -> Any:
    node = raw
    for seg in path:
        if isinstance(node, dict) and seg in node:  # noqa: SIM114 - split for type narrowing
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        else:
            return None
    return node


def _namespace(value: str | None, path: PathKey, ctx: Context) -> None:
    if value is not None and not DNS_LABEL_RE.match(value):
        ctx.error(
            "namespace",
            f"namespace '{value}' is not a valid DNS label",
            path,
            hint="1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
        )


def check(asm: Assembly, ctx: Context) -> None:
    _unique_stacks_and_registries(asm, ctx)
    declared = {r.name: r.url for r in asm.registries}
    for stack, spath, _ in asm.stacks:
        for name, value in stack.variables.items():
            if looks_like_secret_key(name) and value and not value.startswith("ENC["):
                ctx.warning(
                    "plaintext-secret",
                    f"variable '{name}' looks like a secret; variables are stored in plaintext",
                    (*spath, "variables", name),
                    hint="put secrets in a SOPS-encrypted values file instead",
                )
    for entry in asm.manifests:
        m = entry.model
        sources = [k for k in ("manifest", "from_file", "manifest_base64") if getattr(m, k) is not None]
        if len(sources) != 1:
            ctx.error(
                "manifest-source",
                f"manifest '{m.name}' needs exactly one content source, found "
                + (", ".join(sources) if sources else "none"),
                entry.path,
                hint="set one of: manifest (inline YAML), from_file (a path) or manifest_base64",
            )
        _namespace(m.namespace, (*entry.path, "namespace"), ctx)
    for addon_entry in asm.addons:
        a = addon_entry.model
        path = addon_entry.path
        _namespace(a.namespace, (*path, "namespace"), ctx)
        if not a.chart_name.strip():
            ctx.error(
                "chart-name",
                "chart_name is empty",
                (*path, "chart_name"),
                hint="for example: chart_name: fluent-bit",
            )
        version = a.chart_version.strip()
        if not version:
            ctx.error(
                "chart-version",
                "chart_version is empty",
                (*path, "chart_version"),
                hint='for example: "1.2.0"',
            )
        elif _VERSION_RANGE.search(version):
            ctx.error(
                "chart-version",
                f"chart_version '{a.chart_version}' is a range; an exact pinned version is required",
                (*path, "chart_version"),
                hint='pin one version, e.g. "1.2.0"',
            )
        _registry(a.registry_name, a.registry_url, a.repository_url, declared, path, ctx)
        _configuration(asm, path, ctx)
        _settings(a, path, ctx)


def _unique_stacks_and_registries(asm: Assembly, ctx: Context) -> None:
    seen: dict[str, PathKey] = {}
    for stack, spath, _ in asm.stacks:
        if stack.name in seen:
            first = ctx.where(seen[stack.name])[1]
            ctx.error(
                "duplicate-name",
                f'stack "{stack.name}" is declared more than once (first at {first}); '
                "names must be unique per kind",
                (*spath, "name"),
            )
        else:
            seen[stack.name] = spath
    if asm.spec is None:
        return
    regs: dict[str, int] = {}
    for index, reg in enumerate(asm.spec.helm_registries):
        if reg.name in regs:
            ctx.error(
                "duplicate-name",
                f'helm registry "{reg.name}" is declared more than once; names must be unique',
                ("spec", "helm_registries", index, "name"),
            )
        regs.setdefault(reg.name, index)


def _registry(
    name: str | None,
    url: str | None,
    legacy: str | None,
    declared: dict[str, str],
    path: PathKey,
    ctx: Context,
) -> None:
    if legacy is not None:
        ctx.warning(
            "legacy-field",
            "repository_url is the legacy spelling of registry_url",
            (*path, "repository_url"),
            key=True,
            hint="use registry_name and registry_url",
        )
    effective_url = url or legacy
    if name is None and effective_url is None:
        ctx.error(
            "missing-field",
            "missing registry: set 'registry_name' (a registry in spec.helm_registries) and 'registry_url'",
            path,
            hint="for example: registry_name: fluent",
        )
        return
    if name is None:
        return
    if name in declared:
        if effective_url is not None and effective_url.rstrip("/") != declared[name].rstrip("/"):
            ctx.error(
                "registry-mismatch",
                f"registry_url '{effective_url}' differs from the url of registry "
                f"'{name}' ({declared[name]})",
                (*path, "registry_url" if url is not None else "repository_url"),
            )
        return
    match = closest(name, declared)
    ctx.warning(
        "registry-undeclared",
        f"registry '{name}' is not declared in spec.helm_registries; it must already be connected",
        (*path, "registry_name"),
        hint=f"did you mean '{match}'?" if match else "declare it under spec.helm_registries",
    )
    if effective_url is None:
        ctx.error(
            "missing-field",
            f"registry '{name}' is not declared here, so registry_url is required",
            path,
            hint="for example: registry_url: https://charts.example.com",
        )


def _configuration(asm: Assembly, path: PathKey, ctx: Context) -> None:
    raw = _get(asm.raw, (*path, "configuration"))
    if not isinstance(raw, dict):
        return
    cpath = (*path, "configuration")
    unknown = [k for k in raw if k not in CONFIGURATION_KEYS]
    known = [k for k in raw if k in CONFIGURATION_KEYS]
    for key in unknown:
        match = closest(str(key), CONFIGURATION_KEYS)
        hint = f"did you mean '{match}'?" if match else "accepted keys: " + ", ".join(CONFIGURATION_KEYS)
        if known:
            ctx.warning(
                "unknown-field",
                f"unknown configuration key '{key}' is ignored",
                (*cpath, key),
                key=True,
                hint=hint,
            )
        else:
            ctx.error(
                "unknown-field",
                f"configuration has only unknown keys ({', '.join(map(str, unknown))}); no values are used",
                (*cpath, key),
                key=True,
                hint=hint,
            )
    sources = [k for k in ("from_file", "values", "values_base64") if raw.get(k) is not None]
    if raw.get("encrypted_paths") and not sources:
        ctx.error(
            "encrypted-paths",
            "encrypted_paths is set but there are no values to decrypt",
            (*cpath, "encrypted_paths"),
            key=True,
            hint="add from_file, values or values_base64",
        )
    if len(sources) > 1:
        ctx.warning(
            "values-sources",
            f"several value sources ({', '.join(sources)}); only {sources[0]} is used",
            cpath,
            hint="precedence is from_file > values > values_base64",
        )


def _settings(addon: Any, path: PathKey, ctx: Context) -> None:
    settings = addon.settings
    spath = (*path, "settings")
    policy = settings.sync_policy
    for index, option in enumerate(policy.sync_options):
        opath = (*spath, "sync_policy", "sync_options", index)
        key, sep, value = option.partition("=")
        if key not in SYNC_OPTIONS:
            match = closest(key, SYNC_OPTIONS)
            ctx.error(
                "sync-option",
                f"unknown sync option '{option}'",
                opath,
                hint=f"did you mean '{match}'?" if match else "known options: " + ", ".join(SYNC_OPTIONS),
            )
        elif not sep or value not in SYNC_OPTIONS[key]:
            ctx.error(
                "sync-option",
                f"sync option '{option}' needs a value: {key}=" + "|".join(SYNC_OPTIONS[key]),
                opath,
            )
    if not policy.automated and (policy.auto_prune or policy.self_heal):
        ctx.warning(
            "sync-policy",
            "auto_prune and self_heal have no effect while automated is false",
            (*spath, "sync_policy"),
        )
    for index, rule in enumerate(settings.ignore_differences):
        if not rule.has_specifier:
            ctx.warning(
                "ignore-rule",
                "this ignore_differences rule has no json_pointers, jq_path_expressions or "
                "managed_fields_managers and is ignored",
                (*spath, "ignore_differences", index),
            )
    if settings.engine == "argo_cd":
        ctx.warning(
            "engine",
            "Moorage deploys with its native Helm engine; engine argo_cd is ignored",
            (*spath, "engine"),
        )
