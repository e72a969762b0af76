"""The simulation study on Dask: replicates per minute with 1 and 2 workers, and the compile saved.

A LocalCluster of 1 worker and one of 2 are started and every worker is warmed by running
replicate 1 (it builds and compiles its NUTS model there, once); then studies of R replicates
are timed on the two clusters in turn, `ROUNDS` times, the workers reusing their compiled
models. Throughput is R / wall seconds; a round's speedup is 2 workers' throughput over 1
worker's in that round, and the speedup is their median (goal `GOAL_SPEEDUP`).
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from analysis.simulation import StudySettings, run_replicate, run_study
from analysis.simulation_store import open_store

WORKERS = (1, 2)
GOAL_SPEEDUP = 1.7
"""Two workers should give at least this many times one worker's replicates per minute."""

QUICK = StudySettings(replicates=4, n_points=100, draws=30, tune=30, bootstrap=20, vb_draws=400)
FULL = StudySettings(replicates=16)
"""The timed studies: --quick's tiny one, and the command's defaults (n = 500) with R = 16."""

ROUNDS = 3
"""Timed studies per cluster, 1 worker and 2 in turn: this machine's speed drifts by a third
within minutes, so the speedup is the median of the rounds' paired ratios."""


def method_seconds(records: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds per replicate of every method over the records."""
    names = sorted({name for record in records for name in record["methods"]})
    return {
        name: statistics.median(
            r["methods"][name]["seconds"] for r in records if name in r["methods"]
        )
        for name in names
    }


def warmed_cluster(workers: int, settings: StudySettings, stack: ExitStack) -> tuple[str, list]:
    """A LocalCluster of `workers` whose every worker has run replicate 1; its address, records."""
    from distributed import Client, LocalCluster

    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            memory_limit=0,
        )
    )
    client = stack.enter_context(Client(cluster))
    # On every worker, not as tasks: the scheduler may give two warm-up tasks to one worker.
    return cluster.scheduler_address, list(client.run(run_replicate, settings, 1).values())


def time_study(address: str, settings: StudySettings, folder: Path) -> dict[str, Any]:
    """Wall seconds, replicates per minute and records of one study on the cluster at address."""
    started = time.perf_counter()
    run = run_study(settings, folder, scheduler=address)
    wall = time.perf_counter() - started
    return {
        "wall_seconds": wall,
        "replicates": run.computed,
        "replicates_per_minute": 60.0 * run.computed / wall,
        "records": open_store(folder, settings).records(),
    }


def summary_row(workers: int, timings: list[dict[str, Any]], first: list) -> dict[str, Any]:
    """One table row: medians over the rounds, method seconds over every timed replicate."""
    records = [record for timing in timings for record in timing["records"]]
    nuts_first = [r["methods"]["nuts"] for r in first if "nuts" in r["methods"]]
    return {
        "workers": workers,
        "replicates": timings[0]["replicates"],
        "wall_seconds": statistics.median(t["wall_seconds"] for t in timings),
        "replicates_per_minute": statistics.median(t["replicates_per_minute"] for t in timings),
        "rounds_per_minute": [t["replicates_per_minute"] for t in timings],
        "method_seconds": method_seconds(records),
        "compiled_in_timed_study": sum(
            bool(r["methods"].get("nuts", {}).get("first_on_worker")) for r in records
        ),
        "nuts_first_seconds": statistics.median(e["seconds"] for e in nuts_first)
        if nuts_first
        else None,
        "nuts_compile_seconds": statistics.median(e["compile_seconds"] for e in nuts_first)
        if nuts_first
        else None,
    }


def run(quick: bool) -> dict[str, Any]:
    """Both rows, the paired speedup of each round, their median and the goal."""
    settings = QUICK if quick else FULL
    rounds = 1 if quick else ROUNDS
    load_before = os.getloadavg()[0]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        print(f"simulate: warming clusters of {' and '.join(map(str, WORKERS))} workers")
        clusters = {workers: warmed_cluster(workers, settings, stack) for workers in WORKERS}
        timings: dict[int, list[dict[str, Any]]] = {workers: [] for workers in WORKERS}
        for index in range(rounds):
            for workers, (address, _) in clusters.items():
                folder = Path(scratch) / f"round-{index}-workers-{workers}"
                timings[workers].append(time_study(address, settings, folder))
                rate = timings[workers][-1]["replicates_per_minute"]
                print(f"  round {index + 1}, {workers} worker(s): {rate:.2f}/min", flush=True)
    one, two = WORKERS
    ratios = [
        b["replicates_per_minute"] / a["replicates_per_minute"]
        for a, b in zip(timings[one], timings[two], strict=True)
    ]
    speedup = statistics.median(ratios)
    return {
        "settings": settings.as_dict(),
        "rows": [summary_row(w, timings[w], clusters[w][1]) for w in WORKERS],
        "round_speedups": ratios,
        "speedup": speedup,
        "goal_speedup": GOAL_SPEEDUP,
        "goal_met": speedup >= GOAL_SPEEDUP,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
