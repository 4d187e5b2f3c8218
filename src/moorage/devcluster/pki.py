"""Throwaway certificates for one devcluster, made with the openssl CLI (present on every Debian).

EC P-256 keys: a cluster needs six key pairs and RSA generation would dominate `up` time."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from moorage.devcluster.errors import DevclusterError

_DAYS = "3650"


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def crt(self, who: str) -> Path:
        return self.dir / f"{who}.crt"

    def key(self, who: str) -> Path:
        return self.dir / f"{who}.key"


# identity -> (subject, extended key usage, subjectAltName or None)
_CERTS: dict[str, tuple[str, str, str | None]] = {
    "apiserver": (
        "/CN=kube-apiserver",
        "serverAuth",
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1",
    ),
    "admin": ("/O=system:masters/CN=moorage-admin", "clientAuth", None),
    "kube-controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
    "kube-scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
    # kwok's kubelet-like server (pod logs), reached by the API server on loopback
    "kwok": ("/CN=kwok", "serverAuth", "DNS:localhost,IP:127.0.0.1"),
}


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevclusterError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def create(pki_dir: Path) -> Pki:
    """A CA, the apiserver's serving cert, client certs per component and the service-account key."""
    pki = Pki(pki_dir)
    pki_dir.mkdir(parents=True, exist_ok=True)
    pki_dir.chmod(0o700)

    _new_key(pki.ca_key)
    ca_ext = pki_dir / "ca.ext"
    ca_ext.write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
        "subjectKeyIdentifier=hash\n"
    )
    ca_csr = pki_dir / "ca.csr"
    _openssl(
        "req", "-new", "-key", str(pki.ca_key), "-subj", "/CN=moorage-devcluster-ca", "-out", str(ca_csr)
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(ca_csr),
        "-signkey",
        str(pki.ca_key),
        "-days",
        _DAYS,
        "-extfile",
        str(ca_ext),
        "-out",
        str(pki.ca_crt),
    )

    for who, (subject, usage, san) in _CERTS.items():
        _new_key(pki.key(who))
        csr = pki_dir / f"{who}.csr"
        ext = pki_dir / f"{who}.ext"
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={usage}",
        ]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl("req", "-new", "-key", str(pki.key(who)), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(pki.ca_crt),
            "-CAkey",
            str(pki.ca_key),
            "-CAcreateserial",
            "-days",
            _DAYS,
            "-extfile",
            str(ext),
            "-out",
            str(pki.crt(who)),
        )

    _new_key(pki.sa_key)
    _openssl("pkey", "-in", str(pki.sa_key), "-pubout", "-out", str(pki.sa_pub))
    return pki
