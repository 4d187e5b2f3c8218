"""Checks that need more than one field: content sources, registries, names, settings (§2.8-2.12, §5)."""

from __future__ import annotations

import re
from typing import Any, cast

from moorage.spec.assembly import Assembly
from moorage.spec.hints import closest
from moorage.spec.models import CONFIGURATION_KEYS, DNS_LABEL_RE, HealthCheck
from moorage.spec.report import Location, Report, SpecError
from moorage.spec.secrets import looks_like_secret_key
from moorage.spec.sourcemap import SourceMap
from moorage.spec.validate import Context, validate_piece
from moorage.spec.yamlsafe import PathKey, parse_documents

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
    if asm.spec is not None:
        health_checks([(c, ("spec", "health_checks", i)) for i, c in enumerate(asm.spec.health_checks)], ctx)
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
    if settings.engine == "argo_cd" and settings.strict_health_check:
        ctx.warning(
            "engine",
            "strict_health_check has no effect on engine argo_cd: Argo CD's own health decides",
            (*spath, "strict_health_check"),
        )


# --------------------------------------------------------------------------- user health checks
#
# Syntax only: a Lua script is compiled (never run) and a CEL expression parsed. This is the one place
# where moorage.spec imports something beyond stdlib, pydantic and yaml (lupa, cel), lazily, so that a
# definition with a broken check is refused by `moorage validate`, GitOps and the agent alike, with the
# file and line of the mistake (docs/decisions.md, 2026-12-01). Running checks is the engine's job
# (moorage.engine.health.custom), which reuses these two functions to compile.

LUA_CHUNK = "lua"  # chunk name: Lua writes "lua:<line>: <message>"
_LUA_ERROR = re.compile(rf"^{LUA_CHUNK}:(\d+): (.*)$", re.DOTALL)
_CEL_ERROR = re.compile(r"<input>:(\d+):(\d+): (?:Syntax error: )?([^\n]*)")
CEL_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
MAX_CEL_NESTING = 2  # comprehensions inside comprehensions: each level multiplies the work


def lua_problem(source: str) -> tuple[int, str] | None:
    """(line, message) when ``source`` does not compile as Lua 5.4 text, else None. Nothing runs."""
    from lupa import lua54  # heavy and only needed when a definition has Lua checks

    runtime = lua54.LuaRuntime(register_eval=False, register_builtins=False, max_memory=64 * 1024 * 1024)
    try:
        loaded = runtime.globals().load(source, "=" + LUA_CHUNK, "t")
    except Exception as error:  # a memory error while compiling a huge script
        return 1, f"cannot compile: {error}"
    if isinstance(loaded, tuple) and loaded and loaded[0] is None:
        message = str(loaded[1]) if len(loaded) > 1 else "cannot compile"
        match = _LUA_ERROR.match(message)
        return (int(match.group(1)), match.group(2)) if match else (1, message)
    return None


