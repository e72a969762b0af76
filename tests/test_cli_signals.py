"""Interrupts and kills of the installed command: the old report survives, nothing lingers.

Each test starts `gmm-compare` in a subprocess, waits for the phase it wants to interrupt (a
line PyMC logs on stderr, or the figures folder appearing in the staging folder), then sends
the signal. The waits are bounded only so that a hung command fails the test instead of
hanging it; nothing here measures time.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analysis.files import write_manifest

GMM_COMPARE = Path(sys.executable).with_name("gmm-compare")

pytestmark = pytest.mark.sampling

PATIENCE = 600.0  # seconds before a phase that never comes fails the test (liveness only)
LONG_RUN = ("sample", "seed42", "--draws", "200000", "--tune", "100", "--chains", "2")
SMALL = ("--draws", "50", "--tune", "50", "--chains", "2")
SHORT_RUN = ("compare", "seed42", "--draws", "200", "--tune", "200", "--chains", "2")


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_command_outlives_its_test():
    """Kill a command (and what it started) left running by a failed test."""
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            below = descendants(process.pid)
            process.kill()
            process.wait()
            for pid in below:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Command:
    """The command running in a subprocess, its stderr lines collected as they come."""

    def __init__(self, args: tuple[str, ...], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [str(GMM_COMPARE), *args],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        STARTED.append(self.process)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_line(self, text: str) -> None:
        """Block until a stderr line contains text (fail if the command ends first)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.stderr)
                continue
            self.stderr.append(line)
            if text in line:
                return
        pytest.fail(f"no line with {text!r} on stderr: {''.join(self.stderr)}")

    def wait_for_path(self, folder: Path, pattern: str) -> None:
        """Block until a path matching pattern exists in folder."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and not list(folder.glob(pattern)):
            assert self.process.poll() is None, "the command ended before the phase"
            time.sleep(0.05)
        assert list(folder.glob(pattern)), f"{pattern} never appeared"

    def finish(self) -> tuple[int, str]:
        """Wait for the exit; its status and the whole stderr."""
        code = self.process.wait(timeout=PATIENCE)
        while True:
            try:
                self.stderr.append(self.lines.get(timeout=1.0))
            except queue.Empty:
                break
        return code, "".join(self.stderr)


def descendants(pid: int) -> set[int]:
    """Ids of every process below pid (children, their children, ...), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_for_children(pid: int) -> set[int]:
    """The processes below pid, once there are some (the sampler's workers have started)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = descendants(pid)
        if found:
            return found
        time.sleep(0.05)
    pytest.fail("the command started no worker processes")


def wait_for_thread(pid: int, prefix: str) -> None:
    """Block until the process has a thread whose name starts with prefix (from /proc)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        names = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                names.append((task / "comm").read_text().strip())
        if any(name.startswith(prefix) for name in names):
            return
        assert alive(pid), "the command ended before the phase"
        time.sleep(0.05)
    pytest.fail(f"no thread named {prefix}* appeared")


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: set[int]) -> set[int]:
    """The processes among pids still alive after waiting up to PATIENCE for them to exit."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return {p for p in pids if alive(p)}


def existing_report(cwd: Path) -> tuple[Path, list[tuple[str, bytes]]]:
    """A folder standing for a good earlier report, and a snapshot of its bytes."""
    folder = cwd / "out"
    folder.mkdir()
    (folder / "index.html").write_text("<p>good report</p>")
    write_manifest(folder)
    return folder, snapshot(folder)


def snapshot(folder: Path) -> list[tuple[str, bytes]]:
    """Every file's name and bytes."""
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


@pytest.mark.parametrize(
    ("signum", "phase"),
    [
        (signal.SIGINT, "sampling"),
        (signal.SIGTERM, "sampling"),
        (signal.SIGTERM, "after sampling"),
        (signal.SIGINT, "figures"),
    ],
)
def test_an_interrupt_in_any_phase_exits_128_plus_signal_and_keeps_the_report(
    tmp_path, signum, phase
):
    # Before: PyMC swallowed SIGINT while sampling and the truncated run was published with
    # exit 0; SIGTERM killed the process and left its staging folder behind.
    folder, before = existing_report(tmp_path)
    args = LONG_RUN if phase == "sampling" else SHORT_RUN
    command = Command((*args, "--out", "out"), tmp_path)
    if phase == "sampling":
        command.wait_for_line("NUTS: ")
        wait_for_thread(command.process.pid, "nutpie-worker")  # inside nutpie's chains
    elif phase == "after sampling":  # the twin's NUTS, membership, saving, the comparison
        command.wait_for_line("NUTS under VB's priors")
    else:
        command.wait_for_path(tmp_path, ".out.partial-*/figures")
    below = descendants(command.process.pid)
    command.process.send_signal(signum)
    code, stderr = command.finish()
    assert code == 128 + signum, stderr
    assert f"gmm-compare: interrupted ({signal.Signals(signum).name})" in stderr
    assert "Traceback" not in stderr
    assert snapshot(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder
    assert wait_gone(below) == set()


def test_after_a_kill_no_child_lingers_and_the_next_run_cleans_up(tmp_path):
    command = Command((*LONG_RUN, "--bootstrap", "100000", "--out", "out"), tmp_path)
    command.wait_for_line("EM uncertainty")
    workers = wait_for_children(command.process.pid)  # the bootstrap, forked beside NUTS
    os.kill(command.process.pid, signal.SIGKILL)
    command.finish()
    assert wait_gone(workers) == set()
    stale = [p.name for p in tmp_path.glob(".out.partial-*")]
    assert stale  # the killed run could not clean up after itself
    result = subprocess.run(
        [str(GMM_COMPARE), "sample", "seed42", *SMALL, "-q", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
