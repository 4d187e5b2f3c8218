"""Database: tables, sessions, migrations."""

from moorage.server.db.models import ApiToken, Base, Cluster, Job, Operation
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
    "Job",
    "Operation",
    "SessionFactory",
    "make_engine",
    "make_session_factory",
    "migrate",
    "transaction",
]
