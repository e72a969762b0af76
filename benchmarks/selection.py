"""Choosing K end to end: `gmm-compare select` on seed-7907, K = 1..6 by EM, VB and NUTS, warm.

Every K is a model of its own, so one untimed run first fills PyTensor's compile cache (as a
user's first run would); then `ROUNDS` timed runs of the whole command. Reported: the median
wall seconds against `GOAL_SECONDS`, and from each run's selection.json the seconds each method
took, summed over K (median over the rounds), so a slow run shows which method it was.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.end_to_end import command_path

GOAL_SECONDS = 90.0
"""K = 1..6 on seed-7907 with all three methods, warm, on this 2-core machine (issue 14)."""

ROUNDS = 3
FULL_ARGUMENTS = ["select", "seed7907"]
QUICK_ARGUMENTS = ["select", "seed7907", "-k", "1:2", "--draws", "30", "--tune", "30"]
METHOD_SECONDS = {"em": "em_seconds", "vb": "vb_seconds", "nuts": "nuts_seconds"}


def time_select(arguments: list[str], out: Path, timeout: float) -> dict[str, Any]:
    """Wall seconds of one `gmm-compare select` run and each method's seconds summed over K."""
    command = [*command_path(), *arguments, "--out", str(out), "--quiet"]
    begin = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - begin
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {last}")
    rows = json.loads((out / "selection.json").read_text())["rows"]
    return {
        "seconds": seconds,
        "method_seconds": {
            name: sum(row[key] or 0.0 for row in rows) for name, key in METHOD_SECONDS.items()
        },
    }


def run(quick: bool, timeout: float = 1800) -> dict[str, Any]:
    """One untimed run to warm the cache, then the timed rounds; medians and the goal."""
    arguments = QUICK_ARGUMENTS if quick else FULL_ARGUMENTS
    rounds = 1 if quick else ROUNDS
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        time_select(arguments, Path(scratch) / "warm-up", timeout)
        runs = [
            time_select(arguments, Path(scratch) / f"round-{index}", timeout)
            for index in range(rounds)
        ]
    median = statistics.median(r["seconds"] for r in runs)
    return {
        "command": " ".join(["gmm-compare", *arguments]),
        "runs": runs,
        "median_seconds": median,
        "method_seconds": {
            name: statistics.median(r["method_seconds"][name] for r in runs)
            for name in METHOD_SECONDS
        },
        "goal_seconds": GOAL_SECONDS,
        "goal_met": median <= GOAL_SECONDS,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
