"""A throwaway PostgreSQL server (Debian's postgresql) for tests: initdb into a temporary directory,
trust authentication on a free loopback port, stopped and removed afterwards.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def available() -> str | None:
    """None when PostgreSQL can be started here, else the reason it cannot."""
    if not _binary("initdb") or not _binary("pg_ctl"):
        return "PostgreSQL is not installed (Debian package postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


_RUNNING: dict[str, tuple[Path, str, Path]] = {}  # url → data directory, options, log


def _reachable_tmp() -> str:
    """$TMPDIR when every folder above it lets others through (the postgres user must reach its data
    directory), else /tmp."""
    folder = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & 0o001 for p in (folder, *folder.parents)):
        return str(folder)
    return "/tmp"  # a private folder is made inside it


def data_dir(url: str) -> Path:
    """The data directory of the running server of `url`."""
    return _RUNNING[url][0]


def server_pid(url: str) -> int:
    """The pid of the postmaster of `url` (its backends are its children)."""
    data, _, _ = _RUNNING[url]
    return int((data / "postmaster.pid").read_text().split()[0])


def restart(url: str, *, down_seconds: float = 0.0) -> None:
    """Stop the server of `url` at once (as a crash would: `-m immediate`), then start it again."""
    data, options, log = _RUNNING[url]
    pg_ctl = _binary("pg_ctl")
    assert pg_ctl is not None
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), check=True)
    time.sleep(down_seconds)
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
        check=True,
        capture_output=True,
    )


@contextmanager
def running_postgres() -> Iterator[str]:
    """Yields a SQLAlchemy URL of a fresh, empty database."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    # not under pytest's tmp_path: its parents are private to root, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="moorage-pg-", dir=_reachable_tmp()))
    base.chmod(0o711)
    data, sockets = base / "pgdata", base / "pgsock"
    data.mkdir(parents=True)
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (base, data, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb is not None
    assert pg_ctl is not None
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sockets} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "pg.log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        _RUNNING[url] = (data, options, base / "pg.log")
        yield url
    finally:
        _RUNNING.pop(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", None)
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
