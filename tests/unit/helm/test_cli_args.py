"""helm command-line pieces that need no helm binary: chart references and secret masking."""

from __future__ import annotations

import pytest

from moorage.helm.cli import MASK, ChartRef, redact


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        (
            "https://stefanprodan.github.io/podinfo",
            ["podinfo", "--repo", "https://stefanprodan.github.io/podinfo", "--version", "6.7.0"],
        ),
        (
            "http://charts.internal:8080/stable/",
            ["podinfo", "--repo", "http://charts.internal:8080/stable/", "--version", "6.7.0"],
        ),
        (
            "oci://ghcr.io/stefanprodan/charts",
            ["oci://ghcr.io/stefanprodan/charts/podinfo", "--version", "6.7.0"],
        ),
        (
            "oci://ghcr.io/stefanprodan/charts/",
            ["oci://ghcr.io/stefanprodan/charts/podinfo", "--version", "6.7.0"],
        ),
        (
            "oci://registry.example.com:5000/charts",
            ["oci://registry.example.com:5000/charts/podinfo", "--version", "6.7.0"],
        ),
        # names that only look local are remote
        (
            "oci://localhost.example.com/charts",
            ["oci://localhost.example.com/charts/podinfo", "--version", "6.7.0"],
        ),
        ("oci://127.0.0.1.nip.io/charts", ["oci://127.0.0.1.nip.io/charts/podinfo", "--version", "6.7.0"]),
        ("oci://10.0.0.5:5000/charts", ["oci://10.0.0.5:5000/charts/podinfo", "--version", "6.7.0"]),
    ],
)
def test_remote_chart_args(repository: str, expected: list[str]) -> None:
    assert ChartRef("podinfo", "6.7.0", repository).args() == expected


@pytest.mark.parametrize(
    ("repository", "ref"),
    [
        ("oci://127.0.0.1:5000/charts", "oci://127.0.0.1:5000/charts/podinfo"),
        ("oci://localhost:5000", "oci://localhost:5000/podinfo"),
        ("oci://localhost:5000/", "oci://localhost:5000/podinfo"),
        ("oci://localhost/charts", "oci://localhost/charts/podinfo"),
        ("oci://127.0.0.2:5000/charts", "oci://127.0.0.2:5000/charts/podinfo"),
        ("oci://[::1]:5000/charts", "oci://[::1]:5000/charts/podinfo"),
    ],
)
def test_loopback_oci_registry_uses_plain_http(repository: str, ref: str) -> None:
    assert ChartRef("podinfo", "6.7.0", repository).args() == [ref, "--version", "6.7.0", "--plain-http"]


def test_plain_http_only_for_oci() -> None:
    assert "--plain-http" not in ChartRef("podinfo", "6.7.0", "http://127.0.0.1:8879").args()


# --------------------------------------------------------------------------- redact


def test_redact_masks_every_occurrence() -> None:
    text = 'Error: secret "db" password=hunter22; retry with hunter22'
    assert redact(text, ["hunter22"]) == f'Error: secret "db" password={MASK}; retry with {MASK}'


def test_redact_masks_longest_first() -> None:
    # masking "hunter" first would leave "22" of the longer secret behind
    assert redact("a=hunter22 b=hunter", ["hunter", "hunter22"]) == f"a={MASK} b={MASK}"
    assert redact("a=hunter22 b=hunter", ["hunter22", "hunter"]) == f"a={MASK} b={MASK}"


def test_redact_overlapping_secrets_leave_no_fragment() -> None:
    out = redact("token=abcdefgh-ijkl", ["abcd", "abcdefgh-ijkl", "efgh"])
    assert out == f"token={MASK}"


@pytest.mark.parametrize("short", ["", "a", "no", "abc"])
def test_redact_ignores_values_shorter_than_four(short: str) -> None:
    text = "abc no a: replicas 1"
    assert redact(text, [short]) == text


def test_redact_four_characters_is_enough() -> None:
    assert redact("pin 1234 ok", ["1234", "ok"]) == f"pin {MASK} ok"


def test_redact_without_secrets_is_identity() -> None:
    assert redact("nothing to hide", []) == "nothing to hide"


@pytest.mark.parametrize(("server_side", "skips_client_validation"), [(True, True), (False, False)])
def test_helm_skips_its_openapi_check_only_when_the_api_server_validates(
    server_side: bool, skips_client_validation: bool
) -> None:
    import asyncio
    from collections.abc import Sequence
    from typing import Any

    from moorage.helm.cli import Helm

    seen: list[str] = []

    class Recording(Helm):
        async def run(self, args: Sequence[str], **_: Any) -> str:
            seen.extend(args)
            return ""

    chart = ChartRef("podinfo", "6.7.0", "https://stefanprodan.github.io/podinfo")
    asyncio.run(Recording(binary="helm").upgrade_install("web", "apps", chart, {}, server_side=server_side))
    assert ("--disable-openapi-validation" in seen) is skips_client_validation
    assert f"--server-side={'true' if server_side else 'false'}" in seen
