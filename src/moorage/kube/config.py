"""Connection settings from a kubeconfig file or the pod's service account.

Client keys and CA data never touch the disk: Python's ssl module only loads certificates from
files, so embedded data goes through an anonymous in-memory file (memfd) that is closed at once."""

import base64
import os
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from moorage.kube.errors import KubeConfigError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Another directory holding the same files (token, ca.crt, namespace): the in-cluster configuration of a
# process that runs outside a pod with a pod's identity (tests/integration/test_agent_chart.py).
SERVICE_ACCOUNT_DIR_ENV = "MOORAGE_SERVICE_ACCOUNT_DIR"
_MAX_KUBECONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class ClusterConfig:
    server: str
    ssl_context: ssl.SSLContext
    token: str | None
    token_file: Path | None
    namespace: str
    source: str  # the kubeconfig path or "in-cluster", for messages

    def __repr__(self) -> str:  # never show the token
        return f"ClusterConfig(server={self.server!r}, source={self.source!r})"

    def bearer(self) -> str | None:
        if self.token_file is not None:
            # projected service-account tokens rotate: read on use
            return self.token_file.read_text().strip()
        return self.token


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("moorage-kube", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _data(entry: Mapping[str, Any], key: str, base: Path, what: str) -> bytes | None:
    if entry.get(f"{key}-data"):
        try:
            return base64.b64decode(entry[f"{key}-data"], validate=True)
        except ValueError as e:
            raise KubeConfigError(f"{what}: {key}-data is not valid base64") from e
    if entry.get(key):
        path = Path(entry[key])
        path = path if path.is_absolute() else base / path
        try:
            return path.read_bytes()
        except OSError as e:
            raise KubeConfigError(f"{what}: cannot read {key} {path}: {e.strerror}") from e
    return None


def _by_name(items: Any, name: str, what: str, source: str) -> Mapping[str, Any]:
    for item in items or []:
        if isinstance(item, Mapping) and item.get("name") == name:
            body = item.get(what)
            if isinstance(body, Mapping):
                return body
    raise KubeConfigError(f"{source}: no {what} named {name!r}")


def from_kubeconfig(path: Path, context: str | None = None) -> ClusterConfig:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    if len(raw) > _MAX_KUBECONFIG_BYTES:
        raise KubeConfigError(f"kubeconfig {path} is larger than 1 MiB")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML: {e}") from None
    if not isinstance(doc, Mapping):
        raise KubeConfigError(f"kubeconfig {path} is not a mapping")
    name = context or doc.get("current-context")
    if not name:
        raise KubeConfigError(f"{source}: no current-context; pass a context name")
    ctx = _by_name(doc.get("contexts"), name, "context", source)
    cluster = _by_name(doc.get("clusters"), ctx.get("cluster", ""), "cluster", source)
    user = _by_name(doc.get("users"), ctx.get("user", ""), "user", source) if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError(
            f"{source}: user {ctx.get('user')!r} uses an exec or auth-provider plugin, which Moorage does "
            "not run; use a kubeconfig with a client certificate or a token"
        )
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise KubeConfigError(f"{source}: cluster server must be an https:// URL, got {server!r}")

    base = path.parent
    ca = _data(cluster, "certificate-authority", base, source)
    if cluster.get("insecure-skip-tls-verify"):
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    else:
        try:
            tls = ssl.create_default_context(cadata=ca.decode(errors="replace") if ca else None)
        except ssl.SSLError as e:
            raise KubeConfigError(
                f"{source}: certificate-authority is not a valid PEM certificate: {e.reason}"
            ) from None
    cert = _data(user, "client-certificate", base, source)
    key = _data(user, "client-key", base, source)
    if cert and key:
        with _memory_file(cert) as cert_file, _memory_file(key) as key_file:
            try:
                tls.load_cert_chain(cert_file, key_file)
            except ssl.SSLError as e:
                raise KubeConfigError(
                    f"{source}: client certificate and key do not load: {e.reason}"
                ) from None
    token = user.get("token")
    token_file = Path(user["tokenFile"]) if user.get("tokenFile") else None
    namespace = ctx.get("namespace") or "default"
    return ClusterConfig(server.rstrip("/"), tls, token, token_file, namespace, source)


def in_cluster() -> ClusterConfig:
    """The pod's service account: its files under SERVICE_ACCOUNT (or $MOORAGE_SERVICE_ACCOUNT_DIR) and
    the API server at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT."""
    account = Path(os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT)
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (account / "token").exists():
        raise KubeConfigError("not running in a pod (no service account); pass --kubeconfig")
    tls = ssl.create_default_context(cafile=str(account / "ca.crt"))
    namespace = (account / "namespace").read_text().strip()
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return ClusterConfig(server, tls, None, account / "token", namespace, "in-cluster")


def load(kubeconfig: Path | None = None, context: str | None = None) -> ClusterConfig:
    """The kubeconfig given, else $KUBECONFIG (first file), else in-cluster, else ~/.kube/config."""
    if kubeconfig is not None:
        return from_kubeconfig(kubeconfig, context)
    if env := os.environ.get("KUBECONFIG"):
        return from_kubeconfig(Path(env.split(os.pathsep)[0]), context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster()
    return from_kubeconfig(Path.home() / ".kube" / "config", context)
