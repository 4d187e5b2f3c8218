"""Kubeconfig loading with a throwaway PKI made by the openssl CLI (EC P-256). TLS is checked with an
in-memory handshake (ssl.MemoryBIO): no sockets, no cluster."""

from __future__ import annotations

import base64
import os
import re
import ssl
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from moorage.kube import config as kube_config
from moorage.kube.config import ClusterConfig, from_kubeconfig, in_cluster
from moorage.kube.errors import KubeConfigError

SERVER = "https://kube.test:6443"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLWZvci10ZXN0cw.c2lnbmF0dXJl"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca_cert: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    other_key: bytes  # matches no certificate
    other_ca_cert: bytes  # a CA that signed nothing here

    def path(self, name: str) -> Path:
        return self.dir / name


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(cwd: Path, name: str) -> None:
    _openssl(cwd, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name)


def _ca(cwd: Path, name: str) -> None:
    _key(cwd, f"{name}.key")
    _openssl(
        cwd, "req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", f"{name}.crt",
    )  # fmt: skip


def _leaf(cwd: Path, name: str, subject: str, extensions: str, serial: int) -> None:
    _key(cwd, f"{name}.key")
    _openssl(cwd, "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        cwd, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", str(serial), "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "/CN=kube-apiserver", "subjectAltName=DNS:kube.test\nextendedKeyUsage=serverAuth\n", 2)
    _leaf(d, "client", "/O=system:masters/CN=moorage-admin", "extendedKeyUsage=clientAuth\n", 3)
    _key(d, "other.key")

    def read(name: str) -> bytes:
        return (d / name).read_bytes()

    return Pki(
        d,
        read("ca.crt"),
        read("server.crt"),
        read("server.key"),
        read("client.crt"),
        read("client.key"),
        read("other.key"),
        read("other-ca.crt"),
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    cluster: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    *,
    context: dict[str, Any] | None = None,
    current: str | None = "dev",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev-cluster", "cluster": {"server": SERVER, **(cluster or {})}}],
        "users": [{"name": "dev-admin", "user": user or {}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-admin", **(context or {})}},
            {
                "name": "elsewhere",
                "context": {"cluster": "dev-cluster", "user": "dev-admin", "namespace": "ops"},
            },
        ],
        "preferences": {},
    }
    if current is not None:
        doc["current-context"] = current
    return doc


def write(tmp_path: Path, doc: Any, name: str = "config") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def embedded(pki: Pki) -> dict[str, Any]:
    return kubeconfig(
        {"certificate-authority-data": b64(pki.ca_cert)},
        {"client-certificate-data": b64(pki.client_cert), "client-key-data": b64(pki.client_key)},
    )


def server_context(pki: Pki, *, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.path("server.crt"), pki.path("server.key"))
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=pki.ca_cert.decode())
    return ctx


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str = "kube.test") -> dict[str, Any]:
    """A full TLS handshake over memory buffers; returns the client certificate the server saw."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    pending = {"client": True, "server": True}
    for _ in range(10):
        for name, side in (("client", c), ("server", s)):
            if pending[name]:
                try:
                    side.do_handshake()
                    pending[name] = False
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not any(pending.values()):
            break
    assert not any(pending.values()), "handshake did not finish"
    # TLS 1.3: the server checks the client certificate after the client finished; read once more
    c.write(b"ping")
    s_in.write(c_out.read())
    assert s.read(4) == b"ping"
    return s.getpeercert() or {}


def subject(cert: dict[str, Any]) -> dict[str, str]:
    return {k: v for rdn in cert.get("subject", ()) for k, v in rdn}


# --------------------------------------------------------------------------- loading


def test_embedded_cert_key_and_ca(tmp_path: Path, pki: Pki) -> None:
    cfg = from_kubeconfig(write(tmp_path, embedded(pki)))
    assert (cfg.server, cfg.namespace, cfg.token, cfg.token_file) == (SERVER, "default", None, None)
    assert cfg.source == str(tmp_path / "config")
    assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert cfg.ssl_context.check_hostname
    seen = handshake(cfg.ssl_context, server_context(pki))
    assert subject(seen) == {"organizationName": "system:masters", "commonName": "moorage-admin"}


def test_embedded_ca_is_what_verifies_the_server(tmp_path: Path, pki: Pki) -> None:
    cfg = from_kubeconfig(write(tmp_path, kubeconfig({"certificate-authority-data": b64(pki.other_ca_cert)})))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cfg.ssl_context, server_context(pki, require_client_cert=False))


def test_server_name_is_checked(tmp_path: Path, pki: Pki) -> None:
    cfg = from_kubeconfig(write(tmp_path, kubeconfig({"certificate-authority-data": b64(pki.ca_cert)})))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(cfg.ssl_context, server_context(pki, require_client_cert=False), hostname="other.test")


def test_file_paths_are_relative_to_the_kubeconfig(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "kube"
    (home / "pki").mkdir(parents=True)
    for name in ("ca.crt", "client.crt", "client.key"):
        (home / "pki" / name).write_bytes(pki.path(name).read_bytes())
    doc = kubeconfig(
        {"certificate-authority": "pki/ca.crt"},
        {"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = from_kubeconfig(write(home, doc))
    assert subject(handshake(cfg.ssl_context, server_context(pki)))["commonName"] == "moorage-admin"


def test_absolute_file_paths(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig(
        {"certificate-authority": str(pki.path("ca.crt"))},
        {"client-certificate": str(pki.path("client.crt")), "client-key": str(pki.path("client.key"))},
    )
    cfg = from_kubeconfig(write(tmp_path, doc))
    assert subject(handshake(cfg.ssl_context, server_context(pki)))["commonName"] == "moorage-admin"


def test_token(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig(
        {"certificate-authority-data": b64(pki.ca_cert), "server": SERVER + "/"}, {"token": TOKEN}
    )
    cfg = from_kubeconfig(write(tmp_path, doc))
    assert cfg.token == TOKEN
    assert cfg.bearer() == TOKEN
    assert cfg.server == SERVER  # trailing slash dropped


def test_token_file_is_read_on_use(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    cfg = from_kubeconfig(write(tmp_path, kubeconfig(user={"tokenFile": str(token_file)})))
    assert cfg.bearer() == "first"
    token_file.write_text("rotated\n")
    assert cfg.bearer() == "rotated"


def test_insecure_skip_tls_verify(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig({"insecure-skip-tls-verify": True}, {"token": TOKEN})
    cfg = from_kubeconfig(write(tmp_path, doc))
    assert cfg.ssl_context.verify_mode == ssl.CERT_NONE
    assert not cfg.ssl_context.check_hostname
    # a server whose CA nobody trusts, under another name: accepted
    handshake(cfg.ssl_context, server_context(pki, require_client_cert=False), hostname="whatever.example")


def test_context_namespace_and_explicit_context(tmp_path: Path) -> None:
    path = write(tmp_path, kubeconfig(context={"namespace": "apps"}))
    assert from_kubeconfig(path).namespace == "apps"
    assert from_kubeconfig(path, "elsewhere").namespace == "ops"


def test_context_without_user(tmp_path: Path) -> None:
    doc = kubeconfig()
    del doc["contexts"][0]["context"]["user"]
    cfg = from_kubeconfig(write(tmp_path, doc))
    assert cfg.token is None
    assert cfg.bearer() is None


def test_repr_never_shows_the_token(tmp_path: Path) -> None:
    cfg = from_kubeconfig(write(tmp_path, kubeconfig(user={"token": TOKEN})))
    text = repr(cfg)
    assert text == f"ClusterConfig(server={SERVER!r}, source={str(tmp_path / 'config')!r})"
    assert TOKEN not in text
    assert TOKEN not in str(cfg)
    assert TOKEN not in f"{[cfg]}"
    assert "c2VjcmV0" not in text


# --------------------------------------------------------------------------- no key on disk


def _fds_to_memfd() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:moorage-kube"):
            found.add(fd)
    return found


def _new_files(roots: list[Path], since: float) -> Iterator[Path]:
    """Regular files created since `since` under `roots`. Creating a file updates its directory's
    mtime, so only the files of directories changed since then need a stat."""
    seen: set[str] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root, onerror=lambda _: None):
            if folder in seen:
                dirs.clear()
                continue
            seen.add(folder)
            try:
                if os.stat(folder).st_mtime < since:
                    continue
            except OSError:
                continue
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_mtime >= since and st.st_size < 8 << 20:
                    yield Path(path)


def test_embedded_key_never_touches_the_disk(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir()
    path = write(kube_dir, embedded(pki))
    key_body = "".join(line for line in pki.client_key.decode().splitlines() if not line.startswith("-----"))
    markers = [pki.client_key, key_body.encode(), key_body[:40].encode(), base64.b64decode(key_body)]

    created: list[str] = []
    real_memfd: Callable[..., int] = os.memfd_create

    def spy(name: str, flags: int = os.MFD_CLOEXEC) -> int:
        created.append(name)
        return real_memfd(name, flags)

    monkeypatch.setattr(os, "memfd_create", spy)
    open_before = _fds_to_memfd()
    since = time.time() - 0.01
    cfg = from_kubeconfig(path)

    assert created == ["moorage-kube", "moorage-kube"]  # the certificate and the key went to memory files
    assert _fds_to_memfd() == open_before, "memory file descriptors were left open"
    roots = [tmp_path, Path(tempfile.gettempdir()), Path("/tmp")]
    leaked = [p for p in _new_files(roots, since) if p != path and any(m in p.read_bytes() for m in markers)]
    assert leaked == []
    assert subject(handshake(cfg.ssl_context, server_context(pki)))["commonName"] == "moorage-admin"


# --------------------------------------------------------------------------- errors


def expect_error(path: Path, pattern: str, context: str | None = None) -> KubeConfigError:
    with pytest.raises(KubeConfigError, match=pattern) as info:
        from_kubeconfig(path, context)
    assert not info.value.temporary
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config"
    expect_error(missing, rf"^cannot read kubeconfig {re.escape(str(missing))}: No such file or directory$")


@pytest.mark.parametrize("text", ["clusters: [unclosed\n", "a: b: c\n", "\t- tab\n"])
def test_not_yaml(tmp_path: Path, text: str) -> None:
    expect_error(write(tmp_path, text), r"is not valid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    expect_error(write(tmp_path, text), r"is not a mapping$")


def test_no_current_context(tmp_path: Path) -> None:
    expect_error(write(tmp_path, kubeconfig(current=None)), r": no current-context; pass a context name$")


def test_unknown_context(tmp_path: Path) -> None:
    expect_error(write(tmp_path, kubeconfig(current="prod")), r": no context named 'prod'$")
    expect_error(write(tmp_path, kubeconfig()), r": no context named 'staging'$", context="staging")


def test_unknown_cluster(tmp_path: Path) -> None:
    expect_error(write(tmp_path, kubeconfig(context={"cluster": "gone"})), r": no cluster named 'gone'$")


def test_unknown_user(tmp_path: Path) -> None:
    expect_error(write(tmp_path, kubeconfig(context={"user": "ghost"})), r": no user named 'ghost'$")


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": ["eks"]}},
        {"auth-provider": {"name": "gcp", "config": {}}},
    ],
    ids=["exec", "auth-provider"],
)
def test_plugins_are_refused(tmp_path: Path, user: dict[str, Any]) -> None:
    error = expect_error(
        write(tmp_path, kubeconfig(user=user)), r"user 'dev-admin' uses an exec or auth-provider"
    )
    assert "does not run" in str(error)


@pytest.mark.parametrize("server", ["http://kube.test:8080", "kube.test:6443", None, 6443])
def test_non_https_server_is_refused(tmp_path: Path, server: Any) -> None:
    doc = kubeconfig({"server": server})
    expect_error(
        write(tmp_path, doc), rf"cluster server must be an https:// URL, got {re.escape(repr(server))}$"
    )


@pytest.mark.parametrize(
    ("cluster", "user", "field"),
    [
        ({"certificate-authority-data": "not base64!"}, {}, "certificate-authority-data"),
        ({}, {"client-certificate-data": "%%%", "client-key-data": "QUJD"}, "client-certificate-data"),
        ({}, {"client-certificate-data": "QUJD", "client-key-data": "QUJ"}, "client-key-data"),
    ],
)
def test_invalid_base64(tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], field: str) -> None:
    expect_error(write(tmp_path, kubeconfig(cluster, user)), rf": {field} is not valid base64$")


def test_missing_referenced_file(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig(user={"client-certificate": str(pki.path("client.crt")), "client-key": "missing.key"})
    expect_error(
        write(tmp_path, doc),
        rf": cannot read client-key {re.escape(str(tmp_path / 'missing.key'))}: No such file or directory$",
    )


def test_key_and_certificate_that_do_not_match(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig(
        user={"client-certificate-data": b64(pki.client_cert), "client-key-data": b64(pki.other_key)}
    )
    error = expect_error(write(tmp_path, doc), r": client certificate and key do not load: ")
    assert "KEY_VALUES_MISMATCH" in str(error)
    assert pki.other_key.decode().splitlines()[1] not in str(error)


def test_garbage_certificate(tmp_path: Path, pki: Pki) -> None:
    doc = kubeconfig(
        user={"client-certificate-data": b64(b"not a pem"), "client-key-data": b64(pki.client_key)}
    )
    expect_error(write(tmp_path, doc), r": client certificate and key do not load: ")


def test_file_over_one_mib(tmp_path: Path) -> None:
    text = yaml.safe_dump(kubeconfig()) + "#" + "x" * (1 << 20) + "\n"
    expect_error(write(tmp_path, text), r"is larger than 1 MiB$")


def test_file_of_exactly_one_mib_is_read(tmp_path: Path) -> None:
    text = yaml.safe_dump(kubeconfig()) + "#"
    text += "x" * ((1 << 20) - len(text) - 1) + "\n"
    assert len(text.encode()) == 1 << 20
    assert from_kubeconfig(write(tmp_path, text)).server == SERVER


def test_ca_data_that_is_not_a_certificate(tmp_path: Path) -> None:
    doc = kubeconfig({"certificate-authority-data": b64(b"-----BEGIN NOTHING-----\n")})
    expect_error(write(tmp_path, doc), r"certificate-authority")


def test_cluster_config_is_frozen(tmp_path: Path) -> None:
    cfg: ClusterConfig = from_kubeconfig(write(tmp_path, kubeconfig()))
    with pytest.raises(AttributeError):
        cfg.token = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- in-cluster


def service_account(root: Path, pki: Pki, token: str = TOKEN, namespace: str = "moorage") -> Path:
    """A directory laid out like a pod's /var/run/secrets/kubernetes.io/serviceaccount."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "token").write_text(token)
    (root / "ca.crt").write_bytes(pki.ca_cert)
    (root / "namespace").write_text(namespace + "\n")
    return root


