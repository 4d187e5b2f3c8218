"""engine/objects.fetch_live against the devcluster's kube-apiserver: a kind wanted more than once is
read by one LIST (Secrets without Helm's release records), and what comes back is exactly the live
objects asked for, None for the missing."""

from collections.abc import AsyncIterator

import pytest

from moorage.devcluster import DevCluster
from moorage.engine import objects
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from tests.integration.conftest import Kubectl


@pytest.fixture
async def kube(cluster: DevCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient(from_kubeconfig(cluster.kubeconfig)) as client:
        yield client


def secret(name: str, namespace: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}


async def test_secrets_wanted_together_are_listed_without_helm_release_records(
    kube: KubeClient, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.run("create", "secret", "generic", "a", "-n", namespace, "--from-literal=x=1")
    kubectl.run("create", "secret", "generic", "b", "-n", namespace, "--from-literal=x=2")
    kubectl.run(
        "create",
        "secret",
        "generic",
        "sh.helm.release.v1.r.v1",
        "-n",
        namespace,
        "--type=helm.sh/release.v1",
        "--from-literal=release=e30=",
    )
    seen: list[dict[str, object]] = []
    real_list = kube.list

    async def counting_list(*args: object, **kwargs: object) -> list[dict[str, object]]:
        found = await real_list(*args, **kwargs)  # type: ignore[arg-type]
        seen.extend(found)
        return found

    kube.list = counting_list  # type: ignore[method-assign]
    wanted = [secret("a", namespace), secret("b", namespace), secret("missing", namespace)]
    live = await objects.fetch_live(kube, wanted)
    assert {str(k): (v or {}).get("data") for k, v in live.items()} == {
        f"Secret {namespace}/a": {"x": "MQ=="},
        f"Secret {namespace}/b": {"x": "Mg=="},
        f"Secret {namespace}/missing": None,
    }
    names = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in seen}  # type: ignore[index]
    assert (namespace, "a") in names
    assert (namespace, "sh.helm.release.v1.r.v1") not in names  # the API server applied the selector
    assert all(o.get("type") != "helm.sh/release.v1" for o in seen)
