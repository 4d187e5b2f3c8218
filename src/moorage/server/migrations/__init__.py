"""Alembic migrations of the control plane's database. Run them with `moorage.server.db.migrate(url)`."""