@pytest.fixture
def pod_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The environment of a pod: the API server's address, no kubeconfig, and nothing at the fixed
    service-account path (so a test sees only the directory it names)."""
    monkeypatch.setattr(kube_config, "SERVICE_ACCOUNT", tmp_path / "no-such-service-account")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv(kube_config.SERVICE_ACCOUNT_DIR_ENV, raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "kube.test")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    return monkeypatch


def test_in_cluster_from_the_service_account_dir_named_by_the_environment(
    tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch
) -> None:
    account = service_account(tmp_path / "sa", pki)
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(account))
    cfg = in_cluster()
    assert (cfg.server, cfg.namespace, cfg.source, cfg.token) == (SERVER, "moorage", "in-cluster", None)
    assert cfg.token_file == account / "token"
    assert cfg.bearer() == TOKEN
    (account / "token").write_text("rotated")  # projected tokens rotate: read on use
    assert cfg.bearer() == "rotated"
    # the CA of that directory verifies the server, under the server's name
    handshake(cfg.ssl_context, server_context(pki, require_client_cert=False))
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(cfg.ssl_context, server_context(pki, require_client_cert=False), hostname="other.test")


def test_in_cluster_ca_is_the_only_trust(tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch) -> None:
    account = service_account(tmp_path / "sa", pki)
    (account / "ca.crt").write_bytes(pki.other_ca_cert)
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(account))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(in_cluster().ssl_context, server_context(pki, require_client_cert=False))


def test_in_cluster_fixed_path_without_the_override(
    tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch
) -> None:
    account = service_account(tmp_path / "fixed", pki, namespace="kube-system")
    pod_env.setattr(kube_config, "SERVICE_ACCOUNT", account)
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", "")  # empty counts as unset
    cfg = in_cluster()
    assert (cfg.token_file, cfg.namespace) == (account / "token", "kube-system")


def test_in_cluster_ipv6_host(tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch) -> None:
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(service_account(tmp_path / "sa", pki)))
    pod_env.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert in_cluster().server == "https://[fd00::1]:6443"


def test_load_chooses_in_cluster_when_the_service_host_is_set(
    tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch
) -> None:
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(service_account(tmp_path / "sa", pki)))
    assert kube_config.load().source == "in-cluster"
    # a kubeconfig, given or in $KUBECONFIG, still wins
    path = write(tmp_path, kubeconfig(user={"token": TOKEN}))
    assert kube_config.load(path).source == str(path)
    pod_env.setenv("KUBECONFIG", str(path))
    assert kube_config.load().source == str(path)


@pytest.mark.parametrize("missing", ["dir", "token", "host", "port"])
def test_not_in_a_pod(tmp_path: Path, pki: Pki, pod_env: pytest.MonkeyPatch, missing: str) -> None:
    account = service_account(tmp_path / "sa", pki)
    pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(account))
    if missing == "dir":
        pod_env.setenv("MOORAGE_SERVICE_ACCOUNT_DIR", str(tmp_path / "elsewhere"))
    elif missing == "token":
        (account / "token").unlink()
    else:
        pod_env.delenv(f"KUBERNETES_SERVICE_{missing.upper()}")
    with pytest.raises(KubeConfigError, match="not running in a pod"):
        in_cluster()
