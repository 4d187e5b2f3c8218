"""Turning pydantic's errors into report items a person can act on."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ValidationError

from moorage.spec.hints import closest, did_you_mean, example_for
from moorage.spec.report import Report
from moorage.spec.sourcemap import SourceMap, display_path
from moorage.spec.yamlsafe import PathKey, explain_trap

M = TypeVar("M", bound=BaseModel)

CREDENTIAL_FIELDS = frozenset({"username", "password", "token", "auth_scheme"})


@dataclass
class Context:
    report: Report
    sources: SourceMap
    root: Any  # the assembled raw tree, for display paths

    def where(self, path: PathKey, *, key: bool = False) -> tuple[str, Any]:
        return display_path(self.root, path), self.sources.location(path, key=key)

    def error(self, code: str, message: str, path: PathKey, *, hint: str = "", key: bool = False) -> None:
        shown, loc = self.where(path, key=key)
        self.report.error(code, message, location=loc, path=shown, hint=hint)

    def warning(self, code: str, message: str, path: PathKey, *, hint: str = "", key: bool = False) -> None:
        shown, loc = self.where(path, key=key)
        self.report.warning(code, message, location=loc, path=shown, hint=hint)


def field_names(cls: type[BaseModel]) -> tuple[list[str], dict[str, str]]:
    """Canonical field names, and every accepted spelling mapped to its canonical name."""
    canonical: list[str] = []
    spellings: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        canonical.append(name)
        spellings[name] = name
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    spellings[choice] = name
    return canonical, spellings


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model reachable from an annotation and how (``model`` / ``list`` / ``dict``)."""
    for arg in _unwrap(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, "model"
        origin = typing.get_origin(arg)
        if origin in (list, dict):
            inner = typing.get_args(arg)[-1]
            for sub in _unwrap(inner):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    return sub, "list" if origin is list else "dict"
    return None, ""


def model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model class whose field the last segment of ``loc`` names."""
    current = cls
    pending = ""
    for seg in loc[:-1]:
        if pending:
            pending = ""
            continue
        if not isinstance(seg, str):
            continue
        _, spellings = field_names(current)
        name = spellings.get(seg)
        if name is None:
            continue
        sub, how = _model_in(current.model_fields[name].annotation)
        if sub is None:
            break
        current = sub
        pending = how if how in ("list", "dict") else ""
    return current


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean (true or false)",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
}

_ENTRY_WORDS = {"stacks": "stack", "manifests": "manifest", "addons": "addon", "applications": "application"}


def report_validation_error(
    exc: ValidationError, cls: type[BaseModel], raw: Any, prefix: PathKey, ctx: Context
) -> None:
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        etype = err["type"]
        # Follow the raw tree: pydantic adds union/validator tags that are not data paths.
        node = raw
        path: list[str | int] = []
        is_key = False
        for i, seg in enumerate(loc):
            if seg == "[key]":
                is_key = True
                continue
            if isinstance(node, dict) and seg in node:  # noqa: SIM114 - split for type narrowing
                node = node[seg]
                path.append(seg)
            elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
                node = node[seg]
                path.append(seg)
            elif etype == "missing" and i == len(loc) - 1:
                path.append(seg)
        full = prefix + tuple(path)
        field = str(path[-1]) if path and isinstance(path[-1], str) else ""
        owner = model_at(cls, tuple(s for s in loc if s != "[key]"))
        if is_key:
            node = err.get("input")
        message, hint, at_key = _message(err, etype, field, node, owner, full, ctx)
        if etype == "missing":
            # Point at the object that lacks the field.
            shown = display_path(ctx.root, full)
            ctx.report.error(
                "missing-field", message, location=ctx.sources.location(full[:-1]), path=shown, hint=hint
            )
            continue
        ctx.error(_code(etype), message, full, hint=hint, key=at_key or is_key)


def _code(etype: str) -> str:
    if etype == "extra_forbidden":
        return "unknown-field"
    if etype in _TYPE_WORDS or etype in ("model_type", "model_attributes_type"):
        return "type"
    return etype.replace("_", "-")


def _message(
    err: Any, etype: str, field: str, value: Any, owner: type[BaseModel], full: PathKey, ctx: Context
) -> tuple[str, str, bool]:
    canonical, spellings = field_names(owner)
    if etype == "missing":
        return f"missing required field '{field}'", example_for(field), False
    if etype == "extra_forbidden":
        if field in CREDENTIAL_FIELDS and any(p in ("prometheus_metrics", "log_source") for p in full):
            return (
                f"credential field '{field}' is not allowed here",
                "store the secret as a credential and reference it with credential_name",
                True,
            )
        match = closest(field, spellings)
        hint = f"did you mean '{match}'?" if match else did_you_mean(field, canonical)
        return f"unknown field '{field}'", hint, True
    if etype in ("model_type", "model_attributes_type", "dict_type") and full and isinstance(full[-1], int):
        kind = _ENTRY_WORDS.get(str(full[-2]), "entry") if len(full) >= 2 else "entry"
        return (
            f"{kind} #{full[-1] + 1} is not a valid object, got {_describe(value)}",
            "expected a mapping with fields: " + ", ".join(canonical),
            False,
        )
    if etype in _TYPE_WORDS or etype in ("model_type", "model_attributes_type"):
        wanted = _TYPE_WORDS.get(etype, "a mapping")
        name = f"'{field}'" if field else "value"
        raw = ctx.sources.raw(full)
        hint = explain_trap(raw, value) if raw is not None else ""
        if not hint and etype in ("model_type", "model_attributes_type"):
            hint = "expected fields: " + ", ".join(canonical)
        return f"{name} must be {wanted}, got {_describe(value)}", hint, False
    if etype == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        match = closest(str(value), options) if isinstance(value, str) else None
        hint = f"did you mean '{match}'?" if match else ""
        return f"'{field}' must be {expected}, found {value!r}", hint, False
    if etype == "string_pattern_mismatch" and "variables" in full:
        return (
            f"variable name '{value}' is invalid",
            "names start with a letter and contain only letters, digits and '_' (e.g. LOG_LEVEL)",
            True,
        )
    if etype == "string_too_long":
        limit = err.get("ctx", {}).get("max_length")
        return f"'{field}' must be at most {limit} characters", "", False
    if etype in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        msg = str(err["msg"]).replace("Input should be", "must be")
        return f"'{field}' {msg}, found {value!r}", "", False
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return message, "", False


def validate_piece(cls: type[M], raw: Any, prefix: PathKey, ctx: Context) -> M | None:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        report_validation_error(exc, cls, raw, prefix, ctx)
        return None
