"""Add-on values against the chart's values.schema.json: file, line and field path of each violation,
the chart's defaults merged first (as helm does), encrypted values left to the agent."""

import json
from pathlib import Path
from typing import Any

from moorage.charts.schemacheck import addon_location
from moorage.spec.chartschema import check_values, merged
from moorage.spec.content import ResolvedAddon
from moorage.spec.loader import LoadOptions, load

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "charts/strict/values.schema.json").read_text()
)
DEFAULTS = {"replicas": 1, "logLevel": "info"}

ROOT = """apiVersion: v1
kind: ImportCluster
metadata:
  name: c
spec:
  stacks:
    - name: s
      addons:
        - name: inline
          chart_name: strict
          chart_version: "1.0.0"
          registry_url: https://charts.example.com
          namespace: a
          configuration:
            values:
              replicas: 0
              logLevel: info
        - name: from-file
          chart_name: strict
          chart_version: "1.0.0"
          registry_url: https://charts.example.com
          namespace: b
          configuration:
            from_file: values/b.yaml
        - name: fine
          chart_name: strict
          chart_version: "1.0.0"
          registry_url: https://charts.example.com
          namespace: c
          configuration:
            values: "replicas: 3\\n"
"""
VALUES_B = """# b's values
replicas: 2
logLevel: loud
colour: blue
"""


def resolved(tmp_path: Path) -> dict[str, ResolvedAddon]:
    (tmp_path / "values").mkdir()
    (tmp_path / "values/b.yaml").write_text(VALUES_B)
    (tmp_path / "import-cluster.yaml").write_text(ROOT)
    result = load(tmp_path / "import-cluster.yaml", LoadOptions(decrypt=False), repo_root=tmp_path)
    assert result.resolved is not None, result.report.to_text()
    assert result.ok, result.report.to_text()
    return result.resolved.addons


def check(addon: ResolvedAddon) -> list[Any]:
    return check_values(
        addon, SCHEMA, DEFAULTS, addon.value_locations or (lambda _p: None), addon_location(addon)
    )


def test_each_violation_names_file_line_and_field(tmp_path: Path) -> None:
    addons = resolved(tmp_path)
    (inline,) = check(addons["inline"])
    assert inline.location is not None
    assert (inline.location.file, inline.location.line) == ("import-cluster.yaml", 16)
    assert inline.path == "addons[inline].values.replicas"
    assert "minimum of 1" in inline.message
    assert "chart strict 1.0.0" in inline.message

    by_path = {i.path: i for i in check(addons["from-file"])}
    assert set(by_path) == {"addons[from-file].values.logLevel", "addons[from-file].values.colour"}
    level = by_path["addons[from-file].values.logLevel"]
    assert level.location is not None
    assert (level.location.file, level.location.line) == ("values/b.yaml", 3)
    assert "'loud' is not one of" in level.message
    colour = by_path["addons[from-file].values.colour"]
    assert colour.location is not None
    assert (colour.location.file, colour.location.line) == ("values/b.yaml", 4)
    assert check(addons["fine"]) == []  # logLevel comes from the chart's defaults


def test_a_required_value_missing_from_values_and_defaults_points_at_the_values(tmp_path: Path) -> None:
    addon = resolved(tmp_path)["fine"]
    (issue,) = check_values(
        addon, SCHEMA, {}, addon.value_locations or (lambda _p: None), addon_location(addon)
    )
    assert issue.path == "addons[fine].values.logLevel"
    assert "'logLevel' is a required property" in issue.message
    assert issue.location is not None
    assert (issue.location.file, issue.location.line) == ("import-cluster.yaml", 32)  # where to add it


def test_merge_follows_helm() -> None:
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}, "d": None}) == {"a": {"b": 5, "c": 2}}


def test_an_encrypted_value_is_not_judged_and_a_bad_schema_is_a_warning(tmp_path: Path) -> None:
    addon = resolved(tmp_path)["inline"]
    addon.values.reveal()["replicas"] = "ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:int]"
    assert check(addon) == []
    (warning,) = check_values(addon, {"type": "nonsense"}, {}, lambda _p: None, None)
    assert warning.severity.value == "warning"
    assert "not a valid JSON schema" in warning.message
