"""The kubectl proxy's wire format between `moorage server` and an agent, over core NATS (not JetStream).

One proxied Kubernetes API request is one *stream* with a random id. The server publishes frames to
the agent on `kube_to_agent_subject(cluster)` (OPEN with the request, BODY chunks, CREDIT, CANCEL,
and for upgraded connections WS messages); the agent answers on the stream's own subject
`kube_to_server_subject(cluster, stream)` (HEAD with status and headers, DATA chunks, PING, END).

A frame is a NATS message: its kind, stream id and sequence number in headers, its payload raw bytes
(JSON for OPEN, HEAD, END). Every DATA frame is at most CHUNK_BYTES, and the agent sends one only while
it holds credit: the server grants WINDOW chunks at the start and more as its HTTP client takes them,
so a slow consumer holds at most WINDOW chunks in the server and stalls nothing but its own stream.
On an upgraded connection the other direction works the same way: the server sends WS frames only
with credit the agent grants (CREDIT on the stream's subject) as it writes them to the API server.

Pure code: the frame models, the limits, and `classify` (a request's verb, resource, namespace and
name, as the audit trail records them)."""

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel, ConfigDict, Field, field_validator

CHUNK_BYTES = 128 * 1024  # of one DATA / BODY / WS frame: far below the NATS message limit (1 MiB)
WINDOW = 8  # DATA frames the agent may send ahead of the server's consumer (1 MiB per stream)
PING_SECONDS = 10.0  # the agent pings every open stream this often when it has nothing else to send
ACCEPT_SECONDS = 5.0  # the agent says it took a request within this long, else no agent is listening
IDLE_SECONDS = 35.0  # a stream that heard nothing (no data, no ping) for this long is dead
CREDIT_WAIT_SECONDS = 300.0  # the agent gives up a stream whose consumer took nothing for this long
MAX_PATH_CHARS = 4096
MAX_QUERY_CHARS = 16 * 1024
MAX_HEADER_CHARS = 8 * 1024

# request headers a client's request keeps on its way to the API server; everything else (above all
# Authorization and Impersonate-*) is dropped, so a user never speaks with the agent's credential
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-type",
        "user-agent",
        "kubectl-command",
        "kubectl-session",
        "x-stream-protocol-version",
    }
)
# response headers of the API server a client gets back
FORWARDED_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-encoding",
        "warning",
        "retry-after",
        "audit-id",
        "cache-control",
        "etag",
        "last-modified",
        "x-kubernetes-pf-flowschema-uid",
        "x-kubernetes-pf-prioritylevel-uid",
        "x-stream-protocol-version",
    }
)

H_KIND = "Mk-Kind"
H_STREAM = "Mk-Stream"
H_SEQ = "Mk-Seq"
H_N = "Mk-N"  # CREDIT: how many more DATA frames; BODY: 1 on the last one
H_WS = "Mk-Ws"  # WS: the WebSocket message type, "b" (binary) or "t" (text)
H_MORE = "Mk-More"  # WS: "1" when the message goes on in the next frame (a message over CHUNK_BYTES)

_STREAM_ID = re.compile(r"^[a-z0-9]{16,32}$")


class Frame(StrEnum):
    # server -> agent
    OPEN = "open"
    BODY = "body"
    CREDIT = "credit"  # (also agent -> server, for WS frames of an upgraded connection)
    CANCEL = "cancel"
    WS = "ws"  # a WebSocket message (both directions, upgraded connections only)
    # agent -> server
    ACCEPT = "accept"  # the agent took the request (sent at once, before the API server answers)
    HEAD = "head"
    DATA = "data"
    PING = "ping"
    END = "end"


class Mode(StrEnum):
    UNARY = "unary"  # get, list, create, apply, patch, delete: one answer, bounded in time
    STREAM = "stream"  # watch, logs -f: an answer that lasts
    UPGRADE = "upgrade"  # exec, attach, port-forward: a WebSocket relayed both ways


def kube_to_agent_subject(cluster_id: str) -> str:
    """Core NATS: every frame the server sends to one cluster's agent (OPEN, BODY, CREDIT, CANCEL, WS)."""
    return f"moorage.kube.{cluster_id}"


def kube_to_server_subject(cluster_id: str, stream_id: str) -> str:
    """Core NATS: the agent's frames of one stream, read by the server that opened it."""
    return f"moorage.kubeout.{cluster_id}.{stream_id}"


