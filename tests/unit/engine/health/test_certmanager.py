"""cert-manager: Certificate, CertificateRequest, Issuer, ClusterIssuer (conditions as the
certificates-trigger, -issuing and -readiness controllers and the issuers write them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine.health.helpers import Case, D, H, P, ago, check, cond, ids, later, obj

API = "cert-manager.io/v1"


def certificate(*conds: Any, age: float = 3, **status: Any) -> dict[str, Any]:
    return obj(
        API,
        "Certificate",
        name="web-tls",
        namespace="apps",
        age=age,
        generation=1,
        spec={"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "letsencrypt"}},
        status={"conditions": list(conds), **status},
    )


SECRET_MISSING = "Issuing certificate as Secret does not exist"
CERTIFICATE: list[Case] = [
    (
        "certificate first issuance",
        certificate(
            cond("Ready", "False", "DoesNotExist", SECRET_MISSING, observedGeneration=1),
            cond("Issuing", "True", "DoesNotExist", SECRET_MISSING, observedGeneration=1),
            nextPrivateKeySecretName="web-tls-8xk2p",
        ),
        P,
        f"Issuing: {SECRET_MISSING}",
    ),
    (
        "certificate issuance too slow",
        certificate(
            cond("Ready", "False", "DoesNotExist", SECRET_MISSING, age=25),
            cond("Issuing", "True", "DoesNotExist", SECRET_MISSING, age=25),
            age=30,
        ),
        D,
        "no progress for 25m",
    ),
    (
        "certificate ready",
        certificate(
            cond("Ready", "True", "Ready", "Certificate is up to date and has not expired"),
            notAfter=later(60 * 24 * 60),
            renewalTime=later(60 * 24 * 30),
            revision=1,
        ),
        H,
        "Ready is True: Certificate is up to date and has not expired; expires in 60d, renews in 30d",
    ),
    (
        "certificate renewing",
        certificate(
            cond("Ready", "True", "Ready", "Certificate is up to date and has not expired"),
            cond(
                "Issuing", "True", "Renewing", "Renewing certificate as renewal was scheduled at 2024-05-01"
            ),
            notAfter=later(60 * 24 * 20),
        ),
        H,
        "renewing (Issuing: Renewing certificate",
    ),
    (
        "certificate request failed",
        certificate(
            cond("Ready", "False", "DoesNotExist", SECRET_MISSING),
            cond(
                "Issuing",
                "False",
                "Failed",
                "The certificate request has failed to complete and will be retried: Failed to wait for order"
                ' resource "web-tls-1-2468" to become ready: order is in "invalid" state',
            ),
            lastFailureTime=ago(20),
            failedIssuanceAttempts=2,
        ),
        D,
        "Issuing is False: Failed: The certificate request has failed to complete and will be retried",
    ),
    (
        "certificate request denied",
        certificate(
            cond("Issuing", "False", "Denied", "The CertificateRequest was denied by an approval controller")
        ),
        D,
        "Issuing is False: Denied",
    ),
    (
        "certificate before Issuing is set",
        certificate(cond("Ready", "False", "DoesNotExist", SECRET_MISSING)),
        P,
        "waiting for cert-manager to start issuing",
    ),
    (
        "certificate secret mismatch",
        certificate(cond("Ready", "False", "SecretMismatch", "Secret was issued for a different DNS name")),
        D,
        "Ready is False: SecretMismatch",
    ),
    ("certificate expired", certificate(cond("Ready", "True"), notAfter=ago(60)), D, "expired 1h ago"),
    ("certificate not seen yet", certificate(), P, "waiting for cert-manager"),
    (
        "certificate stale condition",
        obj(
            API,
            "Certificate",
            generation=2,
            age=3,
            status={"conditions": [cond("Ready", "True", observedGeneration=1)]},
        ),
        P,
        "Ready describes generation 1",
    ),
    ("certificate malformed", certificate({"type": "Issuing", "status": 1}, notAfter=42), P, "waiting"),
]


def request(*conds: Any) -> dict[str, Any]:
    return obj(API, "CertificateRequest", name="web-tls-1", age=2, status={"conditions": list(conds)})


APPROVED = cond(
    "Approved", "True", "cert-manager.io", "Certificate request has been approved by cert-manager.io"
)
REQUEST: list[Case] = [
    (
        "request issued",
        request(APPROVED, cond("Ready", "True", "Issued", "Certificate fetched from issuer successfully")),
        H,
        "Ready is True: Certificate fetched from issuer successfully",
    ),
    (
        "request pending",
        request(APPROVED, cond("Ready", "False", "Pending", "Waiting on certificate issuance from order")),
        P,
        "Ready is False: Pending: Waiting on certificate issuance from order",
    ),
    (
        "request failed",
        request(
            APPROVED, cond("Ready", "False", "Failed", "Failed to wait for order resource to become ready")
        ),
        D,
        "Ready is False: Failed",
    ),
    (
        "request denied",
        request(
            cond("Denied", "True", "policy.cert-manager.io", "No matching CertificateRequestPolicy found"),
            cond("Ready", "False", "Denied", "The CertificateRequest was denied by an approval controller"),
        ),
        D,
        "Denied: No matching CertificateRequestPolicy found (this request will never be signed)",
    ),
    (
        "request invalid",
        request(cond("InvalidRequest", "True", "RequestParsingError", "failed to decode csr")),
        D,
        "InvalidRequest: failed to decode csr",
    ),
    ("request awaiting approval", request(), P, "waiting for an approver"),
    (
        "request malformed",
        obj(API, "CertificateRequest", age=1, status={"conditions": {"Ready": True}}),
        P,
        "approver",
    ),
]


def issuer(kind: str, *conds: Any) -> dict[str, Any]:
    return obj(
        API,
        kind,
        name="letsencrypt",
        namespace=None if kind == "ClusterIssuer" else "apps",
        age=2,
        generation=1,
        spec={"acme": {"server": "https://acme-v02.api.letsencrypt.org/directory"}},
        status={"conditions": list(conds)},
    )


ISSUER: list[Case] = [
    (
        "clusterissuer ready",
        issuer(
            "ClusterIssuer",
            cond(
                "Ready",
                "True",
                "ACMEAccountRegistered",
                "The ACME account was registered with the ACME server",
            ),
        ),
        H,
        "Ready is True: The ACME account was registered",
    ),
    (
        "issuer cannot register",
        issuer(
            "Issuer",
            cond(
                "Ready",
                "False",
                "ErrRegisterACMEAccount",
                "Failed to register ACME account: 400 urn:ietf:params:acme:error:invalidContact",
            ),
        ),
        D,
        "Ready is False: ErrRegisterACMEAccount",
    ),
    ("issuer not checked yet", issuer("Issuer"), P, "waiting for cert-manager to check the issuer"),
    ("issuer unknown", issuer("Issuer", cond("Ready", "Unknown")), P, "Ready is Unknown"),
    ("issuer malformed", obj(API, "Issuer", age=1, status="ok"), P, "waiting"),
]

CASES: list[Case] = CERTIFICATE + REQUEST + ISSUER


@pytest.mark.parametrize(("name", "live", "status", "reason"), CASES, ids=ids(CASES))
def test_certmanager(name: str, live: dict[str, Any], status: Any, reason: str) -> None:
    check(live, status, reason)
