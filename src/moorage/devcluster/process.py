"""Child processes: start with a log file, tell whether one is still ours, stop a whole process group."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Started:
    component: str
    pid: int
    # /proc start time in clock ticks: tells our process from a later one that reused its pid.
    start_ticks: int
    log: Path


def start(component: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Started:
    """Start `argv` in its own session (so `devcluster up` may exit and `down` can stop the group)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Started(component, proc.pid, _start_ticks(proc.pid) or 0, log)


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces, so split after its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(p: Started) -> bool:
    """True while the process runs and is the one we started (not a zombie, not a reused pid)."""
    ticks = _start_ticks(p.pid)
    if ticks is None:
        _reap(p.pid)  # an exited child of ours stays a zombie until waited for
        return False
    return ticks == p.start_ticks


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; other processes are not ours to wait on.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(processes: Sequence[Started], grace_seconds: float = 10.0) -> None:
    """SIGTERM every process group, wait up to `grace_seconds`, then SIGKILL what is left."""
    running = [p for p in processes if alive(p)]
    for p in running:
        _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if alive(p)]
    for p in running:
        _signal_group(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if alive(p)]
    for p in processes:
        _reap_exited_child(p.pid)


def _reap_exited_child(pid: int) -> None:
    """Wait for a child of ours that is exiting: /proc can stop answering for it a moment before it
    becomes a zombie, and a non-blocking wait at that moment would leave the zombie behind."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child, or already reaped
        if done:
            return
        time.sleep(0.01)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def log_tail(log: Path, lines: int = 20) -> str:
    try:
        with log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
