"""Database: tables, sessions, migrations."""

from moorage.server.db.kube_models import KubeAudit, KubeToken
from moorage.server.db.models import (
    ApiToken,
    Base,
    Cluster,
    GitCredential,
    GitRepository,
    GitSync,
    Job,
    Operation,
)
from moorage.server.db.session import (
    SessionFactory,
    make_engine,
    make_session_factory,
    migrate,
    transaction,
)

__all__ = [
    "ApiToken",
    "Base",
    "Cluster",
    "GitCredential",
    "GitRepository",
    "GitSync",
    "Job",
    "KubeAudit",
    "KubeToken",
    "Operation",
    "SessionFactory",
    "make_engine",
    "make_session_factory",
    "migrate",
    "transaction",
]
