import subprocess
from pathlib import Path

import pytest

from moorage.devcluster import pki


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.create(tmp_path_factory.mktemp("pki"))


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("who", ["apiserver", "admin", "kube-controller-manager", "kube-scheduler"])
def test_every_certificate_chains_to_the_ca(made: pki.Pki, who: str) -> None:
    out = openssl("verify", "-CAfile", str(made.ca_crt), str(made.crt(who)))
    assert out.strip().endswith(": OK")


def test_admin_is_a_cluster_admin_client(made: pki.Pki) -> None:
    text = openssl("x509", "-in", str(made.crt("admin")), "-noout", "-subject", "-ext", "extendedKeyUsage")
    assert "O = system:masters" in text
    assert "TLS Web Client Authentication" in text


def test_serving_cert_names_loopback_and_the_service(made: pki.Pki) -> None:
    text = openssl("x509", "-in", str(made.crt("apiserver")), "-noout", "-ext", "subjectAltName")
    for name in ("IP Address:127.0.0.1", "DNS:kubernetes.default.svc", "DNS:localhost"):
        assert name in text


def test_private_keys_are_owner_only(made: pki.Pki) -> None:
    keys = [made.ca_key, made.sa_key, *(made.key(w) for w in ("apiserver", "admin"))]
    assert all(k.stat().st_mode & 0o077 == 0 for k in keys)
    assert made.dir.stat().st_mode & 0o077 == 0


def test_service_account_public_key_matches_private(made: pki.Pki, tmp_path: Path) -> None:
    derived = tmp_path / "derived.pub"
    openssl("pkey", "-in", str(made.sa_key), "-pubout", "-out", str(derived))
    assert derived.read_text() == made.sa_pub.read_text()
