import os
import time
from pathlib import Path

from moorage.devcluster import process


def test_started_process_is_alive_and_stop_ends_its_whole_group(tmp_path: Path) -> None:
    # the child starts a grandchild: stop() must end both (the component's own helpers too)
    script = "sleep 60 & echo grandchild=$! ; wait"
    p = process.start("demo", ["sh", "-c", script], tmp_path / "demo.log")
    deadline = time.monotonic() + 5
    while "grandchild=" not in p.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    grandchild = int(p.log.read_text().split("grandchild=")[1].split()[0])
    assert process.alive(p)
    process.stop([p], grace_seconds=5)
    assert not process.alive(p)
    assert (
        not Path(f"/proc/{grandchild}").exists()
        or "Z" in Path(f"/proc/{grandchild}/stat").read_text().split()[2]
    )


def test_a_reused_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    p = process.start("short", ["true"], tmp_path / "short.log")
    impostor = process.Started("short", os.getpid(), 1, p.log)  # our pid, but another start time
    assert not process.alive(impostor)


def test_stop_escalates_to_sigkill_when_term_is_ignored(tmp_path: Path) -> None:
    p = process.start("stubborn", ["sh", "-c", "trap '' TERM; echo ready; sleep 60"], tmp_path / "s.log")
    deadline = time.monotonic() + 5
    while "ready" not in p.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    process.stop([p], grace_seconds=0.5)
    assert not process.alive(p)
    assert time.monotonic() - started < 5


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.log_tail(log, lines=3) == "line 97\nline 98\nline 99"
    assert process.log_tail(tmp_path / "missing.log") == ""
