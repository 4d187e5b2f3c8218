"""What `moorage server` does to its files and logs before it serves (issue 18, items 9 and 12): the
data directory and the database private to the server's user, and no query strings in the access
log."""

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from moorage.server.db import make_engine, migrate
from moorage.server.main import DropQueryString, secure_storage, uvicorn_config
from moorage.server.secretbox import SecretBox
from moorage.server.settings import ServerSettings


@pytest.fixture(autouse=True)
def keep_umask() -> Iterator[None]:
    """secure_storage sets the process umask (as `moorage server` wants); tests put it back."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_and_database_are_private(tmp_path: Path) -> None:
    os.umask(0o022)  # a usual login umask: files 0644, folders 0755
    settings = ServerSettings(data_dir=tmp_path / "data")
    secure_storage(settings)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:  # WAL: the -wal and -shm files appear with the first write
        conn.execute(text("CREATE TABLE probe (x INTEGER)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
        data = tmp_path / "data"
        SecretBox.load_or_create(data)
        (data / "nats").mkdir()
        (data / "nats" / "nats.log").write_text("started")
        assert mode(data) == 0o700
        for name in ("moorage.db", "moorage.db-wal", "moorage.db-shm", "secret.agekey", "nats/nats.log"):
            assert mode(data / name) == 0o600, name
        assert mode(data / "nats") == 0o700
    engine.dispose()


def test_existing_files_readable_by_others_are_fixed_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "nats" / "jetstream").mkdir(parents=True)
    (data / "git").mkdir()
    files = ["moorage.db", "moorage.db-wal", "moorage.db-shm", "secret.agekey", "nats/nats.conf"]
    for name in files:
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    for folder in (data, data / "nats", data / "nats" / "jetstream", data / "git"):
        folder.chmod(0o755)

    with caplog.at_level(logging.WARNING, logger="moorage.server"):
        secure_storage(ServerSettings(data_dir=data))

    for name in files:
        assert mode(data / name) == 0o600, name
    for folder in (data, data / "nats", data / "nats" / "jetstream", data / "git"):
        assert mode(folder) == 0o700, folder
    assert "secret.agekey was mode 644; now 600" in caplog.text


def test_a_database_outside_the_data_directory_is_private_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db" / "control.db"
    secure_storage(ServerSettings(data_dir=tmp_path / "data", database_url=f"sqlite:///{elsewhere}"))
    assert mode(elsewhere) == 0o600
    assert mode(elsewhere.parent) == 0o700


def _access_line(path: str) -> str:
    """What uvicorn's h11/httptools protocols log for a request to `path` (they pass the path with
    its query as the third argument), after the server's filters."""
    logger = logging.getLogger("uvicorn.access")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", path, "1.1", 200)
    finally:
        logger.removeHandler(handler)
    return seen[0]


def test_the_access_log_records_no_query_string(app: FastAPI, tmp_path: Path) -> None:
    uvicorn_config(app, ServerSettings(data_dir=tmp_path))
    line = _access_line("/api/v1/clusters?token=mrg_secret-in-the-url&page=2")
    assert "mrg_secret" not in line
    assert "page=2" not in line
    assert line == '127.0.0.1:50000 - "GET /api/v1/clusters HTTP/1.1" 200'
    uvicorn_config(app, ServerSettings(data_dir=tmp_path))  # a second server: one filter still
    assert sum(isinstance(f, DropQueryString) for f in logging.getLogger("uvicorn.access").filters) == 1


def test_other_log_arguments_are_left_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "%s %s %d", ("a?b", "/p?q", 3), None)
    DropQueryString().filter(record)
    assert record.getMessage() == "a?b /p 3"
