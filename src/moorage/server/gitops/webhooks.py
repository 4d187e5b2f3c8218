"""Push webhooks from GitHub, Bitbucket Cloud and Bitbucket Data Center: signatures and payloads.

Payloads are untrusted (argo-cd CVE-2024-40634, argo-cd#23024): `parse` checks the type and size of
every field it reads and raises nothing but WebhookError, whose message names the field and never
repeats the payload. Callers check `signature_valid` before acting on what `parse` returns."""

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from moorage.server.gitops.repourl import Provider, RepoIdentity, RepoInputError, identity_from_fields

MAX_BODY_BYTES = 25 * 1024 * 1024  # what GitHub itself caps a delivery at
MAX_CHANGES = 1000
MAX_NAME_CHARS = 1024
_MAX_FORM_FIELDS = 100

_EVENT_HEADER = {
    "github": "X-GitHub-Event",
    "bitbucket_cloud": "X-Event-Key",
    "bitbucket_data_center": "X-Event-Key",
}
_SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "bitbucket_cloud": "X-Hub-Signature",
    "bitbucket_data_center": "X-Hub-Signature",
}
_PUSH_EVENT = {"github": "push", "bitbucket_cloud": "repo:push", "bitbucket_data_center": "repo:refs_changed"}
_PING_EVENT = {
    "github": "ping",
    "bitbucket_cloud": "diagnostics:ping",
    "bitbucket_data_center": "diagnostics:ping",
}
_DELIVERY_HEADERS = ("x-github-delivery", "x-request-uuid", "x-request-id")

_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_DELIVERY = re.compile(r"[\x21-\x7e]{1,200}")
_UNSHOWN = re.compile(r"[^A-Za-z0-9:_.-]")

JsonObject = dict[str, object]


