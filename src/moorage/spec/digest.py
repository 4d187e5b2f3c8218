"""A fingerprint per entry of a resolved definition, to tell which entries a new commit changed.

The control plane resolves without decrypting, so SOPS values enter the digest as ciphertext: a
re-encryption without a plaintext change counts as a change (harmless: the agent's own digest of
the decrypted values then finds nothing to do), and no plaintext is ever hashed on the server."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from moorage.spec.content import ResolvedAddon, ResolvedCluster, ResolvedManifest


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _addon_content(addon: ResolvedAddon) -> dict[str, Any]:
    return {
        "stack": addon.stack,
        "chart": [addon.registry_name, addon.registry_url, addon.chart_name, addon.chart_version],
        "namespace": addon.namespace,
        "values": addon.values.reveal(),
        "settings": addon.settings.model_dump(mode="json"),
        "job_configuration": addon.job_configuration.model_dump(mode="json"),
    }


def _manifest_content(manifest: ResolvedManifest) -> dict[str, Any]:
    return {
        "stack": manifest.stack,
        "namespace": manifest.namespace,
        "objects": manifest.objects.reveal(),
        "force": manifest.force,
        "auto_remediate": manifest.auto_remediate,
    }


def entry_digests(cluster: ResolvedCluster) -> dict[str, str]:
    """{"addon/NAME" | "manifest/NAME": sha256 hex of what that entry deploys}."""
    digests: dict[str, str] = {}
    for name, addon in cluster.addons.items():
        digests[f"addon/{name}"] = hashlib.sha256(_canonical(_addon_content(addon))).hexdigest()
    for name, manifest in cluster.manifests.items():
        digests[f"manifest/{name}"] = hashlib.sha256(_canonical(_manifest_content(manifest))).hexdigest()
    return digests


@dataclass(frozen=True)
class Changes:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def to_dict(self) -> dict[str, list[str]]:
        return {"added": list(self.added), "changed": list(self.changed), "removed": list(self.removed)}

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in self.to_dict().items() if v]
        return ", ".join(parts) if parts else "no changes"


def compare(before: dict[str, str], after: dict[str, str]) -> Changes:
    return Changes(
        added=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(k for k in set(after) & set(before) if after[k] != before[k])),
        removed=tuple(sorted(set(before) - set(after))),
    )
