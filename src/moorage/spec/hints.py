"""Hints for people: "did you mean …" for typos and example values for missing fields."""

from __future__ import annotations

from collections.abc import Iterable

# Example values shown when a required field is missing (keyed by field name).
EXAMPLES: dict[str, str] = {
    "apiVersion": "apiVersion: v1",
    "kind": "kind: ImportCluster",
    "metadata": "metadata: {name: my-cluster}",
    "spec": "spec: {stacks: [...]}",
    "name": "name: my-name",
    "provider": "provider: github",
    "credential_name": "credential_name: my-git-credential",
    "repository": "repository: my-org/my-repo",
    "branch": "branch: main",
    "url": "url: https://charts.example.com",
    "chart_name": "chart_name: fluent-bit",
    "chart_version": 'chart_version: "0.49.1"',
    "namespace": "namespace: fluent-bit",
    "endpoint": "endpoint: https://prometheus.example.com",
    "registry_name": "registry_name: fluent",
}


def levenshtein(a: str, b: str, limit: int = 3) -> int:
    """Edit distance between a and b, stopping early once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        best = i
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            current.append(value)
            best = min(best, value)
        if best > limit:
            return limit + 1
        previous = current
    return previous[-1]


def closest(word: str, candidates: Iterable[str], max_distance: int = 2) -> str | None:
    """The candidate closest to ``word`` within ``max_distance`` edits (case-insensitive), if any."""
    best: tuple[int, str] | None = None
    low = word.lower().replace("-", "_")
    for candidate in sorted(candidates):
        dist = levenshtein(low, candidate.lower().replace("-", "_"), max_distance)
        if dist <= max_distance and (best is None or dist < best[0]):
            best = (dist, candidate)
    return best[1] if best else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    options = sorted(set(candidates))
    match = closest(word, options)
    if match is not None:
        return f"did you mean '{match}'?"
    if options:
        return "accepted fields: " + ", ".join(options)
    return ""


def example_for(field: str) -> str:
    example = EXAMPLES.get(field)
    return f"for example: {example}" if example else ""
