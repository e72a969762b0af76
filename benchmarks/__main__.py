"""`python -m benchmarks`: run the benchmarks and write results.md, results.json (and the plot).

Sections: em (EM vs scikit-learn), vb (VB against EM and scikit-learn), nuts (ESS per second
per formulation and sampler), e2e (`gmm-compare` cold and warm), scaling (cost against n),
bootstrap (EM's bootstrap time and standard errors on seed-7907), simulate (the simulation
study's replicates per minute on 1 and 2 Dask workers). `--quick` shrinks every size
for a check that the machinery works; its numbers are not the committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import (
    em_speed,
    end_to_end,
    machine,
    nuts,
    report,
    scaling,
    selection,
    simulation,
    uncertainty,
    variational,
)

SECTIONS = ("em", "vb", "nuts", "e2e", "scaling", "bootstrap", "simulate", "select")
HERE = Path(__file__).resolve().parent
# Other NUTS implementations run in a throwaway overlay environment (uv run --with), so that
# installing them never changes the project's environment (with nutpie installed, pm.sample's
# default sampler would silently change for everyone else).
OTHER_SAMPLERS = {"nutpie": "nutpie", "numpyro": "numpyro"}
NUTS_RUNS = (
    # formulation, sampler, PyTensor backend, mass matrix (None: the sampler's default)
    ("ours", "default", None, None),
    ("ours", "default", None, "diag"),
    ("ours", "default-pymc", None, None),
    ("ours", "default-pymc", "numba", None),
    ("ours", "default-pymc", None, "diag"),
    ("tutorial", "pymc", None, None),
    ("tutorial", "pymc", None, "full"),
    ("vectorised", "pymc", "numba", None),
    ("vectorised", "pymc", "numba", "full"),
)
"""The runs: the project's (nutpie over the hand-written density, then PyMC's NUTS over it or
over PyTensor's compile of the model), the tutorial's and the vectorised formulation. The C
backend is left out: in the run of 2026-11-21 (see the git history of results.md) it reached
x0.02 of the tutorial's ESS per second, at 173 s a run."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.*")
    parser.add_argument("--em-blas-threads", type=int, default=1, help="0: library default")
    parser.add_argument("--nuts-draws", type=int, default=None)
    parser.add_argument("--nuts-tune", type=int, default=None)
    parser.add_argument("--nuts-chains", type=int, default=2)
    parser.add_argument("--nuts-repeats", type=int, default=1, help="runs per row (medians)")
    parser.add_argument(
        "--other-samplers", default="nutpie,numpyro", help="'' to skip nutpie/numpyro"
    )
    parser.add_argument("--note", default="", help="a sentence about the run, for results.md")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"--only takes {', '.join(SECTIONS)}; unknown: {', '.join(sorted(unknown))}")
    return args


def nuts_settings(args: argparse.Namespace) -> nuts.NutsSettings:
    """Draws, tuning and chains for the efficiency table (smaller with --quick)."""
    default = 50 if args.quick else 1000
    return nuts.NutsSettings(
        draws=args.nuts_draws or default, tune=args.nuts_tune or default, chains=args.nuts_chains
    )


