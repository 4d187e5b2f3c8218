"""What a chart archive (.tgz) holds for the catalog and the values check: Chart.yaml, values.yaml,
values.schema.json, README. The archive is untrusted: members are read in one streaming pass with
the total uncompressed size, the member count and each kept file bounded; links and paths outside
the chart directory are ignored."""

import io
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_UNCOMPRESSED_BYTES = 100 << 20
MAX_MEMBERS = 10_000
MAX_FILE_BYTES = 4 << 20
_KEPT = ("Chart.yaml", "values.yaml", "values.schema.json", "README.md")


class ArchiveError(ValueError):
    pass


@dataclass
class ChartFiles:
    chart: dict[str, Any] = field(default_factory=dict)  # Chart.yaml
    values_text: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    readme: str = ""

    @property
    def dependencies(self) -> list[dict[str, Any]]:
        deps = self.chart.get("dependencies")
        return (
            [
                {
                    k: d.get(k)
                    for k in ("name", "version", "repository", "condition", "alias")
                    if d.get(k) is not None
                }
                for d in deps
                if isinstance(d, dict)
            ]
            if isinstance(deps, list)
            else []
        )


def read_chart(data: bytes) -> ChartFiles:
    """The top chart's files (a subchart's under charts/ are not it). ArchiveError when unusable."""
    found: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise ArchiveError(f"the chart archive has more than {MAX_MEMBERS} files")
                total += member.size
                if total > MAX_UNCOMPRESSED_BYTES:
                    raise ArchiveError(
                        f"the chart archive unpacks to more than {MAX_UNCOMPRESSED_BYTES >> 20} MiB"
                    )
                parts = member.name.split("/")
                if not member.isfile() or len(parts) != 2 or parts[1] not in _KEPT:
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise ArchiveError(
                        f"{parts[1]} in the chart archive is larger than {MAX_FILE_BYTES >> 20} MiB"
                    )
                handle = tar.extractfile(member)
                if handle is not None:
                    found[parts[1]] = handle.read(MAX_FILE_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArchiveError(f"the chart archive cannot be read: {e}") from None
    if "Chart.yaml" not in found:
        raise ArchiveError("the chart archive has no Chart.yaml")
    files = ChartFiles()
    files.chart = _yaml_mapping(found["Chart.yaml"], "Chart.yaml")
    files.values_text = found.get("values.yaml", b"").decode(errors="replace")
    files.values = _yaml_mapping(found.get("values.yaml", b""), "values.yaml")
    files.readme = found.get("README.md", b"").decode(errors="replace")
    if "values.schema.json" in found:
        try:
            schema = json.loads(found["values.schema.json"])
        except ValueError as e:
            raise ArchiveError(f"values.schema.json of the chart is not JSON: {e}") from None
        if not isinstance(schema, dict):
            raise ArchiveError("values.schema.json of the chart is not a JSON object")
        files.schema = schema
    return files


def _yaml_mapping(data: bytes, what: str) -> dict[str, Any]:
    if not data.strip():
        return {}
    try:
        value = yaml.load(data, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        raise ArchiveError(f"{what} of the chart is not YAML") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArchiveError(f"{what} of the chart is not a mapping")
    return value
