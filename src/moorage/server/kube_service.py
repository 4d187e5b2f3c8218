"""kubectl tokens and the proxy's audit trail, as domain functions over a Session.

A kubectl token (`mrgk_…`) is made by a signed-in user or an API token for one cluster, expires,
and can be revoked. At every use it is resolved again to whoever made it: a user's current role
(a disabled or deleted user's token stops working), an API token's scope (a revoked token's kubectl
tokens stop working). The role becomes the Kubernetes group the agent impersonates."""

import dataclasses
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moorage.server import service, tokens
from moorage.server.auth import Principal
from moorage.server.db.kube_models import KubeAudit, KubeToken
from moorage.server.db.models import ApiToken, Cluster, User, utcnow
from moorage.spec import kubeproxy

KUBE_TOKEN_PREFIX = "mrgk_"  # noqa: S105 (a prefix, not a secret)
_ROLE_ORDER = ("admin", "write", "read")


@dataclass(frozen=True)
class KubeIdentity:
    """Who a proxied request acts as. Never a secret."""

    token_id: str | None
    principal: str
    cluster_id: str
    cluster_name: str
    role: str
    user: str  # Impersonate-User
    groups: tuple[str, ...]  # Impersonate-Group
    offline: str | None = None  # why the cluster's agent cannot answer now (read with the token)
    kube_token: bool = False  # token_id is a kubectl token's (checked again while a stream lasts)


def offline_reason(cluster: Cluster, now: datetime) -> str | None:
    if service.cluster_state(cluster, now) != "online":
        return f"the agent of cluster {cluster.name} is not connected; kubectl goes through the agent"
    return None


def _highest(scopes: list[str] | tuple[str, ...]) -> str | None:
    return next((r for r in _ROLE_ORDER if r in scopes), None)


def create_kube_token(
    session: Session,
    hasher: tokens.TokenHasher,
    who: Principal,
    cluster_name: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> tuple[KubeToken, str, KubeIdentity]:
    """A new kubectl token of `who` for one cluster; the plaintext is returned here and never again."""
    now = now or utcnow()
    cluster = service.get_cluster(session, cluster_name)
    user_id = None
    if who.username is not None:
        user = session.scalar(select(User).where(User.username == who.username))
        if user is None or user.disabled_at is not None:
            raise service.Invalid("your user no longer exists or is disabled")
        user_id = user.id
    elif who.token_id is None:
        raise service.Invalid("a kubectl token needs a signed-in user or an API token")
    plaintext = KUBE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = KubeToken(
        token_hash=hasher.hash(plaintext),
        principal=who.name,
        user_id=user_id,
        api_token_id=None if user_id else who.token_id,
        cluster_id=cluster.id,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    identity = resolve(session, row, cluster, now)
    if isinstance(identity, str):
        raise service.Invalid(identity)
    return row, plaintext, identity


def resolve(session: Session, row: KubeToken, cluster: Cluster, now: datetime) -> KubeIdentity | str:
    """The identity a live token acts as, or why it does not work (a message for the 401)."""
    if row.revoked_at is not None:
        return "the kubectl token was revoked; make a new kubeconfig with `moorage kubeconfig`"
    if row.expires_at <= now:
        return "the kubectl token expired; make a new kubeconfig with `moorage kubeconfig`"
    if row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is None or user.disabled_at is not None:
            return "the user of this kubectl token no longer exists or is disabled"
        kind, name, role = "user", user.username, user.role
    else:
        api = session.get(ApiToken, row.api_token_id) if row.api_token_id else None
        if api is None or api.revoked_at is not None:
            return "the API token that made this kubectl token was revoked"
        role_or_none = _highest(list(api.scopes))
        if role_or_none is None:
            return "the API token that made this kubectl token has no usable scope"
        kind, name, role = "token", api.name, role_or_none
    user_name, groups = kubeproxy.impersonation(kind, name, role)  # type: ignore[arg-type]
    return KubeIdentity(row.id, row.principal, cluster.id, cluster.name, role, user_name, tuple(groups))


def authenticate_kube_token(
    session: Session, hasher: tokens.TokenHasher, plaintext: str, cluster_name: str, now: datetime
) -> KubeIdentity | str:
    """The identity of a kubectl token presented for `cluster_name`, or why it is refused."""
    if not plaintext.startswith(KUBE_TOKEN_PREFIX):
        return "this endpoint takes a kubectl token; make a kubeconfig with `moorage kubeconfig CLUSTER`"
    row = session.scalar(select(KubeToken).where(KubeToken.token_hash == hasher.hash(plaintext)))
    if row is None or not hasher.matches(row.token_hash, plaintext):
        return "unknown kubectl token"
    cluster = session.get(Cluster, row.cluster_id)
    if cluster is None or cluster.name != cluster_name:
        return f"this kubectl token is not for cluster {cluster_name}"
    identity = resolve(session, row, cluster, now)
    if isinstance(identity, str):
        return identity
    if row.last_used_at is None or now - row.last_used_at >= service.LAST_USED_RESOLUTION:
        row.last_used_at = now
    return dataclasses.replace(identity, offline=offline_reason(cluster, now), kube_token=True)


def still_valid(session: Session, token_id: str, now: datetime) -> str | None:
    """Why a kubectl token no longer works (revoked, expired, its user or API token gone), or None:
    asked again while a watch, `logs -f`, exec or port-forward of it stays open."""
    row = session.get(KubeToken, token_id)
    cluster = session.get(Cluster, row.cluster_id) if row is not None else None
    if row is None or cluster is None:
        return "the kubectl token no longer exists"
    found = resolve(session, row, cluster, now)
    return found if isinstance(found, str) else None


def _owned_by(session: Session, who: Principal) -> Any:
    """The SQL condition "made by this caller": by user id or by API token id (names repeat)."""
    if who.username is not None:
        user_id = session.scalar(select(User.id).where(User.username == who.username))
        return KubeToken.user_id == user_id
    return KubeToken.api_token_id == who.token_id


def list_kube_tokens(session: Session, who: Principal) -> list[KubeToken]:
    query = select(KubeToken).order_by(KubeToken.created_at)
    if not tokens.granted(who.scopes, tokens.Scope.ADMIN):
        query = query.where(_owned_by(session, who))
    return list(session.scalars(query))


def revoke_kube_token(session: Session, who: Principal, token_id: str, now: datetime) -> KubeToken:
    query = select(KubeToken).where(KubeToken.id == token_id)
    if not tokens.granted(who.scopes, tokens.Scope.ADMIN):
        query = query.where(_owned_by(session, who))
    row = session.scalar(query)
    if row is None:
        raise service.NotFound(f"no kubectl token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def record(session: Session, *, rows: list[KubeAudit]) -> None:
    session.add_all(rows)


def list_audit(
    session: Session,
    *,
    cluster: str | None,
    principal: str | None,
    verb: str | None,
    since: datetime | None,
    limit: int,
) -> list[KubeAudit]:
    query = select(KubeAudit).order_by(KubeAudit.at.desc()).limit(limit)
    if cluster:
        query = query.where(KubeAudit.cluster == cluster)
    if principal:
        query = query.where(KubeAudit.principal == principal)
    if verb:
        query = query.where(KubeAudit.verb == verb)
    if since:
        query = query.where(KubeAudit.at >= since)
    return list(session.scalars(query))
