"""The agent's raw requests for the kubectl proxy: always as the impersonated user with the agent's
own credential, never a client's Authorization or Impersonate-* header, and no query string in logs."""

import logging
import ssl

import pytest

from moorage.kube.config import ClusterConfig
from moorage.kube.errors import Forbidden
from moorage.kube.passthrough import Passthrough


def _api() -> Passthrough:
    config = ClusterConfig(
        server="https://127.0.0.1:6443",
        ssl_context=ssl.create_default_context(),
        token="agent-credential",
        token_file=None,
        namespace="default",
        source="test",
    )
    return Passthrough(config)


def test_impersonation_replaces_whatever_the_client_sent() -> None:
    headers = _api()._headers(
        [
            ("Accept", "application/json"),
            ("Authorization", "Bearer someone-elses"),
            ("Impersonate-User", "system:admin"),
            ("impersonate-group", "system:masters"),
        ],
        "moorage:user:alice",
        ["moorage:view"],
    )
    assert headers == [
        ("Accept", "application/json"),
        ("Authorization", "Bearer agent-credential"),
        ("Impersonate-User", "moorage:user:alice"),
        ("Impersonate-Group", "moorage:view"),
    ]


def test_a_request_without_a_user_to_impersonate_is_refused() -> None:
    with pytest.raises(Forbidden, match="no user to impersonate"):
        _api()._headers([], "", ["moorage:admin"])


def test_query_strings_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    _api()
    with caplog.at_level(logging.INFO, logger="httpx2"):
        logging.getLogger("httpx2").info(
            'HTTP Request: %s %s "%s %d %s"',
            "GET",
            "https://x/api/v1/pods?token=secret",
            "HTTP/1.1",
            200,
            "OK",
        )
    assert "secret" not in caplog.text
    assert "https://x/api/v1/pods?…" in caplog.text
