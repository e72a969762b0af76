"""`gmm-compare simulate` and its Dask cluster: Ctrl-C at a terminal, an unreachable scheduler.

Issue 23, case 17: Ctrl-C printed a traceback from every Dask worker (a terminal sends SIGINT
to the whole process group, workers included), and an unreachable `--scheduler` left an empty
store behind. The waits are bounded only so that a hung command fails the test instead of
hanging it; nothing here measures time. Only 127.0.0.1 addresses are used.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.simulation import StudySettings, run_replicate
from analysis.simulation_store import REPLICATES, open_store

pytestmark = pytest.mark.sampling  # slow: Dask clusters, a 20 s connection timeout

GMM_COMPARE = Path(sys.executable).with_name("gmm-compare")
PATIENCE = 300.0
"""Seconds before a state that never comes fails the test (liveness only)."""
UNREACHABLE = "tcp://127.0.0.1:1"
"""A scheduler address nothing listens on."""
EM_ONLY = ("--methods", "em", "--bootstrap", "0", "-n", "100")


def live_members(group: int) -> list[int]:
    """The processes of a process group that are alive (running, not zombies)."""
    members = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            # /proc/PID/stat: "pid (name) state ppid pgrp ..."; the name may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def wait_until(condition, what: str) -> None:
    """Return once condition() is true; fail after PATIENCE seconds (a hang guard)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


@pytest.fixture
def session():
    """Start commands in their own process group (as a terminal does); kill what a failed
    test leaves."""
    started: list[subprocess.Popen] = []

    def start(*args: object) -> subprocess.Popen:
        process = subprocess.Popen(
            [str(GMM_COMPARE), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_ctrl_c_stops_simulate_in_one_line_and_no_worker_remains(session, tmp_path):
    # Before: "Process Dask Worker process (from Nanny): Traceback ... KeyboardInterrupt" from
    # each worker, then the command's own line.
    out = tmp_path / "study"
    sizes = ("-r", "500", "-n", "200", "--methods", "em,vb", "--bootstrap", "20")
    process = session("simulate", *sizes, "--workers", "2", "-q", "--out", out)
    wait_until(lambda: any((out / REPLICATES).glob("replicate-*.json")), "a replicate stored")
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C at a terminal does
    _, stderr = process.communicate(timeout=PATIENCE)
    assert process.returncode == 130, stderr
    assert stderr == (
        f"gmm-compare: interrupted (SIGINT); the replicates finished so far are kept in {out}/; "
        "run the same command again to compute only the missing ones\n"
    )
    wait_until(lambda: not live_members(process.pid), "every process of the group gone")
    assert any((out / REPLICATES).glob("replicate-*.json"))


def snapshot(folder: Path) -> list[tuple[str, bytes]]:
    """Every file under folder, with its bytes."""
    return sorted(
        (str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("where", ["new", "existing"])
def test_an_unreachable_scheduler_is_one_line_and_leaves_nothing(tmp_path, capsys, where):
    # Before: exit 2, but a new store (folders, study.json, manifest) was left behind, and an
    # existing study's study.json was rewritten for the run that never started.
    parent = tmp_path / "parent"
    out = parent / "study"
    before = None
    if where == "existing":
        settings = StudySettings(replicates=1, n_points=100, methods=("em",), bootstrap=0)
        open_store(out, settings).write(run_replicate(settings, 1))
        before = snapshot(out)
    run = ["simulate", "-r", "2", *EM_ONLY, "--scheduler", UNREACHABLE, "--out", str(out)]
    assert main(run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"gmm-compare: error: cannot reach the Dask scheduler '{UNREACHABLE}'")
    if where == "new":
        assert not parent.exists()
    else:
        assert snapshot(out) == before
