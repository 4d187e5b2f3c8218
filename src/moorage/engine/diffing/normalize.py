"""Strip what Helm injects and what the API server populates, so both sides compare like for like.

Stripped from either side (desired or live) by :func:`normalize`:

====================================================  ====================================================
Field                                                 Why
====================================================  ====================================================
``metadata.uid``                                      assigned by the API server at create
``metadata.resourceVersion``                          optimistic-concurrency token, changes on every write
``metadata.generation``                               bumped by the API server on each spec change
``metadata.creationTimestamp``                        set by the API server (``null`` in ``helm template``)
``metadata.managedFields``                            SSA bookkeeping; read for ownership, never diffed
``metadata.selfLink``                                 legacy, server-populated
``metadata.deletionTimestamp``                        set when deletion starts; lifecycle, not configuration
``metadata.deletionGracePeriodSeconds``               idem
``metadata.ownerReferences``                          set by controllers/GC on live objects only
``metadata.namespace``                                identity: paired and reported separately (cluster-scoped
                                                      objects have none, manifests often omit it)
``status``                                            written by controllers through the status subresource
annotation ``meta.helm.sh/release-name``              Helm ownership marker (install, take-ownership)
annotation ``meta.helm.sh/release-namespace``         idem
annotation ``kubectl.kubernetes.io/last-applied-      client-side-apply bookkeeping; may even hold Secret data
configuration``
annotation ``deployment.kubernetes.io/revision``      written by the Deployment controller
label ``app.kubernetes.io/managed-by: Helm``          Helm adds it on adopt (stripped only if = Helm)
empty ``metadata.labels`` / ``metadata.annotations``  ``{}`` and absent mean the same to the API server
empty ``metadata``                                    idem, after the above
====================================================  ====================================================

Secrets additionally go through :func:`canonical_secret` (``stringData`` folded into ``data``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

SERVER_METADATA: frozenset[str] = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        "namespace",
    }
)
INJECTED_ANNOTATIONS: frozenset[str] = frozenset(
    {
        "meta.helm.sh/release-name",
        "meta.helm.sh/release-namespace",
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
    }
)
#: label → the only value that is stripped (a chart may set managed-by to something else on purpose)
INJECTED_LABELS: Mapping[str, str] = {"app.kubernetes.io/managed-by": "Helm"}


def normalize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` without the fields in the module table. Idempotent; never mutates."""
    # copy all but the bulkiest stripped parts (managedFields, status): a sweep normalises ~1000
    # objects, and copy.deepcopy was most of the diff's time
    out = {key: json_copy(value) for key, value in obj.items() if key not in ("status", "metadata")}
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        kept = {key: json_copy(value) for key, value in metadata.items() if key not in SERVER_METADATA}
        _strip_metadata(kept)
        if kept:
            out["metadata"] = kept
    elif "metadata" in obj:
        out["metadata"] = json_copy(metadata)
    return out


def json_copy(value: Any) -> Any:
    """Deep copy of JSON-like data (maps, lists, scalars); much faster than ``copy.deepcopy``."""
    if isinstance(value, Mapping):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def _strip_metadata(metadata: dict[str, Any]) -> None:
    for key in SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        for key in INJECTED_ANNOTATIONS:
            annotations.pop(key, None)
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for key, value in INJECTED_LABELS.items():
            if labels.get(key) == value:
                del labels[key]
    for key in ("labels", "annotations"):
        # None too: `annotations:` with nothing under it renders as null from a template
        if key in metadata and not metadata[key]:
            del metadata[key]


def is_secret(obj: Mapping[str, Any]) -> bool:
    """A core-group Secret (any version, or none given: masking errs on the safe side)."""
    return obj.get("kind") == "Secret" and "/" not in str(obj.get("apiVersion", "v1"))


def canonical_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """Fold ``stringData`` into ``data`` the way the API server does (stringData wins, it is
    write-only so live objects never carry it) and re-encode every ``data`` value canonically,
    so that wrapped or unpadded base64 of the same bytes compares equal. Mutates and returns ``obj``."""
    data = obj.get("data")
    merged: dict[str, Any] = dict(data) if isinstance(data, dict) else {}
    for key, value in merged.items():
        merged[key] = _canonical_b64(value)
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        for key, value in string_data.items():
            text = value if isinstance(value, str) else str(value)
            merged[key] = base64.b64encode(text.encode()).decode()
    if merged or "data" in obj:
        obj["data"] = merged
    return obj


def _canonical_b64(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return value  # not valid base64: compare as text; the API server would have refused it
    return base64.b64encode(raw).decode()