class WebhookError(Exception):
    """A delivery Moorage refuses; `status` is the HTTP answer, `message` is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Push:
    """One ref that a push changed."""

    repository: RepoIdentity
    branch: str | None  # None when the ref is not a branch (a tag)
    after: str | None  # the new head commit; None when the ref was deleted


@dataclass(frozen=True)
class WebhookEvent:
    """What a delivery asks of us: pushes to match against repositories, a ping, or nothing."""

    kind: Literal["push", "ping", "ignored"]
    pushes: tuple[Push, ...] = ()
    reason: str = ""  # why it was ignored
    delivery: str | None = None  # the sender's delivery id, for logs and de-duplication


# --------------------------------------------------------------------------- signatures


def signature_valid(provider: Provider, headers: Mapping[str, str], body: bytes, secret: bytes) -> bool:
    """Whether the delivery carries a valid HMAC-SHA256 of `body` under `secret`. Never raises."""
    name = _SIGNATURE_HEADER.get(provider)
    # an empty secret authenticates nobody: treat it as "no valid signature"
    if name is None or not isinstance(secret, bytes | bytearray) or not secret:
        return False
    given = _SIGNATURE.fullmatch(_lowered(headers).get(name.lower(), "").strip())
    if given is None:
        return False
    return hmac.compare_digest(_digest(body, secret), given.group(1).lower())


def sign(provider: Provider, body: bytes, secret: bytes) -> dict[str, str]:
    """The signature header a sender would set (for tests and benchmarks)."""
    return {_SIGNATURE_HEADER[provider]: f"sha256={_digest(body, secret)}"}


def _digest(body: bytes, secret: bytes) -> str:
    return hmac.new(bytes(secret), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- events


def parse(provider: Provider, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
    """What a delivery says; any problem with it is a WebhookError."""
    if provider not in _PUSH_EVENT:
        raise WebhookError(404, "unknown webhook provider")
    lowered = _lowered(headers)
    header = _EVENT_HEADER[provider]
    event = lowered.get(header.lower(), "").strip().lower()
    if not event:
        raise WebhookError(400, f"missing {header} header")
    delivery = _delivery(lowered)
    if event == _PING_EVENT[provider]:
        return WebhookEvent("ping", delivery=delivery)
    if event != _PUSH_EVENT[provider]:
        return WebhookEvent("ignored", reason=f"event '{_shown(event)}' is not a push", delivery=delivery)
    payload = _payload(provider, lowered, body)
    return WebhookEvent("push", pushes=_PARSERS[provider](payload), delivery=delivery)


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if isinstance(k, str) and isinstance(v, str)}


def _delivery(headers: Mapping[str, str]) -> str | None:
    for name in _DELIVERY_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            # an odd id is not worth refusing a delivery over; it just goes unrecorded
            return value if _DELIVERY.fullmatch(value) else None
    return None


def _shown(text: str) -> str:
    return _UNSHOWN.sub("?", text[:64])


def _payload(provider: Provider, headers: Mapping[str, str], body: bytes) -> JsonObject:
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(413, f"the payload is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise WebhookError(400, "the payload is not UTF-8") from None
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if provider == "github" and content_type == "application/x-www-form-urlencoded":
        text = _form_payload(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise WebhookError(400, "the payload is not valid JSON") from None
    return _object(value, "the payload")


def _form_payload(text: str) -> str:
    """The JSON in the `payload` field of a form-encoded GitHub delivery."""
    try:
        fields = parse_qs(text, keep_blank_values=True, errors="strict", max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:
        raise WebhookError(400, "the form-encoded payload is malformed") from None
    values = fields.get("payload", [])
    if len(values) != 1:
        raise WebhookError(400, "the form-encoded payload needs exactly one 'payload' field")
    return values[0]


# --------------------------------------------------------------------------- providers


def _github(payload: JsonObject) -> tuple[Push, ...]:
    ref = _text(payload, "ref", "ref")
    after = _sha(payload, "after", "after")
    deleted = payload.get("deleted", False)
    if not isinstance(deleted, bool):
        raise WebhookError(400, "field 'deleted' must be true or false")
    repository = _object(_field(payload, "repository", "repository"), "repository")
    full_name = _text(repository, "full_name", "repository.full_name")
    identity = _identity("github", "repository.full_name", repository=full_name)
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    return (Push(identity, branch or None, None if deleted else _head(after)),)


def _bitbucket_cloud(payload: JsonObject) -> tuple[Push, ...]:
    repository = _object(_field(payload, "repository", "repository"), "repository")
    full_name = _text(repository, "full_name", "repository.full_name")
    workspace, _, slug = full_name.partition("/")
    identity = _identity("bitbucket_cloud", "repository.full_name", workspace=workspace, repo_slug=slug)
    push = _object(_field(payload, "push", "push"), "push")
    changes = _list(push, "changes", "push.changes")
    return tuple(_cloud_change(identity, c, f"push.changes[{i}]") for i, c in enumerate(changes))


def _cloud_change(identity: RepoIdentity, value: object, path: str) -> Push:
    change = _object(value, path)
    new, old = change.get("new"), change.get("old")
    if new is not None:
        ref = _object(new, f"{path}.new")
        target = _object(_field(ref, "target", f"{path}.new.target"), f"{path}.new.target")
        after = _head(_sha(target, "hash", f"{path}.new.target.hash"))
        where = f"{path}.new"
    elif old is not None:
        ref, after, where = _object(old, f"{path}.old"), None, f"{path}.old"
    else:
        raise WebhookError(400, f"field '{path}' has neither 'new' nor 'old'")
    kind = _text(ref, "type", f"{where}.type")
    name = _text(ref, "name", f"{where}.name")
    return Push(identity, name if kind == "branch" else None, after)


def _bitbucket_data_center(payload: JsonObject) -> tuple[Push, ...]:
    repository = _object(_field(payload, "repository", "repository"), "repository")
    slug = _text(repository, "slug", "repository.slug")
    project = _object(_field(repository, "project", "repository.project"), "repository.project")
    key = _text(project, "key", "repository.project.key")
    identity = _identity("bitbucket_data_center", "repository", project_key=key, repo_slug=slug)
    changes = _list(payload, "changes", "changes")
    return tuple(_data_center_change(identity, c, f"changes[{i}]") for i, c in enumerate(changes))


def _data_center_change(identity: RepoIdentity, value: object, path: str) -> Push:
    change = _object(value, path)
    ref = _object(_field(change, "ref", f"{path}.ref"), f"{path}.ref")
    ref_id = _text(ref, "id", f"{path}.ref.id")
    ref_type = _text(ref, "type", f"{path}.ref.type")
    to_hash = _sha(change, "toHash", f"{path}.toHash")
    change_type = _text(change, "type", f"{path}.type")
    is_branch = ref_type == "BRANCH" and ref_id.startswith("refs/heads/")
    branch = ref_id.removeprefix("refs/heads/") if is_branch else None
    return Push(identity, branch or None, None if change_type == "DELETE" else _head(to_hash))


_PARSERS: dict[str, Callable[[JsonObject], tuple[Push, ...]]] = {
    "github": _github,
    "bitbucket_cloud": _bitbucket_cloud,
    "bitbucket_data_center": _bitbucket_data_center,
}


# --------------------------------------------------------------------------- fields


def _identity(provider: Provider, path: str, **fields: str) -> RepoIdentity:
    try:
        identity = identity_from_fields(provider, **fields)
    except RepoInputError:
        identity = None
    if identity is None:
        raise WebhookError(400, f"field '{path}' does not name a repository")
    return identity


def _field(obj: JsonObject, key: str, path: str) -> object:
    if key not in obj:
        raise WebhookError(400, f"missing field '{path}'")
    return obj[key]


def _object(value: object, path: str) -> JsonObject:
    if not isinstance(value, dict):
        raise WebhookError(400, f"{_named(path)} must be a JSON object")
    return value


def _list(obj: JsonObject, key: str, path: str) -> list[object]:
    value = _field(obj, key, path)
    if not isinstance(value, list):
        raise WebhookError(400, f"field '{path}' must be a list")
    if len(value) > MAX_CHANGES:
        raise WebhookError(400, f"field '{path}' has more than {MAX_CHANGES} entries")
    return value


def _text(obj: JsonObject, key: str, path: str) -> str:
    value = _field(obj, key, path)
    if not isinstance(value, str) or not value:
        raise WebhookError(400, f"field '{path}' must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise WebhookError(400, f"field '{path}' is longer than {MAX_NAME_CHARS} characters")
    if not value.isprintable():
        raise WebhookError(400, f"field '{path}' contains control characters")
    return value


def _sha(obj: JsonObject, key: str, path: str) -> str:
    value = _field(obj, key, path)
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise WebhookError(400, f"field '{path}' must be a commit SHA (40 or 64 hexadecimal characters)")
    return value.lower()


def _head(sha: str) -> str | None:
    """None for the all-zero SHA that senders use for "no commit" (a deleted ref)."""
    return None if sha.strip("0") == "" else sha


def _named(path: str) -> str:
    return path if path.startswith("the ") else f"field '{path}'"
