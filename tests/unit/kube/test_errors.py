"""API responses mapped to Moorage errors: the class says whether a retry can help, the message names
the object and carries the server's own message."""

from __future__ import annotations

from typing import Any

import pytest

from moorage.kube import errors
from moorage.kube.errors import from_status

WHAT = "apply Deployment apps/web"


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status as the API server returns it."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@pytest.mark.parametrize(
    ("code", "reason", "message", "cls", "temporary"),
    [
        (404, "NotFound", 'deployments.apps "web" not found', errors.NotFound, False),
        (
            409,
            "Conflict",
            'Apply failed with 1 conflict: conflict with "kubectl-edit"',
            errors.Conflict,
            False,
        ),
        (409, "AlreadyExists", 'deployments.apps "web" already exists', errors.Conflict, False),
        (400, "BadRequest", "the server rejected our request", errors.Invalid, False),
        (
            422,
            "Invalid",
            'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1',
            errors.Invalid,
            False,
        ),
        (401, "Unauthorized", "Unauthorized", errors.Forbidden, False),
        (
            403,
            "Forbidden",
            'deployments.apps "web" is forbidden: User "ci" cannot patch',
            errors.Forbidden,
            False,
        ),
        (429, "TooManyRequests", "Too many requests, please try again later.", errors.Unavailable, True),
        (
            500,
            "InternalError",
            "Internal error occurred: etcdserver: leader changed",
            errors.Unavailable,
            True,
        ),
        (
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            errors.Unavailable,
            True,
        ),
        (504, "Timeout", "Timeout: request did not complete within 60s", errors.Unavailable, True),
        (405, "MethodNotAllowed", "the server does not allow this method", errors.KubeError, False),
        (410, "Expired", "too old resource version: 1 (48213)", errors.KubeError, False),
        (
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format",
            errors.KubeError,
            False,
        ),
    ],
)
def test_from_status(
    code: int, reason: str, message: str, cls: type[errors.KubeError], temporary: bool
) -> None:
    error = from_status(code, status_body(code, reason, message), WHAT)
    assert type(error) is cls
    assert error.temporary is temporary
    assert str(error) == f"{WHAT}: {message}"
    assert (error.status, error.reason) == (code, reason)


@pytest.mark.parametrize("body", [None, "<html>502 Bad Gateway</html>", b"oops", [], {"kind": "Status"}])
def test_from_status_without_a_status_body(body: Any) -> None:
    error = from_status(502, body, "list Secret")
    assert type(error) is errors.Unavailable
    assert error.temporary
    assert str(error) == "list Secret: HTTP 502"
    assert error.reason is None


def test_empty_message_falls_back_to_the_code() -> None:
    error = from_status(404, {"message": "", "reason": "NotFound"}, "get ConfigMap apps/cfg")
    assert str(error) == "get ConfigMap apps/cfg: HTTP 404"
    assert error.reason == "NotFound"


def test_all_errors_are_kube_errors() -> None:
    for code in (400, 401, 403, 404, 409, 418, 422, 429, 500, 503):
        assert isinstance(from_status(code, None, WHAT), errors.KubeError)
    assert errors.UnknownKind("x").temporary
    assert not errors.KubeConfigError("x").temporary
