"""cert-manager.io: Certificate, CertificateRequest, Issuer, ClusterIssuer.

Certificate (conditions ``Ready`` and ``Issuing``; ``status.lastFailureTime``,
``failedIssuanceAttempts``, ``notAfter``, ``renewalTime``):

* ``Issuing=True`` is an issuance in flight — the first one (Secret missing) or a renewal. With
  ``Ready`` not ``True`` it is Progressing (Degraded after ``progress_deadline``, counted from the
  ``Issuing`` transition), not Degraded: ``Ready=False/DoesNotExist`` is what every new
  Certificate says until its first certificate is stored. With ``Ready=True`` (a renewal) the
  current certificate still serves: Healthy, and the reason says it is renewing.
* ``Issuing=False`` with a reason (``Failed``, ``Denied``, …) is the last request failing; cert-manager
  retries with a back-off (an hour after ``lastFailureTime`` at first) → Degraded with the message.
* ``Ready=False`` with a reason, not issuing → Degraded (``Expired``, ``SecretMismatch``,
  ``IncorrectIssuer``, …), except ``DoesNotExist`` (a new Certificate before ``Issuing`` is set)
  → Progressing. ``Ready=True`` → Healthy with the expiry; ``notAfter`` in the past →
  Degraded even if the condition was not updated yet.

CertificateRequest (``Ready``, ``Approved``, ``Denied``, ``InvalidRequest``): ``Denied=True`` or
``InvalidRequest=True`` → Degraded (the request will never be signed); ``Ready=True`` → Healthy;
``Ready=False`` ``Failed``/``Denied`` → Degraded; ``Pending`` → Progressing; no ``Approved`` yet →
Progressing (waiting for an approver).

Issuer, ClusterIssuer (``Ready``): ``True`` → Healthy, ``False`` → Degraded with the reason
(``ErrRegisterACMEAccount``, ``ErrInitIssuer``, a missing Secret, …), otherwise Progressing.

Conditions carry ``observedGeneration``; one older than ``metadata.generation`` is stale → Progressing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moorage.engine.health.kstatus import Rules, deadline, good, stale_condition, state, stated
from moorage.engine.health.types import (
    Context,
    Health,
    HealthStatus,
    conditions,
    find,
    human_duration,
    integer,
    parse_time,
    section,
)


def certificate(obj: Mapping[str, Any], ctx: Context) -> Health:
    status = section(obj, "status")
    conds = conditions(obj)
    ready, issuing = find(conds, "Ready"), find(conds, "Issuing")
    stale = stale_condition(obj, ready) or stale_condition(obj, issuing)
    if stale is not None:
        return deadline(stale, obj, ctx, conds=conds)
    if issuing is not None and issuing.true:
        if ready is not None and ready.true:
            return Health(HealthStatus.HEALTHY, f"{good(ready)}; renewing ({stated(issuing)})")
        return deadline(Health(HealthStatus.PROGRESSING, stated(issuing)), obj, ctx, cond=issuing)
    if issuing is not None and issuing.false and issuing.reason:
        attempts = integer(status.get("failedIssuanceAttempts"))
        tried = f" after {attempts} failed attempts" if attempts > 1 else ""
        failed_at = parse_time(status.get("lastFailureTime"))
        when = f"; last failure {human_duration(ctx.now - failed_at)} ago" if failed_at is not None else ""
        return Health(
            HealthStatus.DEGRADED,
            f"{state(issuing)}{tried}{when} (cert-manager retries with a back-off; the CertificateRequest,"
            " Order and Challenge say why)",
        )
    not_after = parse_time(status.get("notAfter"))
    if not_after is not None and not_after <= ctx.now:
        return Health(
            HealthStatus.DEGRADED,
            f"the certificate expired {human_duration(ctx.now - not_after)} ago (status.notAfter)",
        )
    if ready is None:
        return deadline(
            Health(HealthStatus.PROGRESSING, "waiting for cert-manager to report the Ready condition"),
            obj,
            ctx,
        )
    if ready.true:
        renews = parse_time(status.get("renewalTime"))
        expiry = f"; expires in {human_duration(not_after - ctx.now)}" if not_after is not None else ""
        renewal = f", renews in {human_duration(renews - ctx.now)}" if renews is not None else ""
        return Health(HealthStatus.HEALTHY, f"{good(ready)}{expiry}{renewal}")
    if ready.false and ready.reason == "DoesNotExist":
        # A new Certificate, the instant before the trigger controller sets Issuing.
        return deadline(
            Health(HealthStatus.PROGRESSING, f"{state(ready)} (waiting for cert-manager to start issuing)"),
            obj,
            ctx,
            cond=ready,
        )
    if ready.false and ready.reason:
        return Health(HealthStatus.DEGRADED, state(ready))
    return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, cond=ready)


def certificate_request(obj: Mapping[str, Any], ctx: Context) -> Health:
    conds = conditions(obj)
    for type_ in ("Denied", "InvalidRequest"):
        cond = find(conds, type_)
        if cond is not None and cond.true:
            return Health(HealthStatus.DEGRADED, f"{stated(cond)} (this request will never be signed)")
    ready, approved = find(conds, "Ready"), find(conds, "Approved")
    if ready is not None and ready.true:
        return Health(HealthStatus.HEALTHY, good(ready))
    if ready is not None and ready.false and ready.reason in ("Failed", "Denied"):
        return Health(HealthStatus.DEGRADED, state(ready))
    if approved is None or not approved.true:
        return deadline(
            Health(
                HealthStatus.PROGRESSING, "waiting for an approver to approve the request (Approved is unset)"
            ),
            obj,
            ctx,
            conds=conds,
        )
    if ready is None:
        return deadline(
            Health(HealthStatus.PROGRESSING, "approved; waiting for the issuer to sign it"),
            obj,
            ctx,
            conds=conds,
        )
    return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, cond=ready)


def issuer(obj: Mapping[str, Any], ctx: Context) -> Health:
    ready = find(conditions(obj), "Ready")
    stale = stale_condition(obj, ready)
    if stale is not None:
        return deadline(stale, obj, ctx)
    if ready is None:
        return deadline(
            Health(
                HealthStatus.PROGRESSING, "waiting for cert-manager to check the issuer (no Ready condition)"
            ),
            obj,
            ctx,
        )
    if ready.true:
        return Health(HealthStatus.HEALTHY, good(ready))
    if ready.false:
        return Health(HealthStatus.DEGRADED, state(ready))
    return deadline(Health(HealthStatus.PROGRESSING, state(ready)), obj, ctx, cond=ready)


GROUP = "cert-manager.io"
RULES: Rules = {
    (GROUP, "Certificate"): certificate,
    (GROUP, "CertificateRequest"): certificate_request,
    (GROUP, "Issuer"): issuer,
    (GROUP, "ClusterIssuer"): issuer,
}
