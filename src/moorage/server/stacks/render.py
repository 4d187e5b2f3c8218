"""The chart objects of a Stack Builder preview: the server never runs helm and holds no decryption
key, so it asks the cluster's agent (read job `render_objects`, agent/render.py) to render each
release the edit creates or changes with the edited definition's values and compare it with the
release as it is. The job carries the definition's files as they would be committed (values marked
secret are SOPS ciphertext by then) and the registry credentials sealed for that agent, as a sync.

The wait is bounded: an agent offline is not asked at all, a slow one is given up on (its job
cancelled), and either way the preview still answers, with the releases, saying why their objects
are not listed."""

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from moorage.server.bundle import MAX_BUNDLE_BYTES
from moorage.spec.protocol import JobAction

WAIT_SECONDS = int(os.environ.get("MOORAGE_STACK_PREVIEW_RENDER_SECONDS", "30"))


class Unavailable(Exception):
    """The agent did not answer: `state` is offline, timeout or failed; `message` says why."""

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.message = message
        self.state = state


# (cluster name, who asks, action, payload, seconds to wait) -> the agent's result, or Unavailable
Ask = Callable[[str, str, JobAction, dict[str, Any], int], Awaitable[dict[str, Any]]]


def payload(
    files: Mapping[str, str], root: str, releases: list[dict[str, Any]], sealed: Mapping[str, str]
) -> dict[str, Any]:
    """The job's payload: the files, the releases to render (name, namespace, change), the sealed
    registry credentials."""
    wanted = [{"release": r["release"], "namespace": r["namespace"], "change": r["change"]} for r in releases]
    return {"files": dict(files), "root": root, "releases": wanted, **sealed}


def merge(releases: list[dict[str, Any]], answer: Mapping[str, Any]) -> int:
    """Each release entry gets the agent's answer for it (`objects`, or `rendered: false` with the
    `reason`); returns how many were rendered. A release the agent did not answer is not rendered."""
    by_name = {
        (str(a.get("release")), str(a.get("namespace"))): a
        for a in answer.get("releases") or []
        if isinstance(a, Mapping)
    }
    rendered = 0
    for release in releases:
        found = by_name.get((release["release"], release["namespace"]))
        if found is None:
            release.update(rendered=False, reason="the agent did not answer for this release")
            continue
        if found.get("rendered") is True and isinstance(found.get("objects"), Mapping):
            release.update(rendered=True, objects=dict(found["objects"]))
            if found.get("note"):
                release["note"] = str(found["note"])
            rendered += 1
        else:
            release.update(rendered=False, reason=str(found.get("reason") or "not rendered"))
    return rendered


def not_rendered(releases: list[dict[str, Any]], reason: str) -> None:
    for release in releases:
        release.update(rendered=False, reason=reason)


async def add_objects(
    ask: Ask | None,
    cluster: str,
    who: str,
    changes: dict[str, Any],
    files: Mapping[str, str],
    root: str,
    sealed: Mapping[str, str],
    *,
    wait_seconds: int = WAIT_SECONDS,
) -> None:
    """Render the charts of `changes["releases"]` through the agent and add their objects to each;
    `changes["render"]` says whether that worked (state rendered | partial | not_rendered | none),
    why not, and how long it took."""
    releases: list[dict[str, Any]] = changes.get("releases") or []
    if not releases:
        changes["render"] = {"state": "none", "message": "no Helm release changes"}
        return
    started = time.monotonic()
    body = payload(files, root, releases, sealed)
    size = len(json.dumps(body).encode())
    why = ""
    if ask is None:
        why = "this server cannot reach agents here"
    elif size > MAX_BUNDLE_BYTES:
        why = (
            f"the definition's files add up to {size} bytes; a render job carries at most {MAX_BUNDLE_BYTES}"
        )
    if not why and ask is not None:
        try:
            answer = await ask(cluster, who, JobAction.RENDER_OBJECTS, body, wait_seconds)
        except Unavailable as e:
            why = e.message
        else:
            rendered = merge(releases, answer)
            state = "rendered" if rendered == len(releases) else "partial" if rendered else "not_rendered"
            message = (
                "objects rendered by the agent with the new values, compared with each release as it is"
                if state == "rendered"
                else f"{len(releases) - rendered} of {len(releases)} releases could not be rendered: "
                "see each one's reason"
            )
            changes["render"] = {
                "state": state,
                "message": message,
                "seconds": round(time.monotonic() - started, 3),
                "agent_seconds": answer.get("seconds"),  # of those, the agent's work (the rest: the trip)
            }
            return
    not_rendered(releases, why)
    changes["render"] = {
        "state": "not_rendered",
        "message": f"the objects of the charts were not rendered: {why}; the releases are listed alone",
        "seconds": round(time.monotonic() - started, 3),
    }
