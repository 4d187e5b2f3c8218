"""Inventory ConfigMaps: names valid for any entry name, and a lossless encoding of what was applied."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from moorage.engine.inventory import Item, _decode, _encode, configmap_name, owner_value
from moorage.engine.objects import ObjectKey

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def assert_valid_name(name: str) -> None:
    assert len(name) <= 63, name
    assert DNS_1123_LABEL.fullmatch(name), name


@pytest.mark.parametrize(
    ("entry", "prefix"),
    [
        ("cert-manager-issuers", "inventory-cert-manager-issuers-"),
        ("Base_Config", "inventory-base-config-"),
        ("--weird--", "inventory-weird-"),
        ("über.config", "inventory-ber-config-"),
        ("日本語", "inventory--"),
        ("", "inventory--"),
        ("x" * 100, "inventory-" + "x" * 40 + "-"),
        ("a" * 39 + "-b", "inventory-" + "a" * 39 + "--"),  # cut at 40 right after a '-'
    ],
)
def test_configmap_name_examples(entry: str, prefix: str) -> None:
    name = configmap_name(entry)
    assert name.startswith(prefix)
    assert re.fullmatch(r"[0-9a-f]{8}", name[len(prefix) :])
    assert_valid_name(name)


def test_configmap_name_is_stable_across_versions() -> None:
    # a changed name would orphan every stored inventory: pin the exact values
    assert configmap_name("base") == "inventory-base-cae66217"
    assert configmap_name("Cert Manager/Issuers") == "inventory-cert-manager-issuers-a1565f58"


@given(st.text(max_size=200))
def test_configmap_name_is_always_a_valid_dns_label(entry: str) -> None:
    assert_valid_name(configmap_name(entry))


@settings(max_examples=200)
@given(st.text(max_size=60), st.text(max_size=60))
def test_distinct_entries_get_distinct_configmaps(a: str, b: str) -> None:
    assume(a != b)
    assert configmap_name(a) != configmap_name(b)


@pytest.mark.parametrize(("a", "b"), [("Base", "base"), ("a_b", "a-b"), ("a.b", "a b"), ("x" * 41, "x" * 42)])
def test_entries_with_the_same_slug_are_told_apart(a: str, b: str) -> None:
    assert configmap_name(a) != configmap_name(b)
    assert configmap_name(a)[:-9] == configmap_name(b)[:-9]


def test_owner_value() -> None:
    assert owner_value("base") == "manifest/base"


# --------------------------------------------------------------------------- encoding

items_strategy = st.lists(
    st.builds(
        Item,
        api_version=st.sampled_from(["v1", "apps/v1", "example.com/v1beta1"]),
        key=st.builds(
            ObjectKey,
            group=st.text(max_size=12),
            kind=st.text(max_size=12),
            namespace=st.text(max_size=12),
            name=st.text(max_size=20),
        ),
        uid=st.uuids().map(str),
    ),
    max_size=8,
)


@given(items_strategy)
def test_encode_decode_round_trip(items: list[Item]) -> None:
    text = _encode(items)
    assert _decode(text) == items


def test_encoding_is_compact_json() -> None:
    items = [
        Item("v1", ObjectKey("", "ConfigMap", "apps", "cfg"), "0b7c6c1e-4d1f-4a53-9a53-2f6f2f2c1a01"),
        Item(
            "rbac.authorization.k8s.io/v1",
            ObjectKey("rbac.authorization.k8s.io", "ClusterRole", "", "view"),
            "u2",
        ),
    ]
    assert _encode(items) == (
        '[["v1","","ConfigMap","apps","cfg","0b7c6c1e-4d1f-4a53-9a53-2f6f2f2c1a01"],'
        '["rbac.authorization.k8s.io/v1","rbac.authorization.k8s.io","ClusterRole","","view","u2"]]'
    )
    assert _encode([]) == "[]"
    assert _decode("[]") == []
