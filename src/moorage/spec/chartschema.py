"""An add-on's values against its chart's values.schema.json, before anything is deployed (issue 16,
item 5). As helm does, the chart's default values are merged with the add-on's (the add-on wins, a
null removes a default) and the result is validated; each violation is reported like any other
validation problem: the file and line of the value (or of the add-on, for a value that comes from
the chart's defaults or is missing), the field path, and the schema's words.

Pure: the caller fetches the chart (moorage.charts). Encrypted values that were not decrypted (the
server holds no SOPS key) are not judged. A schema's remote $refs are never fetched (jsonschema's
referencing does not retrieve by default), and an invalid schema is a warning, as helm would fail
at deploy time on it anyway."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from moorage.spec.content import ResolvedAddon
from moorage.spec.report import Issue, Location, Severity
from moorage.spec.sops import is_encrypted_value

MAX_ISSUES_PER_ADDON = 50
PathKey = tuple[str | int, ...]


def merged(defaults: Any, values: Any) -> Any:
    """Helm's coalescing of user values over chart defaults (mappings merged, null deletes)."""
    if not isinstance(defaults, dict) or not isinstance(values, dict):
        return copy.deepcopy(values)
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _display(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _has(values: Any, path: PathKey) -> bool:
    node = values
    for part in path:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True


def _under_secret(path: PathKey, secrets: Iterable[PathKey]) -> bool:
    return any(path[: len(s)] == tuple(s) for s in secrets)


def _offending_key(error: jsonschema.ValidationError) -> str | None:
    """The property an additionalProperties or required error is about."""
    if error.validator == "required" and isinstance(error.validator_value, list):
        instance = error.instance if isinstance(error.instance, dict) else {}
        return next((str(k) for k in error.validator_value if k not in instance), None)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = set(schema.get("properties") or {})
        return next((str(k) for k in error.instance if k not in known), None)
    return None


def check_values(
    addon: ResolvedAddon,
    schema: dict[str, Any],
    defaults: dict[str, Any],
    locate: Callable[[PathKey], Location | None],
    addon_location: Location | None,
) -> list[Issue]:
    """Every violation of `schema` by the add-on's values merged over `defaults` (the chart's)."""
    values = addon.values.reveal()
    secrets = [tuple(p) for p in addon.values.secret_paths]
    chart = f"{addon.chart_name} {addon.chart_version}"
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        cls.check_schema(schema)
    except SchemaError as e:
        return [
            Issue(
                Severity.WARNING,
                "chart-schema-invalid",
                f"add-on {addon.name}: the values.schema.json of chart {chart} is not a valid JSON schema "
                f"({e.message[:200]}); its values were not checked",
                addon_location,
                f"addons[{addon.name}]",
            )
        ]
    issues: list[Issue] = []
    for error in cls(schema).iter_errors(merged(defaults, values if isinstance(values, dict) else {})):
        path: PathKey = tuple(error.absolute_path)
        key = _offending_key(error)
        field_path = (*path, key) if key is not None and error.validator == "additionalProperties" else path
        if _under_secret(field_path, secrets) or (
            isinstance(error.instance, str) and is_encrypted_value(error.instance)
        ):
            continue  # an encrypted value is judged where it is decrypted (the agent, helm)
        user_value = _has(values, field_path)
        where = locate(field_path) if user_value else None
        origin = "" if user_value else (" (the chart's default)" if _has(defaults, field_path) else "")
        shown = _display(field_path) or "(values)"
        if error.validator == "required" and key is not None:
            shown = _display((*path, key))
        issues.append(
            Issue(
                Severity.ERROR,
                "values-schema",
                f"add-on {addon.name}: value {shown}{origin} does not match the values.schema.json of chart "
                f"{chart}: {error.message[:300]}",
                where or addon_location,
                f"addons[{addon.name}].values.{shown}"
                if field_path or key
                else f"addons[{addon.name}].values",
                hint="helm would refuse this deploy; fix the value, or pick a chart version whose schema "
                "allows it",
            )
        )
        if len(issues) >= MAX_ISSUES_PER_ADDON:
            break
    return issues
