"""Upgrade Agent: the agent upgrades its own Helm release (charts/moorage-agent) to the chart version
the control plane asks for, with `helm upgrade --reuse-values`, so the values it was installed with
(token Secret, server URL, settings) stay as they are.

The chart tells the agent which release it is (MOORAGE_AGENT_RELEASE_NAME, _NAMESPACE) and its chart
version (MOORAGE_AGENT_CHART_VERSION, reported in the heartbeat). helm runs without --wait: it
returns once the new objects are applied, this job's result goes out, then Kubernetes replaces this
pod by the new version's, which registers and reports its chart version. A failed upgrade (the
version does not exist, the registry refuses, the new values fail the schema or a template) changes
nothing: helm fails before applying, the old agent keeps running and the job says why.

`request_of` is the pure decision; `run` runs helm."""

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moorage.engine.context import EngineContext
from moorage.helm.cli import ChartRef, HelmError
from moorage.spec.protocol import JobMessage, JobState

Outcome = tuple[JobState, list[str], dict[str, Any]]

RELEASE_ENV = "MOORAGE_AGENT_RELEASE_NAME"
NAMESPACE_ENV = "MOORAGE_AGENT_RELEASE_NAMESPACE"
CHART_VERSION_ENV = "MOORAGE_AGENT_CHART_VERSION"
CHART_NAME = "moorage-agent"
_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.+-]{1,60})?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
HELM_TIMEOUT_SECONDS = 300


class UpgradeRefused(ValueError):
    pass


@dataclass(frozen=True)
class Upgrade:
    release: str
    namespace: str
    chart: ChartRef


def chart_version(env: Mapping[str, str] = os.environ) -> str | None:
    """The agent chart's version this agent was installed with, if the chart said so."""
    value = env.get(CHART_VERSION_ENV, "").strip()
    return value[:64] if value else None


def chart_of(reference: str, version: str) -> ChartRef:
    """`oci://HOST/PATH/moorage-agent` (the chart itself) or `https://REPO` (a Helm repository
    holding the chart `moorage-agent`)."""
    if reference.startswith("oci://"):
        repository, _, name = reference.rstrip("/").rpartition("/")
        if not name or not repository.startswith("oci://") or repository == "oci://":
            raise UpgradeRefused(
                f"chart {reference!r}: an OCI reference names the chart, e.g. oci://HOST/PATH/moorage-agent"
            )
        return ChartRef(name=name, version=version, repository=repository)
    if reference.startswith(("https://", "http://")):
        return ChartRef(name=CHART_NAME, version=version, repository=reference.rstrip("/"))
    raise UpgradeRefused(
        f"chart {reference!r} is neither oci://HOST/PATH/moorage-agent nor the https:// URL of a Helm "
        "repository"
    )


def request_of(payload: Mapping[str, Any], env: Mapping[str, str]) -> Upgrade:
    """What the job asks for, checked: the version, the chart reference, and which release is ours."""
    version = payload.get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise UpgradeRefused(f"version {version!r} is not a chart version such as 0.2.0")
    reference = payload.get("chart")
    if not isinstance(reference, str) or not reference:
        raise UpgradeRefused("the job names no chart to upgrade from (oci://… or a Helm repository URL)")
    release, namespace = env.get(RELEASE_ENV, ""), env.get(NAMESPACE_ENV, "")
    if not release or not namespace:
        raise UpgradeRefused(
            f"this agent does not know its Helm release ({RELEASE_ENV} and {NAMESPACE_ENV} are set by the "
            "moorage-agent chart): an agent not installed with the chart is upgraded by whoever started it"
        )
    if not _NAME.match(release) or not _NAME.match(namespace):
        raise UpgradeRefused(f"release {namespace}/{release} is not a valid Helm release name")
    return Upgrade(release=release, namespace=namespace, chart=chart_of(reference, version))


async def _deployed(ctx: EngineContext, upgrade: Upgrade) -> tuple[str | None, int | None]:
    """The chart version and revision of our release as helm lists it."""
    listed = await ctx.helm.run(
        [
            "list",
            "--namespace",
            upgrade.namespace,
            "--filter",
            f"^{re.escape(upgrade.release)}$",
            "--output",
            "json",
        ],
        timeout=60,
    )
    for row in json.loads(listed or "[]"):
        if row.get("name") == upgrade.release:
            chart = str(row.get("chart", ""))
            version = (
                chart.removeprefix(f"{upgrade.chart.name}-")
                if chart.startswith(upgrade.chart.name)
                else chart
            )
            revision = row.get("revision")
            return version, int(revision) if revision is not None else None
    return None, None


async def run(ctx: EngineContext, job: JobMessage, env: Mapping[str, str] = os.environ) -> Outcome:
    try:
        upgrade = request_of(job.payload, env)
    except UpgradeRefused as e:
        return JobState.FAILED, [str(e)], {}
    target = upgrade.chart.version.removeprefix("v")
    where = f"{upgrade.namespace}/{upgrade.release}"
    try:
        before, revision = await _deployed(ctx, upgrade)
    except HelmError as e:
        return JobState.FAILED, [f"reading release {where} failed: {e}"], {}
    if before is None:
        return JobState.FAILED, [f"release {where} not found: this agent's chart release is gone"], {}
    result: dict[str, Any] = {
        "release": upgrade.release,
        "namespace": upgrade.namespace,
        "from_version": before,
    }
    if before == target:
        return JobState.SUCCESS, [f"{where} already runs chart {target}"], {**result, "version": target}
    args = ["upgrade", upgrade.release, *upgrade.chart.args(), "--namespace", upgrade.namespace]
    args += ["--reuse-values", f"--timeout={HELM_TIMEOUT_SECONDS}s"]
    try:
        await ctx.helm.run(args, timeout=HELM_TIMEOUT_SECONDS + 60)
    except HelmError as e:
        message = (
            f"upgrading {where} from chart {before} to {target} failed; the agent keeps running {before}: {e}"
        )
        return JobState.FAILED, [message], {**result, "revision": revision}
    _, new_revision = await _deployed(ctx, upgrade)
    return (
        JobState.SUCCESS,
        [
            f"upgraded {where} from chart {before} to {target} (revision {new_revision}); "
            "the new agent reports it once connected"
        ],
        {**result, "version": target, "revision": new_revision},
    )
