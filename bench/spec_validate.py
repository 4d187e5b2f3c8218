"""Validation speed of a large definition: 200 stacks, 2,000 entries, spread over 200 include files,
with variables, parents and 5 deploy waves.

    .venv/bin/python bench/spec_validate.py [--runs 5] [--stacks 200] [--per-stack 10]

Prints one JSON object with each run's seconds and their median (target: 1 s or less)."""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from moorage.spec.loader import LoadOptions, load


def write_repo(root: Path, stacks: int, per_stack: int) -> None:
    (root / "stacks").mkdir()
    lines = [
        "apiVersion: v1",
        "kind: ImportCluster",
        "metadata:",
        "  name: bench",
        "spec:",
        "  helm_registries:",
        "    - name: local",
        "      url: http://127.0.0.1:8879",
        "  variables:",
        "    ENVIRONMENT: bench",
        "  stacks:",
    ]
    for s in range(stacks):
        lines += [
            f"    - name: stack-{s}",
            f"      deploy_wave: {s % 5 + 1}",
            "      variables:",
            f"        TEAM: team-{s}",
            "      manifests:",
            f"        - include: stacks/stack-{s}-manifests.yaml",
            "      addons:",
            f"        - include: stacks/stack-{s}-addons.yaml",
        ]
        manifests = per_stack // 2
        entries = []
        for m in range(manifests):
            entries += [
                f"- name: s{s}-m{m}",
                "  manifest: |",
                "    apiVersion: v1",
                "    kind: ConfigMap",
                "    metadata:",
                f"      name: s{s}-m{m}",
                "      namespace: apps",
                "    data:",
                "      team: ${{ ankra.TEAM }}",
            ]
            if m:
                entries += ["  parents:", f"    - manifest: s{s}-m{m - 1}"]
        (root / "stacks" / f"stack-{s}-manifests.yaml").write_text("\n".join(entries) + "\n")
        entries = []
        for a in range(per_stack - manifests):
            entries += [
                f"- name: s{s}-a{a}",
                "  chart_name: webapp",
                '  chart_version: "1.0.0"',
                "  registry_name: local",
                "  namespace: apps",
                "  parents:",
                f"    - manifest: s{s}-m0",
                "  configuration:",
                "    values:",
                "      replicaCount: 2",
                "      greeting: ${{ ankra.ENVIRONMENT }}",
                "  settings:",
                "    sync_policy: {self_heal: true, auto_prune: true}",
            ]
        (root / "stacks" / f"stack-{s}-addons.yaml").write_text("\n".join(entries) + "\n")
    (root / "import-cluster.yaml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stacks", type=int, default=200)
    parser.add_argument("--per-stack", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moorage-bench-spec-") as tmp:
        root = Path(tmp)
        write_repo(root, args.stacks, args.per_stack)
        seconds = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = load(root / "import-cluster.yaml", LoadOptions(decrypt=False))
            seconds.append(round(time.perf_counter() - started, 3))
            if not result.report.ok:
                raise SystemExit(f"the generated definition is invalid:\n{result.report.errors[:5]}")
        entries = len(result.plan.order) if result.plan else 0
    print(
        json.dumps(
            {
                "stacks": args.stacks,
                "entries": entries,
                "seconds": seconds,
                "median_seconds": statistics.median(seconds),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
