"""Registry credentials for a sync job (issue 16, items 1-3): which registries a definition's add-ons
fetch from, the stored credential each one names (a missing one is a validation error naming it),
checked against the hosts it is bound to, and sealed for the cluster's agent only.

Sealing: age (X25519) to a key derived from the server key, the cluster id and its agent token's
hash; the agent receives the identity when it registers with its token. The job (in the database and
on NATS) carries only ciphertext; rotating the agent token changes the key. GHCR: an OCI add-on on
ghcr.io without its own credential gets the token of the cluster's Git credential when that is a
token bound to github.com (MOORAGE_GHCR_GIT_TOKEN=0 turns it off)."""

import base64
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyrage
from pyrage import x25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.charts.schemacheck import SchemaCache, check_charts
from moorage.charts.source import ChartSourceError, RegistryAuth, Vet
from moorage.server import credhosts, egress
from moorage.server.db.models import Cluster, GitCredential, GitRepository
from moorage.server.gitops import store
from moorage.server.secretbox import SecretBox
from moorage.spec.content import ResolvedCluster
from moorage.spec.report import Severity

PAYLOAD_KEY = "registry_credentials"  # the sealed credentials in a sync job's payload
GHCR_HOST = "ghcr.io"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


@dataclass
class Need:
    """A registry the definition's add-ons fetch from, and the credential they name."""

    url: str
    credential: str | None
    addons: list[str] = field(default_factory=list)
    at: str = ""  # file:line of the first add-on using it

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "credential": self.credential, "addons": self.addons, "at": self.at}

    @classmethod
    def of(cls, data: dict[str, Any]) -> "Need":
        return cls(
            url=str(data["url"]),
            credential=data.get("credential"),
            addons=list(data.get("addons") or []),
            at=str(data.get("at") or ""),
        )


def needs_of(resolved: ResolvedCluster) -> list[dict[str, Any]]:
    """Per (registry URL, credential): the add-ons using it (plain data, for BundleCheck)."""
    found: dict[tuple[str, str | None], Need] = {}
    for name, addon in sorted(resolved.addons.items()):
        if not addon.registry_url:
            continue
        key = (addon.registry_url, addon.credential_name)
        need = found.setdefault(key, Need(addon.registry_url, addon.credential_name, at=addon.defined_at))
        need.addons.append(name)
    return [n.to_dict() for n in found.values()]


def _error(need: Need, code: str, message: str, hint: str) -> dict[str, Any]:
    file, _, line = need.at.rpartition(":")
    return {
        "severity": "error",
        "code": code,
        "message": message,
        "file": file or None,
        "line": int(line) if line.isdigit() else None,
        "column": None,
        "path": "registry_credential_name",
        "hint": hint,
    }


def _github_token(row: GitCredential | None) -> bool:
    return (
        row is not None
        and row.kind == "token"
        and any(credhosts.matches(b, "https://github.com/") for b in row.hosts or [])
    )


def resolve(
    session: Session,
    box: SecretBox,
    needs: Iterable[dict[str, Any]],
    *,
    git_credential: GitCredential | None,
    loopback_http: bool,
    ghcr_fallback: bool,
) -> tuple[dict[str, dict[str, str]], list[dict[str, Any]]]:
    """The opened credential per registry URL, and the validation errors (missing credential, a
    credential not bound to the registry, a Git credential named for a registry)."""
    creds: dict[str, dict[str, str]] = {}
    errors: list[dict[str, Any]] = []
    for raw in needs:
        need = Need.of(raw)
        who = ", ".join(need.addons)
        if need.credential is None:
            target = _target(need.url)
            on_ghcr = target is not None and target.scheme == "oci" and target.host == GHCR_HOST
            if ghcr_fallback and on_ghcr and git_credential is not None and _github_token(git_credential):
                creds[need.url] = {
                    "username": git_credential.username or "moorage",
                    "password": store.secret_of(box, git_credential).reveal(),
                }
            continue
        row = session.scalar(select(GitCredential).where(GitCredential.name == need.credential))
        if row is None:
            errors.append(
                _error(
                    need,
                    "registry-credential-missing",
                    f"registry {need.url} of add-on(s) {who} names credential '{need.credential}', which "
                    "does not exist on this server",
                    f"create it: moorage credentials create {need.credential} --kind "
                    f"{'oci' if need.url.startswith('oci://') else 'helm'} --host HOST --username USER",
                )
            )
            continue
        why = store.credential_refusal(row, need.url, loopback_http=loopback_http, git=False)
        if why is not None:
            errors.append(
                _error(
                    need, "registry-credential-refused", f"registry {need.url} of add-on(s) {who}: {why}", ""
                )
            )
            continue
        entry = {
            "username": row.username or "",
            "password": store.secret_of(box, row).reveal(),
        }
        if row.ca_bundle:
            entry["ca_bundle"] = row.ca_bundle
        key = store.client_key_of(box, row)
        if row.client_cert and key is not None:
            entry["client_cert"] = row.client_cert
            entry["client_key"] = key.reveal()
        creds[need.url] = entry
    return creds, errors