def valid_stream_id(stream_id: str) -> bool:
    return bool(_STREAM_ID.match(stream_id))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubeRequest(_Model):
    """OPEN: one request for the agent to make to its API server as `user` in `groups`."""

    stream_id: str = Field(min_length=16, max_length=32)
    mode: Mode
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    path: str = Field(min_length=1, max_length=MAX_PATH_CHARS)
    query: str = Field(default="", max_length=MAX_QUERY_CHARS)
    headers: list[tuple[str, str]] = Field(default_factory=list, max_length=32)
    user: str = Field(min_length=1, max_length=253)  # Impersonate-User
    groups: list[str] = Field(default_factory=list, max_length=8)  # Impersonate-Group
    body_frames: int = Field(default=0, ge=0, le=1024)  # BODY frames that follow
    timeout_seconds: float = Field(gt=0, le=24 * 3600)
    subprotocols: list[str] = Field(default_factory=list, max_length=8)  # upgraded connections

    @field_validator("path")
    @classmethod
    def _safe_path(cls, path: str) -> str:
        if problem := path_problem(path):
            raise ValueError(problem)
        return path

    @field_validator("headers")
    @classmethod
    def _forwardable(cls, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for name, value in headers:
            if name.lower() not in FORWARDED_REQUEST_HEADERS:
                raise ValueError(f"header {name!r} is not forwarded")
            if len(value) > MAX_HEADER_CHARS or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has an invalid value")
        return headers


class KubeHead(_Model):
    """HEAD: the API server's status and the headers the client gets back."""

    status: int = Field(ge=100, le=599)
    headers: list[tuple[str, str]] = Field(default_factory=list, max_length=32)
    subprotocol: str | None = Field(default=None, max_length=128)  # upgraded: what the API server chose


class KubeEnd(_Model):
    """END: the stream is over; `error` says why, when it did not end normally."""

    error: str | None = Field(default=None, max_length=4000)


def path_problem(path: str) -> str | None:
    """Why `path` cannot be sent to an API server (None: it can). Only absolute paths of the API
    server itself: no scheme or host, no dot segments, no control characters."""
    if not path.startswith("/") or path.startswith("//"):
        return "the path must start with a single /"
    if any(ord(c) < 0x20 or c in "\x7f\\?#" for c in path):
        return "the path holds a character that is not allowed"
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        return "the path must not hold . or .. segments"
    return None


# -- what a request is about, for the audit trail and the choice of limits ---------------------------


@dataclass(frozen=True)
class RequestInfo:
    verb: str  # get list watch create update patch delete deletecollection connect, or the method
    api_group: str = ""
    api_version: str = ""
    resource: str = ""  # "" for a non-resource path such as /version
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    mode: Mode = Mode.UNARY

    @property
    def resource_path(self) -> str:
        """e.g. "pods/log", "deployments.apps" — what an audit line shows."""
        res = f"{self.resource}.{self.api_group}" if self.api_group and self.resource else self.resource
        return f"{res}/{self.subresource}" if self.subresource else res


_CONNECT = frozenset({"exec", "attach", "portforward", "proxy"})


def _truthy(query: dict[str, list[str]], key: str) -> bool:
    return any(v.lower() in ("true", "1") for v in query.get(key, []))


def classify(method: str, path: str, query: str = "", *, upgrade: bool = False) -> RequestInfo:
    """The Kubernetes request info of a request (as kube-apiserver's RequestInfoFactory derives it,
    simplified): /api/v1/namespaces/ns/pods/name/log?follow=true is a `get` of `pods/log`, streamed."""
    q = parse_qs(query, keep_blank_values=True)
    method = method.upper()
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    verb_of_method = method.lower()
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(verb=verb_of_method, mode=Mode.UPGRADE if upgrade else Mode.UNARY)
    if parts[0] == "api":
        group, version, rest = "", (parts[1] if len(parts) > 1 else ""), parts[2:]
    else:
        if len(parts) < 3:  # discovery: /apis, /apis/apps
            return RequestInfo(verb=verb_of_method, api_group=parts[1] if len(parts) > 1 else "")
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return RequestInfo(verb=verb_of_method, api_group=group, api_version=version)
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    elif len(rest) == 2 and rest[0] == "namespaces":
        namespace = rest[1]  # the namespace object itself
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    watch = watch_prefix or _truthy(q, "watch")
    if subresource in _CONNECT or upgrade:
        verb = "connect" if subresource != "proxy" else "proxy"
    elif method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = verb_of_method
    if upgrade:
        mode = Mode.UPGRADE
    elif watch or (subresource == "log" and _truthy(q, "follow")):
        mode = Mode.STREAM
    else:
        mode = Mode.UNARY
    return RequestInfo(verb, group, version, resource, subresource, namespace, name, mode)


def chunks(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """`data` cut into pieces of at most `size` bytes (none for empty data)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- who the agent impersonates ------------------------------------------------------------------------

GROUP_OF_ROLE = {"read": "moorage:view", "write": "moorage:edit", "admin": "moorage:admin"}
USER_PREFIX = "moorage:"


def impersonation(kind: Literal["user", "token"], name: str, role: str) -> tuple[str, list[str]]:
    """The Kubernetes user and groups the agent acts as for a Moorage user (or API token) of `role`.
    The agent chart binds moorage:view / moorage:edit / moorage:admin to view / edit / cluster-admin."""
    group = GROUP_OF_ROLE.get(role)
    if group is None:
        raise ValueError(f"unknown role {role!r}")
    return f"{USER_PREFIX}{kind}:{name}", [group]


def status_body(code: int, message: str, reason: str) -> bytes:
    """A Kubernetes Status object, so kubectl prints `message` as it prints the API server's errors."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    ).encode()
