"""Kubernetes API errors as Moorage errors: each says whether retrying can help."""

from typing import Any


class KubeError(Exception):
    """An API call failed. `temporary` tells whether the same call may succeed later."""

    temporary = False

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeConfigError(KubeError):
    """The kubeconfig or in-cluster configuration is missing or unusable."""


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """A field-manager conflict on apply, or a precondition (UID, resourceVersion) that no longer holds."""


class Invalid(KubeError):
    """The object was rejected by validation or admission."""


class Forbidden(KubeError):
    pass


class Unavailable(KubeError):
    """Timeouts, 429, 5xx, connection failures: worth retrying."""

    temporary = True


class UnknownKind(KubeError):
    """No API resource serves this apiVersion/kind (CRD not installed yet, or a typo)."""

    temporary = True  # a CRD applied earlier in the same sync may not be served yet


def from_status(status: int, body: Any, what: str) -> KubeError:
    """Map an API response to an error whose message names the object and the server's reason."""
    message = body.get("message") if isinstance(body, dict) else None
    reason = body.get("reason") if isinstance(body, dict) else None
    text = f"{what}: {message or f'HTTP {status}'}"
    if status == 404:
        return NotFound(text, status=status, reason=reason)
    if status == 409:
        return Conflict(text, status=status, reason=reason)
    if status in (400, 422):
        return Invalid(text, status=status, reason=reason)
    if status in (401, 403):
        return Forbidden(text, status=status, reason=reason)
    if status == 429 or status >= 500:
        return Unavailable(text, status=status, reason=reason)
    return KubeError(text, status=status, reason=reason)