def _target(url: str) -> credhosts.Target | None:
    try:
        return credhosts.target_of(url)
    except credhosts.BindingError:
        return None


def git_credential_of(session: Session, cluster: Cluster) -> GitCredential | None:
    repo = session.scalar(select(GitRepository).where(GitRepository.cluster_id == cluster.id))
    return repo.credential if repo is not None else None


# --------------------------------------------------------------------------- sealing for the agent


def _bech32_polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def _bech32(hrp: str, data: bytes) -> str:
    bits, acc, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod([*expanded, *out, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in out + checksum)


def agent_identity(box: SecretBox, cluster: Cluster) -> str:
    """The age identity (AGE-SECRET-KEY-1…) the cluster's agent opens its job credentials with."""
    key = box.derive_key(f"agent-seal:{cluster.id}:{cluster.agent_token_hash}")
    return _bech32("age-secret-key-", key).upper()


def seal_for_agent(box: SecretBox, cluster: Cluster, creds: dict[str, dict[str, str]]) -> str:
    recipient = x25519.Identity.from_str(agent_identity(box, cluster)).to_public()
    return base64.b64encode(pyrage.encrypt(json.dumps(creds).encode(), [recipient])).decode()


def sealed_payload(
    session: Session,
    box: SecretBox,
    cluster: Cluster,
    needs: Iterable[dict[str, Any]],
    *,
    loopback_http: bool,
    ghcr_fallback: bool,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The payload entry carrying the sealed credentials ({} when none is needed), and the errors."""
    creds, errors = resolve(
        session,
        box,
        needs,
        git_credential=git_credential_of(session, cluster),
        loopback_http=loopback_http,
        ghcr_fallback=ghcr_fallback,
    )
    if errors or not creds:
        return {}, errors
    return {PAYLOAD_KEY: seal_for_agent(box, cluster, creds)}, []


# --------------------------------------------------------------------------- a job's charts, checked

SCHEMAS = SchemaCache()  # one per server process: chart versions do not change


def vet_for(policy: egress.EgressPolicy) -> Vet:
    """The server's egress policy for chart hosts: every connection of a fetch is checked."""

    async def vet(host: str, port: int) -> list[str]:
        try:
            return await egress.vet(host, port, policy)
        except egress.EgressRefused as e:
            raise ChartSourceError(
                host, "unreachable", f"the server may not connect there: {e.message}"
            ) from None

    return vet


async def prepare_job(
    db: Callable[[Callable[[Session], Any]], Awaitable[Any]],
    box: SecretBox,
    cluster_of: Callable[[Session], Cluster],
    registries: list[dict[str, Any]],
    resolved: ResolvedCluster | None,
    *,
    policy: egress.EgressPolicy,
    ghcr_fallback: bool,
    check_schemas: bool = True,
) -> tuple[dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]:
    """What a sync job of this definition needs from the server: its registries' credentials (sealed
    for the agent), after checking each add-on's values against its chart's schema. Returns the
    payload entry, the errors (missing or unbound credentials, schema violations, charts refused or
    not found) and warnings (a registry the server cannot reach: the agent may)."""
    loopback = store.loopback_http(policy)

    def work(session: Session) -> tuple[Cluster, dict[str, dict[str, str]], list[dict[str, Any]]]:
        cluster = cluster_of(session)
        creds, errors = resolve(
            session,
            box,
            registries,
            git_credential=git_credential_of(session, cluster),
            loopback_http=loopback,
            ghcr_fallback=ghcr_fallback,
        )
        return cluster, creds, errors

    cluster, creds, errors = await db(work)
    if errors:
        return {}, errors, []
    warnings: list[dict[str, Any]] = []
    if check_schemas and resolved is not None:
        issues = await check_charts(
            resolved,
            auth_for=lambda url: RegistryAuth.from_dict(creds[url]) if url in creds else None,
            cache=SCHEMAS,
            vet=vet_for(policy),
            unreachable_is_error=False,
        )
        errors = [i.to_dict() for i in issues if i.severity is Severity.ERROR]
        warnings = [i.to_dict() for i in issues if i.severity is Severity.WARNING]
        if errors:
            return {}, errors, warnings
    if not creds:
        return {}, [], warnings
    return {PAYLOAD_KEY: seal_for_agent(box, cluster, creds)}, [], warnings
