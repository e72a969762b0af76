"""End to end: wall time of the `gmm-compare` command on seed-7907, cold and warm.

Cold: PyTensor's base compile folder, which holds both its C modules and its Numba cache, and
Numba's own cache (`NUMBA_CACHE_DIR`, where the hand-written density of
`models.posterior_density` is kept) point at a fresh temporary folder, so every function is
compiled from scratch; warm: the same command again with that folder now filled. The shared
caches are never touched (setting only PyTensor's `compiledir`, as this module once did, left
the Numba cache in ~/.pytensor warm).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def command_path() -> list[str]:
    """The installed `gmm-compare` script next to this Python, or `python -m analysis.cli`."""
    script = Path(sys.executable).with_name("gmm-compare")
    return [str(script)] if script.exists() else [sys.executable, "-m", "analysis.cli"]


def run_command(arguments: list[str], cache: Path, out: Path, timeout: float) -> dict[str, Any]:
    """Wall seconds and exit status of one run of the command with the given compile cache."""
    environment = {
        **os.environ,
        "PYTENSOR_FLAGS": f"base_compiledir={cache}",
        "NUMBA_CACHE_DIR": str(cache / "numba-density"),
    }
    command = [*command_path(), *arguments, "--out", str(out), "--quiet"]
    begin = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "returncode": None, "error": f"timed out after {timeout:.0f} s"}
    seconds = time.perf_counter() - begin
    row: dict[str, Any] = {"seconds": seconds, "returncode": done.returncode}
    posterior = out / "posterior.nc"
    if posterior.is_file():
        row["posterior_mb"] = posterior.stat().st_size / 1e6
    if done.returncode != 0:
        row["error"] = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return row


WARM_RUNS = 3
"""Warm runs after the cold one; the warm time is their median (the machine's noise is about
half a second, the goal's margin not much more)."""


def cold_and_warm(arguments: list[str] | None = None, timeout: float = 1800) -> dict[str, Any]:
    """`gmm-compare` with one fresh compile cache: the first run cold, then WARM_RUNS warm.

    "warm" is the warm run of median time; "warm_seconds" lists every warm run's time.
    """
    arguments = arguments or []
    work = Path(tempfile.mkdtemp(prefix="gmm-compare-bench-"))
    try:
        cold = run_command(arguments, work / "cache", work / "cold-report", timeout)
        warm_runs = [
            run_command(arguments, work / "cache", work / f"warm-report-{run}", timeout)
            for run in range(WARM_RUNS)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timed = sorted(
        (run for run in warm_runs if run["seconds"] is not None), key=lambda run: run["seconds"]
    )
    warm = timed[len(timed) // 2] if timed else warm_runs[0]
    ratio = cold["seconds"] / warm["seconds"] if cold["seconds"] and warm["seconds"] else None
    return {
        "command": " ".join(["gmm-compare", *arguments]),
        "cold": cold,
        "warm": warm,
        "warm_seconds": [run["seconds"] for run in warm_runs],
        "cold_over_warm": ratio,
    }
