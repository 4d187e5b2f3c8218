"""Where a stored credential may be sent (issue 18, item 1): each credential is bound to the hosts or
URL prefixes it was made for, and the server sends it nowhere else, and never over plain HTTP except
to a loopback address when loopback is explicitly allowed (MOORAGE_EGRESS_ALLOW=loopback: the tests
and the demo).

A binding is written either as a host (`github.com`, `registry.example.com:5000`): any URL on that
host and port, or as a URL prefix (`https://charts.example.com/private`, `oci://ghcr.io/acme`): the
same scheme, host and port, and a path that starts with the prefix's path at a segment boundary.
Pure functions: no I/O."""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_BINDINGS = 32
MAX_BINDING_CHARS = 512
SCHEMES = ("https", "http", "oci", "ssh", "git")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
# user@host:path (git's scp-like form), not a URL
_SCP = re.compile(r"^(?:[^@/:\s]+@)?(\[[^\]]+\]|[^@/:\s\[\]]+):(?!//)")


class BindingError(ValueError):
    """A binding or URL that cannot be understood; the message is safe to show."""


@dataclass(frozen=True)
class Target:
    """Where a URL leads: scheme (scp-like Git URLs are `ssh`), host (lowercase), port, path."""

    scheme: str
    host: str
    port: int | None
    path: str


def _check_host(host: str, what: str) -> str:
    host = host.lower().strip("[]")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not host or len(host) > 253 or not _HOST.match(host):
        raise BindingError(f"{what}: {host!r} is not a host name or address")
    return host


def target_of(url: str) -> Target:
    """The scheme, host, port and path of a repository or registry URL (userinfo ignored)."""
    scp = _SCP.match(url)
    if scp and "://" not in url:
        host = _check_host(scp.group(1), "the URL")
        return Target("ssh", host, None, "/" + url[scp.end() :].lstrip("/"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BindingError("the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or not parts.hostname:
        raise BindingError(f"the URL must be one of {', '.join(s + '://' for s in SCHEMES)} with a host")
    return Target(scheme, _check_host(parts.hostname, "the URL"), port, parts.path or "/")


def normalize(binding: str) -> str:
    """A binding in its stored form (lowercase host, no trailing slash), or BindingError."""
    text = binding.strip()
    if not text or len(text) > MAX_BINDING_CHARS or any(c.isspace() or ord(c) < 32 for c in text):
        raise BindingError(f"host binding {binding[:80]!r} must be a host or URL prefix without spaces")
    if "://" not in text:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
        if port and not port.isdigit():
            raise BindingError(f"host binding {text!r}: the port must be a number")
        name = _check_host(host, "host binding")
        return f"{name}:{int(port)}" if port else name
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BindingError(f"host binding {text!r} must not carry a user, password, query or fragment")
    target = target_of(text)
    port = f":{target.port}" if target.port else ""
    path = target.path.rstrip("/")
    return f"{target.scheme}://{target.host}{port}{path}"


def normalize_all(bindings: list[str] | tuple[str, ...]) -> list[str]:
    if len(bindings) > MAX_BINDINGS:
        raise BindingError(f"a credential is bound to at most {MAX_BINDINGS} hosts")
    out: list[str] = []
    for b in bindings:
        n = normalize(b)
        if n not in out:
            out.append(n)
    return out


def matches(binding: str, url: str) -> bool:
    """Whether `url` is covered by the stored `binding` (see the module's docstring)."""
    try:
        target = target_of(url)
    except BindingError:
        return False
    if "://" not in binding:
        host, _, port = binding.rpartition(":") if binding.count(":") == 1 else (binding, "", "")
        return target.host == host and (not port or target.port == int(port))
    bound = target_of(binding)
    if (bound.scheme, bound.host, bound.port) != (target.scheme, target.host, target.port):
        return False
    prefix = bound.path.rstrip("/")
    return not prefix or target.path == prefix or target.path.startswith(prefix + "/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_text(target: Target) -> bool:
    """Whether the credential would cross the network unencrypted (http, git://, an OCI registry on
    loopback, which helm and Moorage speak plain HTTP to)."""
    return target.scheme in ("http", "git") or (target.scheme == "oci" and is_loopback(target.host))


def refusal(name: str, bindings: list[str], url: str, *, loopback_http: bool) -> str | None:
    """Why credential `name` must not be sent to `url`, or None when it may."""
    try:
        target = target_of(url)
    except BindingError as e:
        return f"credential {name!r} is not sent to this URL: {e}"
    if plain_text(target) and not (loopback_http and is_loopback(target.host)):
        where = "a loopback address" if is_loopback(target.host) else target.host
        extra = " unless MOORAGE_EGRESS_ALLOW includes loopback" if is_loopback(target.host) else ""
        return (
            f"credential {name!r} is not sent over plain HTTP to {where}{extra}; use an https:// (or ssh) URL"
        )
    if not any(matches(b, url) for b in bindings):
        bound = ", ".join(bindings) if bindings else "no host"
        return (
            f"credential {name!r} is bound to {bound}, not to {target.host}; an admin can add the host with "
            f"`moorage credentials allow-host {name} HOST`"
        )
    return None
