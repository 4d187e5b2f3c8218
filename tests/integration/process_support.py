"""Finding the processes a test started (by a directory their command line or working directory names),
to check that nothing is left running, and to clean up when a test fails."""

import contextlib
import os
import signal
from pathlib import Path


def processes_mentioning(marker: str) -> list[str]:
    """`pid: command line` of the live processes whose command line or working directory names `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (marker in cmdline or cwd.startswith(marker)):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def kill_all(marker: str) -> None:
    """SIGKILL what `processes_mentioning(marker)` finds (a failed test must leave nothing running)."""
    for line in processes_mentioning(marker):
        pid = int(line.split(":", 1)[0])
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
