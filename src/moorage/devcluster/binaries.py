"""Where the devcluster's binaries are: built by tools/k8s/build.sh and linked into the venv's bin."""

import os
import shutil
import sys
from pathlib import Path

from moorage.devcluster.errors import DevclusterError

COMPONENT_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def find(name: str) -> Path:
    """The binary `name`: from $MOORAGE_BIN_DIR, next to this Python (the venv), or on PATH."""
    candidates: list[Path] = []
    if bin_dir := os.environ.get("MOORAGE_BIN_DIR"):
        candidates.append(Path(bin_dir) / name)
    candidates.append(Path(sys.executable).parent / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise DevclusterError(
        f"{name} not found (looked in $MOORAGE_BIN_DIR, {Path(sys.executable).parent} and PATH); "
        "run `make tools` to build it from the Go module proxy"
    )


# Moorage's own kwok stages, shipped in the package (e.g. pods whose image never pulls).
OWN_STAGES = Path(__file__).parent / "stages"


def kwok_stages() -> list[Path]:
    """kwok's node, pod and volume Stage files, which tools/k8s/build.sh keeps next to the binary,
    then Moorage's own (`OWN_STAGES`)."""
    stages = sorted((find("kwok").resolve().parent / "stages").glob("*.yaml"))
    if not stages:
        raise DevclusterError(
            "kwok's stage files are missing next to its binary; run `make tools` to restore them"
        )
    own = sorted(OWN_STAGES.glob("*.yaml"))
    if not own:
        raise DevclusterError(f"Moorage's kwok stage files are missing from {OWN_STAGES}")
    return stages + own
