"""The registry credentials of a sync job: sealed by the server for this agent (age, to the identity
it received when it registered), opened here in memory and handed to the engine's Helm, which
fetches private charts itself (moorage.helm.cli). Never logged, never written to disk."""

import base64
import json
from collections.abc import Mapping
from typing import Any

import pyrage
from pyrage import x25519

from moorage.charts.source import RegistryAuth

PAYLOAD_KEY = "registry_credentials"  # as the server writes it (moorage.server.registries)


class CredentialsError(ValueError):
    pass


def open_credentials(payload: Mapping[str, Any], identity: str | None) -> dict[str, RegistryAuth]:
    """The job's credentials by registry URL ({} when the job carries none)."""
    sealed = payload.get(PAYLOAD_KEY)
    if not sealed:
        return {}
    if not identity:
        raise CredentialsError(
            "the job carries registry credentials but the server gave this agent no key to open them; "
            "upgrade the server or restart the agent"
        )
    try:
        data = json.loads(pyrage.decrypt(base64.b64decode(str(sealed)), [x25519.Identity.from_str(identity)]))
    except Exception:
        raise CredentialsError(
            "the job's registry credentials cannot be opened with this agent's key (sealed before its "
            "token was rotated?); sync again"
        ) from None
    if not isinstance(data, dict):
        raise CredentialsError("the job's registry credentials are not a mapping")
    return {str(url): RegistryAuth.from_dict(v) for url, v in data.items() if isinstance(v, dict)}
