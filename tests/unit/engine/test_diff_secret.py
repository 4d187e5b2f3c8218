"""Secret values never reach a drift result; stringData compares against live base64 data."""

from __future__ import annotations

import json

import pytest

from moorage.engine.diff import SECRET_PLACEHOLDER, ResourceDrift, diff_resource
from tests.unit.engine.test_diff_fixtures import (
    OTHER_PLAINTEXT,
    OTHER_PLAINTEXT_B64,
    SECRET_PLAINTEXT,
    SECRET_PLAINTEXT_B64,
    desired_secret,
    live_secret,
)


def assert_no_leak(drift: ResourceDrift) -> None:
    rendered = repr(drift) + str(drift) + json.dumps(drift.to_dict()) + repr(drift.changes)
    for secret in (SECRET_PLAINTEXT, SECRET_PLAINTEXT_B64, OTHER_PLAINTEXT, OTHER_PLAINTEXT_B64):
        assert secret not in rendered


def test_string_data_equal_to_live_base64_data_is_not_drift() -> None:
    desired = desired_secret(password=SECRET_PLAINTEXT)
    assert diff_resource(desired, live_secret({"password": SECRET_PLAINTEXT_B64})) is None


def test_data_with_wrapped_base64_is_not_drift() -> None:
    desired = {
        **desired_secret(),
        "data": {"password": SECRET_PLAINTEXT_B64[:10] + "\n" + SECRET_PLAINTEXT_B64[10:]},
    }
    assert diff_resource(desired, live_secret({"password": SECRET_PLAINTEXT_B64})) is None


def test_string_data_wins_over_data_like_the_api_server() -> None:
    desired = desired_secret(password=SECRET_PLAINTEXT)
    desired["data"] = {"password": OTHER_PLAINTEXT_B64}
    assert diff_resource(desired, live_secret({"password": SECRET_PLAINTEXT_B64})) is None


@pytest.mark.parametrize(
    ("desired_data", "live_data", "expected"),
    [
        pytest.param(
            {"password": SECRET_PLAINTEXT},
            {"password": OTHER_PLAINTEXT_B64},
            [("data.password", SECRET_PLACEHOLDER, SECRET_PLACEHOLDER)],
            id="changed",
        ),
        pytest.param(
            {"password": SECRET_PLAINTEXT},
            {},
            [("data.password", SECRET_PLACEHOLDER, None)],
            id="removed-live",
        ),
        pytest.param(
            {"password": SECRET_PLAINTEXT},
            None,
            [("data", SECRET_PLACEHOLDER, None)],
            id="whole-data-map-missing",
        ),
    ],
)
def test_secret_changes_are_masked(
    desired_data: dict[str, str], live_data: dict[str, str] | None, expected: list[tuple[str, str, str]]
) -> None:
    live = live_secret(live_data or {})
    if live_data is None:
        del live["data"]
    drift = diff_resource(desired_secret(**desired_data), live)
    assert drift is not None
    assert [(c.path, c.desired, c.live) for c in drift.changes] == expected
    assert_no_leak(drift)


def test_foreign_key_added_to_a_secret_is_masked() -> None:
    live = live_secret({"password": SECRET_PLAINTEXT_B64, "extra": OTHER_PLAINTEXT_B64})
    live["metadata"]["managedFields"] = [
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:extra": {}}},
        }
    ]
    drift = diff_resource(desired_secret(password=SECRET_PLAINTEXT), live)
    assert drift is not None
    assert drift.paths == ("data.extra",)
    assert drift.changes[0].live == SECRET_PLACEHOLDER
    assert_no_leak(drift)


def test_non_secret_fields_of_a_secret_are_shown() -> None:
    live = live_secret({"password": SECRET_PLAINTEXT_B64})
    live["type"] = "kubernetes.io/basic-auth"
    drift = diff_resource(desired_secret(password=SECRET_PLAINTEXT), live)
    assert drift is not None
    assert [(c.path, c.desired, c.live) for c in drift.changes] == [
        ("type", "Opaque", "kubernetes.io/basic-auth")
    ]
