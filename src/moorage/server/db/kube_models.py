"""Tables of the kubectl proxy: kubectl tokens (expiring, revocable, bound to one cluster) and the
audit trail of every proxied request (migration 0007). No request body is ever stored."""

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from moorage.server.db.models import Base, new_id, utcnow


class KubeToken(Base):
    """The credential of a kubeconfig made by `moorage kubeconfig`. It acts as whoever made it: a
    user (`user_id`, with the user's role at the time of each request) or an API token
    (`api_token_id`, with that token's scope); it stops working when they are revoked or disabled."""

    __tablename__ = "kube_tokens"
    __table_args__ = (Index("ix_kube_tokens_principal", "principal"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # like ApiToken.token_hash
    principal: Mapped[str] = mapped_column(String(200))  # "user:<name>" or the API token's name
    user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    api_token_id: Mapped[str | None] = mapped_column(String(32), default=None)
    cluster_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class KubeAudit(Base):
    """One proxied Kubernetes API request: who, where, what, and how it ended."""

    __tablename__ = "kube_audit"
    __table_args__ = (
        Index("ix_kube_audit_at", "at"),
        Index("ix_kube_audit_cluster_at", "cluster", "at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    principal: Mapped[str] = mapped_column(String(200))
    kube_user: Mapped[str] = mapped_column(String(253))  # the impersonated Kubernetes user
    token_id: Mapped[str | None] = mapped_column(String(32), default=None)
    cluster: Mapped[str] = mapped_column(String(63))
    method: Mapped[str] = mapped_column(String(8))
    verb: Mapped[str] = mapped_column(String(32))
    api_group: Mapped[str] = mapped_column(String(253), default="")
    resource: Mapped[str] = mapped_column(String(253), default="")
    subresource: Mapped[str] = mapped_column(String(63), default="")
    namespace: Mapped[str] = mapped_column(String(253), default="")
    name: Mapped[str] = mapped_column(String(253), default="")
    path: Mapped[str] = mapped_column(String(512), default="")  # non-resource requests (/version)
    status: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))  # unary | stream | upgrade
    error: Mapped[str | None] = mapped_column(String(500), default=None)