def run_em(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The EM table, with BLAS threads limited as asked."""
    cases = em_speed.QUICK_CASES if args.quick else em_speed.FULL_CASES
    return with_blas_threads(args, lambda: em_speed.run_all(cases))


def with_blas_threads(args: argparse.Namespace, measure: Any) -> Any:
    """measure() with BLAS limited to --em-blas-threads threads (0: the library default)."""
    if args.em_blas_threads <= 0:
        return measure()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.em_blas_threads, user_api="blas"):
        return measure()


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from repeated runs: medians of the numbers, all runs kept."""
    good = [run for run in runs if "error" not in run]
    if not good:
        return runs[-1]
    row = dict(good[0])
    for key in (
        "min_bulk_ess",
        "sampling_seconds",
        "total_seconds",
        "ess_per_sampling_second",
        "ess_per_total_second",
        "gradient_evaluations",
        "gradient_seconds",
    ):
        row[key] = statistics.median(run[key] or 0.0 for run in good)
    row["divergences"] = max(run["divergences"] or 0.0 for run in good)
    row["repeats"] = len(good)
    row["runs"] = runs
    return row


def run_nuts(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """The NUTS table: our runs, the tutorial's, and other samplers if they install.

    Round r runs every row once, with seed 7907 + r, so the medians cover the spread of ESS
    across seeds as well as the timing noise, and a slow spell of the machine hits all rows.
    """
    settings = nuts_settings(args)
    configurations = [(*run, None) for run in NUTS_RUNS]
    notes = []
    uv = shutil.which("uv")
    for sampler in filter(None, args.other_samplers.split(",")):
        package = OTHER_SAMPLERS[sampler]
        python = None if uv is None else [uv, "run", "--quiet", "--with", package, "python"]
        for mass_matrix in nuts.MASS_MATRICES[sampler]:
            configurations.append(("ours", sampler, None, mass_matrix, python))
        notes.append(
            f"`{sampler}` ran in a throwaway overlay environment (`uv run --with {package}`); "
            "the project's environment does not install it."
        )
    runs: list[list[dict[str, Any]]] = [[] for _ in configurations]
    for repeat in range(args.nuts_repeats):  # round by round, so drift hits every row alike
        seeded = dataclasses.replace(settings, seed=settings.seed + repeat)
        for row_runs, (formulation, sampler, backend, mass_matrix, python) in zip(
            runs, configurations, strict=True
        ):
            print(f"NUTS #{repeat + 1}: {formulation} / {sampler} / {mass_matrix}", flush=True)
            row_runs.append(
                nuts.run_in_subprocess(formulation, sampler, seeded, backend, mass_matrix, python)
            )
            print(f"  {row_runs[-1]}", flush=True)
    rows = [median_row(row_runs) for row_runs in runs]
    return rows, notes


def run_scaling(args: argparse.Namespace, out: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The scaling table and its log-log plot."""
    sizes = (200, 400) if args.quick else scaling.SIZES
    draws = 30 if args.quick else 300
    settings = nuts.NutsSettings(draws=draws, tune=draws, chains=args.nuts_chains)
    rows = scaling.run(sizes, settings, rounds=1 if args.quick else 3)
    name = "scaling.png"
    scaling.plot(rows, out / name)
    return rows, name


SECTION_KEYS = {
    "em": ("em",),
    "vb": ("vb",),
    "nuts": ("nuts", "nuts_notes"),
    "e2e": ("end_to_end",),
    "scaling": ("scaling", "scaling_plot"),
    "bootstrap": ("bootstrap",),
    "simulate": ("simulate",),
    "select": ("select",),
}


def keep_previous_sections(results: dict[str, Any], path: Path, sections: list[str]) -> None:
    """Carry over, from an earlier results.json, the sections this run does not measure."""
    if not path.exists() or set(sections) == set(SECTIONS):
        return
    previous = json.loads(path.read_text())
    kept = [
        section
        for section in SECTIONS
        if section not in sections and SECTION_KEYS[section][0] in previous
    ]
    for section in kept:
        for key in SECTION_KEYS[section]:
            if key in previous:
                results[key] = previous[key]
    if kept:
        earlier = [note for note in previous.get("notes", []) if note.startswith("Sections ")]
        results.setdefault("notes", []).extend(earlier)
        results["notes"].append(
            f"Sections {', '.join(kept)} are kept from the run of {previous['started']} "
            f"(`{previous['command']}`); this run measured {', '.join(sections)}."
        )


def save(results: dict[str, Any], out: Path, started: float) -> None:
    """Write results.json and results.md with what has been measured so far."""
    results["elapsed_seconds"] = time.perf_counter() - started
    report.write_json(results, out / "results.json")
    report.write_markdown(results, out / "results.md")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections and write the results files."""
    args = parse(argv)
    sections = args.only.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine.describe(), "em_blas_threads": args.em_blas_threads or "default"},
    }
    if args.note:
        results["machine"]["note"] = args.note
    keep_previous_sections(results, args.out / "results.json", sections)
    if "em" in sections:
        results["em"] = run_em(args)
        save(results, args.out, started)
    if "vb" in sections:
        results["vb"] = with_blas_threads(args, lambda: variational.run(args.quick))
        save(results, args.out, started)
    if "nuts" in sections:
        results["nuts"], results["nuts_notes"] = run_nuts(args)
        save(results, args.out, started)
    if "scaling" in sections:
        results["scaling"], results["scaling_plot"] = run_scaling(args, args.out)
        save(results, args.out, started)
    if "bootstrap" in sections:
        print("bootstrap: seed-7907, n_jobs 1 and 2", flush=True)
        results["bootstrap"] = uncertainty.run(*((50, 1) if args.quick else (999, 3)))
        save(results, args.out, started)
    if "simulate" in sections:
        results["simulate"] = simulation.run(args.quick)
        save(results, args.out, started)
    if "select" in sections:
        print("select: gmm-compare select on seed-7907, warm", flush=True)
        results["select"] = selection.run(args.quick)
        save(results, args.out, started)
    if "e2e" in sections:
        print("end to end: gmm-compare cold, then warm", flush=True)
        results["end_to_end"] = end_to_end.cold_and_warm()
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    save(results, args.out, started)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
