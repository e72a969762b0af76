"""The simulation study on Dask: replicates per minute with 1 and 2 workers, and the compile saved.

For each number of workers a LocalCluster is started and warmed by a study of one replicate
per worker (each worker builds and compiles its NUTS model there, once); then a fresh study of
R replicates is timed on the same cluster, whose workers reuse their compiled models.
Throughput is R / wall seconds; the speedup is 2 workers' throughput over 1 worker's (goal
`GOAL_SPEEDUP`). One measurement per row: the study is minutes long, so rows are not repeated.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from analysis.simulation import StudySettings, run_study
from analysis.simulation_store import open_store

WORKERS = (1, 2)
GOAL_SPEEDUP = 1.7
"""Two workers should give at least this many times one worker's replicates per minute."""

QUICK = StudySettings(replicates=4, n_points=100, draws=30, tune=30, bootstrap=20, vb_draws=400)
FULL = StudySettings(replicates=8)
"""The timed studies: --quick's tiny one, and the command's defaults (n = 500) with R = 8."""


def method_seconds(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per replicate of every method over the records."""
    names = sorted({name for record in records for name in record["methods"]})
    return {
        name: statistics.median(
            r["methods"][name]["seconds"] for r in records if name in r["methods"]
        )
        for name in names
    }


def measure(workers: int, settings: StudySettings, scratch: Path) -> dict[str, Any]:
    """Warm a LocalCluster of `workers`, then time a study of settings.replicates on it."""
    from distributed import Client, LocalCluster

    load_before = os.getloadavg()[0]
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            memory_limit=0,
        ) as cluster,
        Client(cluster),
    ):
        warm = dataclasses.replace(settings, replicates=workers)
        warm_folder = scratch / f"warm-{workers}"
        run_study(warm, warm_folder, scheduler=cluster.scheduler_address)
        started = time.perf_counter()
        timed_folder = scratch / f"timed-{workers}"
        run = run_study(settings, timed_folder, scheduler=cluster.scheduler_address)
        wall = time.perf_counter() - started
    first = open_store(warm_folder, warm).records()
    later = open_store(timed_folder, settings).records()
    nuts_first = [r["methods"]["nuts"] for r in first if "nuts" in r["methods"]]
    return {
        "workers": workers,
        "replicates": run.computed,
        "n_points": settings.n_points,
        "wall_seconds": wall,
        "replicates_per_minute": 60.0 * run.computed / wall,
        "method_seconds": method_seconds(later),
        "nuts_first_seconds": statistics.median(e["seconds"] for e in nuts_first)
        if nuts_first
        else None,
        "nuts_compile_seconds": statistics.median(e["compile_seconds"] for e in nuts_first)
        if nuts_first
        else None,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }


def run(quick: bool) -> dict[str, Any]:
    """Both rows, the speedup and the goal."""
    settings = QUICK if quick else FULL
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for workers in WORKERS:
            print(f"simulate: {workers} worker(s), {settings.replicates} replicates", flush=True)
            rows.append(measure(workers, settings, Path(scratch)))
            print(f"  {rows[-1]}", flush=True)
    speedup = rows[1]["replicates_per_minute"] / rows[0]["replicates_per_minute"]
    return {
        "settings": settings.as_dict(),
        "rows": rows,
        "speedup": speedup,
        "goal_speedup": GOAL_SPEEDUP,
        "goal_met": speedup >= GOAL_SPEEDUP,
    }