def _cel_nesting(expression: str) -> int:
    """How deeply comprehension macros (``all``, ``exists``, ``map``, …) nest; string literals skipped."""
    depth = deepest = 0
    open_macros: list[int] = []  # paren depth at which each open macro's argument list started
    i, n = 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch in "\"'":
            quote = expression[i : i + 3] if expression[i : i + 3] in ('"""', "'''") else ch
            i += len(quote)
            while i < n and not expression.startswith(quote, i):
                i += 2 if expression[i] == "\\" else 1
            i += len(quote)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            if open_macros and open_macros[-1] == depth:
                open_macros.pop()
            depth -= 1
        elif ch == "." and i + 1 < n:
            match = re.match(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(", expression[i:])
            if match and match.group(1) in CEL_MACROS:
                i += match.end()
                depth += 1
                open_macros.append(depth)
                deepest = max(deepest, len(open_macros))
                continue
        i += 1
    return deepest


def cel_problem(expression: str) -> tuple[int, int, str] | None:
    """(line, column, message) when ``expression`` does not parse as CEL, or nests comprehensions
    more than :data:`MAX_CEL_NESTING` deep; else None."""
    if not expression.strip():
        return 1, 1, "the expression is empty"
    nesting = _cel_nesting(expression)
    if nesting > MAX_CEL_NESTING:
        return (
            1,
            1,
            f"comprehensions (all, exists, map, filter) nest {nesting} deep; at most "
            f"{MAX_CEL_NESTING} are allowed, since each level multiplies the work",
        )
    import cel  # heavy and only needed when a definition has CEL checks

    try:
        cel.compile(expression)
    except Exception as error:
        text = str(error)
        match = _CEL_ERROR.search(text)
        if match:
            return int(match.group(1)), int(match.group(2)), match.group(3).strip()
        return 1, 1, text.splitlines()[0] if text else type(error).__name__
    return None


def _text_location(ctx: Context, path: PathKey, text: str, line: int, column: int) -> Location | None:
    """Where line/column of a script or expression written at ``path`` is in its file: a block scalar
    (``lua: |``) starts on the line after its key; a one-line value on the key's line."""
    start = ctx.sources.location(path)
    if start is None:
        return None
    if "\n" in text.rstrip("\n"):
        key = ctx.sources.location(path, key=True)
        indent = (key.column + 2) if key is not None else 1  # block content: indented past its key
        return Location(start.file, start.line + line, max(column, 1) + indent - 1)
    return Location(start.file, start.line, start.column + max(column - 1, 0))


def health_checks(entries: list[tuple[HealthCheck, PathKey]], ctx: Context) -> None:
    """Duplicate kinds, Lua scripts that do not compile, CEL expressions that do not parse."""
    seen: dict[tuple[str, str], PathKey] = {}
    for check, path in entries:
        key = check.group_kind
        if key in seen:
            ctx.error(
                "duplicate-health-check",
                f"{check.display} has more than one health check (first at {ctx.where(seen[key])[1]})",
                path,
                hint="keep one entry per group and kind",
            )
        seen.setdefault(key, path)
        if check.lua is not None:
            found = lua_problem(check.lua)
            if found is not None:
                line, message = found
                lpath = (*path, "lua")
                ctx.report.error(
                    "health-check-lua",
                    f"the Lua health check for {check.display} does not compile: line {line}: {message}",
                    location=_text_location(ctx, lpath, check.lua, line, 0),
                    path=ctx.where(lpath)[0],
                    hint="Argo CD's format: read the global obj, return {status = ..., message = ...}",
                )
        if check.cel is not None:
            for name, expression in check.cel.expressions():
                problem = cel_problem(expression)
                if problem is None:
                    continue
                line, column, message = problem
                epath = (*path, "cel", "in_progress" if name == "inProgress" else name)
                if ctx.sources.location(epath) is None or _get(ctx.root, epath) is None:
                    epath = (*path, "cel", name)
                ctx.report.error(
                    "health-check-cel",
                    f"the CEL expression '{name}' for {check.display} does not parse: {message}",
                    location=_text_location(ctx, epath, expression, line, column),
                    path=ctx.where(epath)[0],
                    hint="Flux's healthCheckExprs: the object's fields (status, metadata, …) are variables",
                )


def health_checks_file(text: str, file: str) -> tuple[list[HealthCheck], Report]:
    """The server-wide checks file (``MOORAGE_HEALTH_CHECKS_FILE``): a YAML list of the entries that
    ``spec.health_checks`` takes, a mapping with that key, or one entry alone (``moorage health test
    --check``). Validated like a definition."""
    report = Report()
    ctx = Context(report=report, sources=SourceMap(), root=None)
    try:
        docs = parse_documents(text, file)
    except SpecError as exc:
        report.add_exception(exc)
        return [], report
    if not docs or docs[0].value is None:
        return [], report
    doc = docs[0]
    ctx.sources.mount((), doc)
    ctx.root = doc.value
    raw, prefix = doc.value, cast(PathKey, ())
    if isinstance(raw, dict) and ("health_checks" in raw or "healthChecks" in raw):
        key = "health_checks" if "health_checks" in raw else "healthChecks"
        raw, prefix = raw[key], (key,)
    elif isinstance(raw, dict) and ("lua" in raw or "cel" in raw):  # one entry alone
        model = validate_piece(HealthCheck, raw, (), ctx)
        if model is not None:
            health_checks([(model, ())], ctx)
        return ([model] if model is not None else []), report
    if not isinstance(raw, list):
        report.error(
            "health-checks-file",
            "the health checks file must hold a list of checks (or a mapping with health_checks)",
            location=Location(file, 1, 1),
            hint="- {argocd_key: example.com_Widget, lua: |\n    ...}",
        )
        return [], report
    found: list[tuple[HealthCheck, PathKey]] = []
    for index, item in enumerate(raw):
        path: PathKey = (*prefix, index)
        model = validate_piece(HealthCheck, item, path, ctx)
        if model is not None:
            found.append((model, path))
    health_checks(found, ctx)
    return [m for m, _ in found], report
