"""The chart objects of a preview, on the server (server/stacks/render.py) and the agent's bound on
its answer (agent/render.fit): what the job carries, how the answer joins the releases, and that a
preview still answers, saying why, when the agent is offline, slow or the definition too large."""

import asyncio
import json
from typing import Any

import pytest

from moorage.agent.render import fit
from moorage.server.bundle import MAX_BUNDLE_BYTES
from moorage.server.stacks import render
from moorage.spec.protocol import JobAction

SEALED = {"registry_credentials": "c2VhbGVkIGZvciB0aGUgYWdlbnQ="}


def releases() -> list[dict[str, Any]]:
    return [
        {
            "release": "web",
            "namespace": "apps",
            "change": "changed",
            "chart": "webapp 1.0.0",
            "what": ["values"],
        },
        {"release": "new", "namespace": "apps", "change": "created", "chart": "webapp 1.0.0"},
        {"release": "old", "namespace": "apps", "change": "removed", "chart": "webapp 1.0.0"},
    ]


OBJECTS = {"created": [], "changed": [{"kind": "Deployment", "paths": ["spec.replicas"]}], "removed": []}


def run(ask: render.Ask | None, changes: dict[str, Any], files: dict[str, str] | None = None) -> None:
    asyncio.run(
        render.add_objects(ask, "c1", "user:alice", changes, files or {"a.yaml": "x"}, "a.yaml", SEALED)
    )


def test_the_job_carries_the_files_the_releases_and_the_sealed_credentials_and_the_answer_joins_them() -> (
    None
):
    asked: list[tuple[Any, ...]] = []

    async def ask(
        name: str, who: str, action: JobAction, payload: dict[str, Any], seconds: int
    ) -> dict[str, Any]:
        asked.append((name, who, action, payload, seconds))
        return {
            "releases": [
                {"release": "web", "namespace": "apps", "rendered": True, "objects": OBJECTS},
                {"release": "new", "namespace": "apps", "rendered": False, "reason": "chart not found"},
            ]
        }

    changes: dict[str, Any] = {"releases": releases(), "objects": []}
    run(ask, changes, {"a.yaml": "root", "values/web.enc.yaml": "greeting: ENC[AES256_GCM,data:…]"})
    ((name, who, action, payload, seconds),) = asked
    assert (name, who, action, seconds) == ("c1", "user:alice", JobAction.RENDER_OBJECTS, render.WAIT_SECONDS)
    assert payload == {
        "files": {"a.yaml": "root", "values/web.enc.yaml": "greeting: ENC[AES256_GCM,data:…]"},
        "root": "a.yaml",
        "releases": [
            {"release": "web", "namespace": "apps", "change": "changed"},
            {"release": "new", "namespace": "apps", "change": "created"},
            {"release": "old", "namespace": "apps", "change": "removed"},
        ],
        **SEALED,
    }
    web, new, old = changes["releases"]
    assert (web["rendered"], web["objects"], web["what"]) == (True, OBJECTS, ["values"])
    assert (new["rendered"], new["reason"]) == (False, "chart not found")
    assert (old["rendered"], old["reason"]) == (False, "the agent did not answer for this release")
    assert changes["render"]["state"] == "partial"
    assert changes["render"]["message"] == "2 of 3 releases could not be rendered: see each one's reason"


@pytest.mark.parametrize(
    "message",
    [
        "the agent of cluster c1 is not connected (last heartbeat: never)",
        "the agent of cluster c1 did not answer within 30s",
    ],
)
def test_an_offline_or_slow_agent_leaves_the_releases_and_says_why(message: str) -> None:
    async def ask(*_: Any) -> dict[str, Any]:
        raise render.Unavailable(message, state="offline")

    changes: dict[str, Any] = {"releases": releases(), "objects": []}
    run(ask, changes)
    assert [r["release"] for r in changes["releases"]] == ["web", "new", "old"]
    assert all(r["rendered"] is False and r["reason"] == message for r in changes["releases"])
    assert changes["render"]["state"] == "not_rendered"
    assert changes["render"]["message"] == (
        f"the objects of the charts were not rendered: {message}; the releases are listed alone"
    )


def test_nothing_is_asked_without_releases_or_when_the_definition_is_too_large_for_a_job() -> None:
    async def ask(*_: Any) -> dict[str, Any]:
        raise AssertionError("the agent must not be asked")

    changes: dict[str, Any] = {"releases": [], "objects": []}
    run(ask, changes)
    assert changes["render"] == {"state": "none", "message": "no Helm release changes"}
    changes = {"releases": releases(), "objects": []}
    run(ask, changes, {"a.yaml": "x" * MAX_BUNDLE_BYTES})
    assert changes["render"]["state"] == "not_rendered"
    assert "a render job carries at most" in changes["render"]["message"]


def test_the_agents_answer_is_trimmed_to_fit_one_message_and_counts_what_it_leaves_out() -> None:
    changed = [
        {"kind": "ConfigMap", "name": f"c{i}", "paths": [f"data.key{j}" for j in range(50)]}
        for i in range(150)
    ]
    objects = {"created": [], "changed": changed, "removed": [], "unchanged": 0, "omitted": 5}
    answer = [{"release": "web", "rendered": True, "objects": objects}]
    assert len(json.dumps(answer)) > 100_000
    small = fit(answer, 100_000)
    assert len(json.dumps(small)) <= 100_000
    objects = small[0]["objects"]
    kept = objects["changed"]
    assert len(kept) + objects["omitted"] == 150 + 5
    assert all(len(c["paths"]) + c["paths_omitted"] == 50 for c in kept)
    assert fit(answer, 10_000_000) == answer  # nothing trimmed when it fits
