"""The validated pieces of a definition, each with the path it came from.

Validation keeps going past invalid entries, so later checks (graph, content, secrets) work on
whatever pieces were valid: one bad add-on must not hide a cycle between two good ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from moorage.spec.models import (
    Addon,
    Application,
    HelmRegistry,
    ImportCluster,
    Manifest,
    Metadata,
    Spec,
    Stack,
)
from moorage.spec.yamlsafe import PathKey

T = TypeVar("T", Manifest, Addon, Application)


@dataclass
class Entry(Generic[T]):
    kind: str
    model: T
    path: PathKey
    stack: Stack
    file: str

    @property
    def name(self) -> str:
        return self.model.name


@dataclass
class Assembly:
    root_file: str
    raw: Any
    metadata: Metadata | None = None
    spec: Spec | None = None
    head_valid: bool = False
    stacks: list[tuple[Stack, PathKey, str]] = field(default_factory=list)
    manifests: list[Entry[Manifest]] = field(default_factory=list)
    addons: list[Entry[Addon]] = field(default_factory=list)
    applications: list[Entry[Application]] = field(default_factory=list)
    # Entries that failed validation (or sit in a stack that did), kept as stand-ins with only their
    # name and parents, so the graph still checks their references and others' references to them.
    partial: list[Entry[Any]] = field(default_factory=list)
    # helm_registries that validated on their own while the spec as a whole did not
    salvaged_registries: list[HelmRegistry] = field(default_factory=list)

    @property
    def registries(self) -> list[HelmRegistry]:
        return list(self.spec.helm_registries) if self.spec else list(self.salvaged_registries)

    def cluster(self) -> ImportCluster | None:
        """The whole definition as one model (invalid entries left out), if the top level is valid."""
        if not self.head_valid or self.metadata is None or self.spec is None:
            return None
        spec = self.spec.model_copy(update={"stacks": [stack for stack, _, _ in self.stacks]})
        return ImportCluster.model_construct(
            apiVersion="v1", kind="ImportCluster", metadata=self.metadata, spec=spec
        )
