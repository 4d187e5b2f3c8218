"""Writing definitions for engine tests: each test gets its own namespaces and cluster name."""

import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.engine.context import EngineContext, Options
from moorage.helm.cli import Helm
from moorage.kube.client import KubeClient
from moorage.kube.config import from_kubeconfig
from moorage.spec.content import ResolvedCluster
from moorage.spec.graph import Plan
from moorage.spec.loader import LoadOptions, load


@dataclass
class Definition:
    root: Path
    suffix: str

    def ns(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def write(self, text: str) -> None:
        (self.root / "import-cluster.yaml").write_text(textwrap.dedent(text).replace("SFX", self.suffix))

    def load(self) -> tuple[ResolvedCluster, Plan]:
        result = load(self.root / "import-cluster.yaml", LoadOptions(decrypt=False))
        assert result.ok, result.report.to_text()
        assert result.resolved is not None
        assert result.plan is not None
        return result.resolved, result.plan


def new_definition(tmp_path: Path) -> Definition:
    root = tmp_path / "repo"
    root.mkdir()
    return Definition(root, uuid.uuid4().hex[:6])


class Engine:
    """An engine context bound to the test cluster, usable as an async context manager."""

    def __init__(self, kubeconfig: Path, helm_home: Path, **options: Any) -> None:
        self.kubeconfig = kubeconfig
        self.helm_home = helm_home
        self.options = Options(**{"timeout_seconds": 60, **options})
        self.kube: KubeClient | None = None

    async def __aenter__(self) -> EngineContext:
        self.kube = KubeClient(from_kubeconfig(self.kubeconfig))
        helm = Helm(kubeconfig=self.kubeconfig, home=self.helm_home)
        return EngineContext(self.kube, helm, self.options)

    async def __aexit__(self, *exc: object) -> None:
        assert self.kube is not None
        await self.kube.close()
