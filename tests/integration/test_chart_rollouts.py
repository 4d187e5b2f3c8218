"""The agent chart's canary (progressiveDelivery, issue 12) with the real Argo Rollouts controller,
built from the Go module proxy (`make tools-rollouts`) and run against the devcluster as a process
(moorage.devcluster.rollouts); kwok makes the pods Ready. Installed with helm, the chart's Rollout
comes up; a new image tag stops at the first canary step with the stable pod still Ready and in the
Service's endpoints beside the canary's; `kubectl argo rollouts promote` (the plugin of the same
module) completes it; the Service's selector is the same before, during and after, and after the
one-time switch back to a Deployment. Without the Rollout CRD, `helm install` fails at once with the
chart's message."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from moorage import devcluster
from moorage.devcluster import rollouts
from tests.integration.conftest import Helm, Kubectl

CHART = Path(__file__).resolve().parents[2] / "charts" / "moorage-agent"
RELEASE = "canary-agent"
TOKEN = "mrga_canary-test-token-0123456789abcdefghij"
SERVER = "https://moorage.example.com"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {last!r})")


def install_args(namespace: str, *more: str) -> list[str]:
    return [
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        f"config.token={TOKEN}",
        "--set",
        f"config.server_url={SERVER}",
        "--set",
        "progressiveDelivery.enabled=true",
        *more,
    ]


@pytest.fixture
def release(helm: Helm, namespace: str) -> Iterator[str]:
    """The namespace to install into; the release (with its cluster-scoped bindings) is uninstalled after."""
    yield namespace
    helm.run("uninstall", RELEASE, "--namespace", namespace, "--ignore-not-found", check=False)


# this test must see a cluster without the CRD: it runs before the fixture below installs it (only this
# module does), and removes the CRD first if an earlier run of this module left it behind
def test_without_the_rollout_crd_the_install_fails_with_the_message(
    kubectl: Kubectl, helm: Helm, release: str
) -> None:
    kubectl.run("delete", "crd", "rollouts.argoproj.io", "--ignore-not-found", "--wait=true")
    wait_for(
        "the Rollout API gone from discovery",
        lambda: (
            "rollouts" not in kubectl.run("api-resources", "--api-group=argoproj.io", "-o", "name").stdout
        ),
    )
    result = helm.run(*install_args(release), check=False)
    assert result.returncode != 0
    assert "progressiveDelivery.enabled=true renders an Argo Rollouts Rollout" in result.stderr, result.stderr
    assert "the cluster has no Rollout CRD (argoproj.io/v1alpha1/Rollout)" in result.stderr
    assert "--api-versions argoproj.io/v1alpha1/Rollout" in result.stderr
    assert TOKEN not in result.stderr
    assert RELEASE not in helm.releases(release)  # failed at render time: nothing was created
    assert not kubectl.get(
        "secrets,serviceaccounts,services", "-n", release, "-l", "app.kubernetes.io/part-of=moorage"
    )["items"]


@pytest.fixture(scope="module")
def argo_rollouts(cluster: devcluster.DevCluster) -> Iterator[rollouts.ArgoRollouts]:
    ports = rollouts.start(cluster)
    try:
        yield ports
    finally:
        rollouts.stop(cluster)


def rollout_status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl.get("rollout", RELEASE, "-n", namespace).get("status", {})
    return status


def pods(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = kubectl.get(
        "pods", "-n", namespace, "-l", f"app.kubernetes.io/name={RELEASE}"
    )["items"]
    return [p for p in listed if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def image(pod: dict[str, Any]) -> str:
    (container,) = pod["spec"]["containers"]
    name: str = container["image"]
    return name


def selector(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    found: dict[str, str] = kubectl.get("service", RELEASE, "-n", namespace)["spec"]["selector"]
    return found


def endpoint_pods(kubectl: Kubectl, namespace: str) -> set[str]:
    """The pods the Service sends traffic to: ready endpoints of its EndpointSlices."""
    slices = kubectl.get("endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={RELEASE}")[
        "items"
    ]
    return {
        e["targetRef"]["name"]
        for s in slices
        for e in s.get("endpoints") or []
        if e.get("conditions", {}).get("ready") and e.get("targetRef")
    }


def test_a_new_tag_pauses_at_the_first_canary_step_and_promote_completes_it(
    cluster: devcluster.DevCluster,
    argo_rollouts: rollouts.ArgoRollouts,
    kubectl: Kubectl,
    helm: Helm,
    release: str,
) -> None:
    namespace = release
    helm.run(*install_args(namespace, "--set", "image.tag=1.0.0"))
    assert kubectl.get("rollout", RELEASE, "-n", namespace)["spec"]["strategy"]["canary"]["steps"] == [
        {"setWeight": 20},
        {"pause": {}},
    ]
    assert kubectl.run("get", "deployments", "-n", namespace, "-o", "name").stdout.strip() == ""
    first = wait_for(
        "the first version Healthy",
        lambda: (
            (s := rollout_status(kubectl, namespace)).get("phase") == "Healthy" and s.get("stableRS") and s
        ),
    )
    stable_hash = first["stableRS"]
    before = selector(kubectl, namespace)
    assert before == {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/instance": RELEASE}
    (stable_pod,) = wait_for(
        "the stable pod Ready", lambda: [p for p in pods(kubectl, namespace) if ready(p)]
    )
    assert image(stable_pod) == "moorage:1.0.0"
    wait_for(
        "the stable pod in the Service",
        lambda: endpoint_pods(kubectl, namespace) == {stable_pod["metadata"]["name"]},
    )

    # a new version: one canary pod beside the stable one, then the manual pause
    helm.run(*install_args(namespace, "--reuse-values", "--set", "image.tag=1.1.0"))
    paused = wait_for(
        "the canary paused at its first step",
        lambda: (
            (s := rollout_status(kubectl, namespace)).get("phase") == "Paused"
            and s.get("currentStepIndex") == 1
            and [c["reason"] for c in s.get("pauseConditions") or []] == ["CanaryPauseStep"]
            and s
        ),
    )
    canary_hash = paused["currentPodHash"]
    assert canary_hash != stable_hash
    assert paused["stableRS"] == stable_hash  # not promoted

    def both_ready() -> dict[str, dict[str, Any]] | None:
        by_hash = {p["metadata"]["labels"]["rollouts-pod-template-hash"]: p for p in pods(kubectl, namespace)}
        return (
            by_hash
            if set(by_hash) == {stable_hash, canary_hash} and all(map(ready, by_hash.values()))
            else None
        )

    during = wait_for("the stable and the canary pod Ready", both_ready)
    assert image(during[stable_hash]) == "moorage:1.0.0"
    assert image(during[canary_hash]) == "moorage:1.1.0"
    assert (
        during[stable_hash]["metadata"]["name"] == stable_pod["metadata"]["name"]
    )  # the stable pod kept serving
    wait_for(
        "both pods in the Service",
        lambda: endpoint_pods(kubectl, namespace) == {p["metadata"]["name"] for p in during.values()},
    )
    assert selector(kubectl, namespace) == before
    # it stays paused: no promotion without a promote
    time.sleep(3)
    held = rollout_status(kubectl, namespace)
    assert (held["phase"], held["stableRS"], held.get("currentStepIndex")) == ("Paused", stable_hash, 1)

    rollouts.plugin(cluster, "promote", RELEASE, "-n", namespace)
    done = wait_for(
        "the canary promoted and Healthy",
        lambda: (
            (s := rollout_status(kubectl, namespace)).get("phase") == "Healthy"
            and s.get("stableRS") == canary_hash
            and s.get("currentStepIndex") == 2
            and s
        ),
    )
    assert done["currentPodHash"] == canary_hash
    (after_pod,) = wait_for(
        "only the new version's pod left",
        lambda: (
            (found := pods(kubectl, namespace))
            and all(p["metadata"]["labels"]["rollouts-pod-template-hash"] == canary_hash for p in found)
            and found
        ),
    )
    assert image(after_pod) == "moorage:1.1.0"
    wait_for(
        "the new pod alone in the Service",
        lambda: endpoint_pods(kubectl, namespace) == {after_pod["metadata"]["name"]},
    )
    assert selector(kubectl, namespace) == before
    assert helm.releases(namespace)[RELEASE]["status"] == "deployed"

    # the one-time switch back (the chart README): the Deployment replaces the Rollout, same Service
    helm.run(*install_args(namespace, "--reuse-values", "--set", "progressiveDelivery.enabled=false"))
    assert kubectl.run("get", "rollouts", "-n", namespace, "-o", "name").stdout.strip() == ""
    wait_for(
        "the Deployment's pod alone, Ready and in the Service",
        lambda: (
            (found := pods(kubectl, namespace))
            and all("rollouts-pod-template-hash" not in p["metadata"]["labels"] and ready(p) for p in found)
            and endpoint_pods(kubectl, namespace) == {p["metadata"]["name"] for p in found}
            and found
        ),
    )
    assert kubectl.get("deployment", RELEASE, "-n", namespace)["status"].get("readyReplicas") == 1
    assert selector(kubectl, namespace) == before


SERVER_CANARY = [
    "--set",
    "database.existing_secret_name=moorage-db",
    "--set",
    "nats.existing_secret_name=moorage-nats",
    "--set",
    "sealing_key.existing_secret_name=moorage-sealing",
    "--set",
    "persistence.enabled=false",
]


@pytest.mark.parametrize(
    ("chart", "values"),
    [
        ("moorage-agent", ["--set", f"config.token={TOKEN}", "--set", f"config.server_url={SERVER}"]),
        (
            "moorage-agent",
            [
                "--set",
                f"config.token={TOKEN}",
                "--set",
                f"config.server_url={SERVER}",
                "--set-json",
                'progressiveDelivery.canarySteps=[{"setWeight":25},{"pause":{"duration":"10m"}},{"setWeight":50},{"pause":{}}]',
                "--set",
                "progressiveDelivery.maxSurge=25%",
            ],
        ),
        ("moorage", SERVER_CANARY),
    ],
)
def test_the_rendered_rollouts_pass_the_crd_schema_and_the_plugin_lint(
    cluster: devcluster.DevCluster,
    argo_rollouts: rollouts.ArgoRollouts,
    kubectl: Kubectl,
    helm: Helm,
    namespace: str,
    chart: str,
    values: list[str],
    tmp_path: Path,
) -> None:
    """Both charts' Rollouts (offline, with --api-versions) as the API server validates them against the
    real CRD's schema (a server-side dry run) and as `kubectl argo rollouts lint` checks the strategy."""
    rendered = helm.run(
        "template",
        "canary",
        str(CHART.parent / chart),
        "--namespace",
        namespace,
        "--api-versions",
        "argoproj.io/v1alpha1/Rollout",
        "--set",
        "progressiveDelivery.enabled=true",
        *values,
        "--show-only",
        "templates/deployment.yaml",
    ).stdout
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(rendered)
    dry = kubectl.run("apply", "--server-side", "--dry-run=server", "-f", str(manifest), "-o", "json")
    assert '"kind": "Rollout"' in dry.stdout
    rollouts.plugin(cluster, "lint", "-f", str(manifest))
