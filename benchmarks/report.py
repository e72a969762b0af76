"""Writing results.json and results.md: tables of ratios first, absolute times beside them."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from analysis.files import write_text_atomic

GOAL_TIME = 0.5
GOAL_MEMORY = 0.5
GOAL_VB_SEED_SECONDS = 0.05
GOAL_VB_RATIO_TO_EM = 1.5


def write_json(results: dict[str, Any], path: Path) -> Path:
    """results.json: every number the run measured, with the machine description."""
    write_text_atomic(path, json.dumps(results, indent=2, default=float) + "\n")
    return path


def _ms(seconds: float | None) -> str:
    """Seconds as milliseconds with 3 significant figures, or a dash."""
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _x(ratio: float | None) -> str:
    """A ratio such as x0.13."""
    return "-" if ratio is None else f"x{ratio:.2f}"


def _microseconds(seconds: float | None) -> str:
    """A duration such as 45.1 us, or a dash when unknown."""
    return "-" if seconds is None else f"{seconds * 1e6:.1f} us"


def _mib(count: int) -> str:
    """Bytes as MiB."""
    return f"{count / 2**20:.1f} MiB"


def machine_section(machine: dict[str, Any]) -> list[str]:
    """The machine, libraries, BLAS threads and the load others put on it."""
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    busy = machine.get("other_busy_processes") or []
    lines = [
        "## Machine",
        "",
        f"- {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gib']} GiB memory, "
        f"{machine['platform']}, Python {machine['python']}",
        f"- {libraries}",
        f"- BLAS: {machine.get('blas')}; EM timings ran with BLAS limited to "
        f"{machine.get('em_blas_threads')} thread(s) for every method",
        f"- load average at start {machine['load_average']}; other busy processes at start: "
        f"{', '.join(busy) if busy else 'none seen'}",
    ]
    if machine.get("note"):
        lines.append(f"- {machine['note']}")
    return [*lines, ""]


def em_section(rows: list[dict[str, Any]]) -> list[str]:
    """EM per-iteration time and peak memory against scikit-learn and the tutorial style."""
    lines = [
        "## EM: time per iteration and peak memory vs scikit-learn",
        "",
        "Same data, same start, fixed iterations (tol = 0); time = fit wall time / iterations, "
        "median over interleaved rounds; ratio = median of per-round ratios to scikit-learn "
        '`GaussianMixture(covariance_type="full")`; memory = tracemalloc peak of one fit. '
        f"Goals at the two large sizes: time ≤ x{GOAL_TIME}, memory ≤ x{GOAL_MEMORY} at n=1e6.",
        "",
        "| case | iters x rounds | ours | sklearn | tutorial | ours/sklearn time | "
        "tutorial/sklearn time | ours/sklearn memory | tutorial/sklearn memory | "
        "max param diff ours (tutorial) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds, ratio = row["seconds_per_iteration"], row["ratio_to_sklearn"]
        peak, peak_ratio = row["peak_bytes"], row["peak_ratio_to_sklearn"]
        difference = row["largest_difference_to_sklearn"]
        lines.append(
            f"| {row['case']} | {row['iterations']} x {row['rounds']} | "
            f"{_ms(seconds.get('ours'))} | {_ms(seconds.get('sklearn'))} | "
            f"{_ms(seconds.get('tutorial'))} | **{_x(ratio.get('ours'))}** | "
            f"{_x(ratio.get('tutorial'))} | **{_x(peak_ratio.get('ours'))}** "
            f"({_mib(peak['ours'])} vs {_mib(peak['sklearn'])}) | "
            f"{_x(peak_ratio.get('tutorial'))} | "
            f"{difference.get('ours', float('nan')):.1e} "
            f"({difference.get('tutorial', float('nan')):.1e}) |"
        )
    return [*lines, ""]


def vb_section(result: dict[str, Any] | None) -> list[str]:
    """The VB section of results.md: seed fit times and the per-iteration ratio to EM."""
    if not result:
        return []
    seed, large = result["seed7907"], result["large"]
    lines = [
        "## VB: a seed-7907 fit and time per iteration against EM",
        "",
        f"Goals: a seed-7907 fit within {_ms(GOAL_VB_SEED_SECONDS)}; at n = 1,000,000 (D = 2, "
        f"K = 3) at most x{GOAL_VB_RATIO_TO_EM} EM's time per iteration. Medians over "
        f"{seed['rounds']} and {large['rounds']} interleaved rounds, one BLAS thread.",
        "",
        "| seed-7907 fit | time | iterations |",
        "|---|---|---|",
    ]
    for name, seconds in seed["seconds"].items():
        lines.append(f"| {name} | {_ms(seconds)} | {seed['n_iter'][name]} |")
    per_iteration = large["seconds_per_iteration"]
    lines += [
        "",
        f"| {large['case']}, {large['iterations']} iterations | VB | EM | sklearn VB | "
        "VB / EM | sklearn VB / EM |",
        "|---|---|---|---|---|---|",
        f"| time per iteration | {_ms(per_iteration['vb'])} | {_ms(per_iteration['em'])} | "
        f"{_ms(per_iteration['sklearn_vb'])} | {_x(large['ratio_to_em'])} | "
        f"{_x(large['sklearn_vb_ratio_to_em'])} |",
        "",
    ]
    return lines


def nuts_section(rows: list[dict[str, Any]], notes: list[str]) -> list[str]:
    """NUTS efficiency per formulation and sampler."""
    lines = [
        "## NUTS efficiency on seed-7907",
        "",
        "min bulk ESS over every scalar of weights, means and covariances; sampling = tuning + "
        "draws (the sampler's own clock); total = building the model + sampling call, compile "
        "included, in a fresh process; logp+gradient = median time of one evaluation at the EM "
        "estimate. Mass matrix: adapted while tuning, diagonal (diag), "
        "dense (full) or nutpie's diagonal plus low-rank update. Ratio column: ESS per sampling "
        "second relative to the tutorial formulation under PyMC's defaults (diagonal mass "
        "matrix): with several runs, the median of the per-round ratios (round r runs every row "
        "once, with seed 7907 + r), and the other columns show medians.",
        "",
        "| formulation | sampler | backend | mass matrix | min bulk ESS | sampling s | total s "
        "| ESS/s sampling | ESS/s total | vs tutorial | logp+gradient | gradient evals "
        "| divergences |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    reference = next(
        (
            row
            for row in rows
            if (row.get("formulation"), row.get("sampler"), row.get("mass_matrix", "diag"))
            == ("tutorial", "pymc", "diag")
            and "error" not in row
        ),
        None,
    )
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['formulation']} | {row['sampler']} | {row.get('backend') or '-'} | "
                f"{row.get('mass_matrix') or '-'} | failed: {row['error']} | | | | | | | | |"
            )
            continue
        relative = relative_speed(row, reference) if reference else None
        lines.append(
            f"| {row['formulation']} ({row.get('repeats', 1)} runs) | {row['sampler']} | "
            f"{row['backend']} | {row.get('mass_matrix', 'diag')} | "
            f"{row['min_bulk_ess']:.0f} | {row['sampling_seconds']:.1f} | "
            f"{row['total_seconds']:.1f} | {row['ess_per_sampling_second']:.2f} | "
            f"{row['ess_per_total_second']:.2f} | {_x(relative)} | "
            f"{_microseconds(row.get('gradient_seconds'))} | "
            f"{row['gradient_evaluations'] or 0:.0f} | {row['divergences'] or 0:.0f} |"
        )
    return [*lines, "", *notes, ""]


def relative_speed(row: dict[str, Any], reference: dict[str, Any]) -> float:
    """ESS per sampling second of row over reference's: the median of per-round ratios when
    both have the same rounds (runs made side by side), else the ratio of the medians."""
    runs, reference_runs = row.get("runs", []), reference.get("runs", [])
    pairs = [
        (run, other)
        for run, other in zip(runs, reference_runs, strict=False)
        if "error" not in run and "error" not in other
    ]
    if pairs and len(pairs) == len(runs) == len(reference_runs):
        return statistics.median(
            run["ess_per_sampling_second"] / other["ess_per_sampling_second"]
            for run, other in pairs
        )
    return row["ess_per_sampling_second"] / reference["ess_per_sampling_second"]


def end_to_end_section(result: dict[str, Any] | None) -> list[str]:
    """gmm-compare cold and warm."""
    if not result:
        return []
    lines = ["## End to end: `gmm-compare` on seed-7907", ""]
    for label, goal in (("cold", 45), ("warm", 10)):
        run = result[label]
        seconds = run.get("seconds")
        verdict = (
            "" if seconds is None else (" (goal met)" if seconds <= goal else " (goal missed)")
        )
        detail = f"{seconds:.1f} s{verdict}" if seconds is not None else "no time"
        if run.get("error"):
            detail += f"; error: {run['error']}"
        if label == "warm" and result.get("warm_seconds"):
            times = ", ".join(f"{t:.1f}" for t in result["warm_seconds"] if t is not None)
            detail += f"; median of {len(result['warm_seconds'])} runs ({times})"
        lines.append(f"- {label} (goal ≤ {goal} s): {detail}")
    if result.get("cold_over_warm") is not None:
        lines.append(f"- cold / warm: x{result['cold_over_warm']:.1f}")
    size = result["warm"].get("posterior_mb")
    if size is not None:
        lines.append(f"- posterior.nc: {size:.1f} MB (goal ≤ 10 MB)")
    lines.append(f"- command: `{result['command']}`")
    return [*lines, ""]


def scaling_section(rows: list[dict[str, Any]], plot_name: str | None) -> list[str]:
    """EM and NUTS cost against n."""
    if not rows:
        return []
    lines = [
        "## Scaling with n (seed-7907 mixture, D=2, K=3)",
        "",
        "| n | EM ours s/iter | EM sklearn s/iter | ours/sklearn | NUTS draws+tune x chains | "
        "NUTS sampling s | logp+gradient | NUTS min bulk ESS/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        run = row.get("nuts", {})
        if "sampling_seconds" in run:
            settings = run["settings"]
            nuts_cells = (
                f"{settings['draws']}+{settings['tune']} x {settings['chains']} | "
                f"{run['sampling_seconds']:.1f} | "
                f"{_ms(run.get('gradient_seconds'))} | "
                f"{run['ess_per_sampling_second']:.2f}"
            )
        else:
            nuts_cells = f"{run.get('error', 'not run')} | | |"
        seconds = row["em_seconds_per_iteration"]
        lines.append(
            f"| {row['n_points']:,} | {_ms(seconds['ours'])} | {_ms(seconds['sklearn'])} | "
            f"{_x(row['em_ratio_to_sklearn'])} | {nuts_cells} |"
        )
    if plot_name:
        lines += ["", f"![cost against n]({plot_name})"]
    return [*lines, ""]


def bootstrap_section(result: dict[str, Any] | None) -> list[str]:
    """Bootstrap wall time per method and n_jobs, and every standard error of seed-7907's fit."""
    if not result:
        return []
    goal = result["goal_seconds"]
    lines = [
        f"## EM uncertainty on {result['dataset']}: bootstrap time and standard errors",
        "",
        "Each replicate is refitted by EM from the estimate (tol 1e-5); time = median wall "
        f"seconds of `em.bootstrap` over interleaved rounds, pool start-up included. Goal: "
        f"999 nonparametric replicates ≤ {goal:g} s.",
        "",
        "| method | n_jobs | replicates x rounds | median s | failed | relabelled | unconverged |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["timings"]:
        verdict = ""
        if row["method"] == "nonparametric" and row["n_boot"] == 999:
            verdict = " (goal met)" if row["seconds"] <= goal else " (goal missed)"
        lines.append(
            f"| {row['method']} | {row['n_jobs']} | {row['n_boot']} x {row['rounds']} | "
            f"{row['seconds']:.2f}{verdict} | {row['n_failed']} | {row['n_relabelled']} | "
            f"{row['n_unconverged']} |"
        )
    lines += [
        "",
        "Standard errors: observed information (minus the Hessian) and empirical information "
        "(score outer products) by the delta method, and the SD of the bootstrap replicates.",
        "",
        "| parameter | estimate | observed | empirical | nonparametric | parametric | weighted |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["standard_errors"]:
        cells = " | ".join(
            f"{row[name]:.4f}"
            for name in ("observed", "empirical", "nonparametric", "parametric", "weighted")
        )
        lines.append(f"| {row['parameter']} | {row['estimate']:.3f} | {cells} |")
    return [*lines, ""]


def simulate_section(result: dict[str, Any] | None) -> list[str]:
    """The simulation study's replicates per minute on 1 and 2 Dask workers, and the speedup."""
    if not result:
        return []
    s = result["settings"]
    verdict = "goal met" if result["goal_met"] else "goal missed"
    rounds = ", ".join(f"x{ratio:.2f}" for ratio in result["round_speedups"])
    lines = [
        "## Simulation study on Dask: replicates per minute",
        "",
        f"`gmm-compare simulate` replicates (n = {s['n_points']}, methods "
        f"{', '.join(s['methods'])}; NUTS {s['chains']} x {s['draws']} after {s['tune']}; "
        f"bootstrap {s['bootstrap']}) on LocalClusters of 1 and 2 single-threaded worker "
        "processes, every worker warmed by running replicate 1 (its NUTS compile), then studies "
        f"of {s['replicates']} replicates timed on the two in turn. Speedup of 2 workers over 1, "
        f"median of the rounds' paired ratios ({rounds}): x{result['speedup']:.2f} (goal "
        f"x{result['goal_speedup']:g}: {verdict}). Load average before / after: "
        f"{result['load_average_before']:.1f} / {result['load_average_after']:.1f}.",
        "",
        "| workers | replicates | wall s (median) | replicates/min (median; rounds) | s per "
        "replicate by method (median) | NUTS first replicate s (compile s) | compiled in the "
        "timed studies |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        methods = ", ".join(f"{name} {sec:.1f}" for name, sec in row["method_seconds"].items())
        per_round = ", ".join(f"{rate:.1f}" for rate in row["rounds_per_minute"])
        first = (
            "-"
            if row["nuts_first_seconds"] is None
            else f"{row['nuts_first_seconds']:.1f} ({row['nuts_compile_seconds']:.1f})"
        )
        lines.append(
            f"| {row['workers']} | {row['replicates']} | {row['wall_seconds']:.0f} | "
            f"{row['replicates_per_minute']:.2f} ({per_round}) | {methods} | {first} | "
            f"{row['compiled_in_timed_study']} |"
        )
    return [*lines, ""]


def select_section(result: dict[str, Any] | None) -> list[str]:
    """`gmm-compare select` warm: median wall seconds against the goal, seconds per method."""
    if not result:
        return []
    verdict = "goal met" if result["goal_met"] else "goal missed"
    methods = ", ".join(f"{name} {sec:.1f} s" for name, sec in result["method_seconds"].items())
    rounds = ", ".join(f"{run['seconds']:.1f}" for run in result["runs"])
    return [
        "## Choosing K: `gmm-compare select`, warm",
        "",
        f"- `{result['command']}`: median {result['median_seconds']:.1f} s over "
        f"{len(result['runs'])} warm runs ({rounds}); goal ≤ {result['goal_seconds']:g} s: "
        f"{verdict}",
        f"- summed over K (median): {methods}",
        f"- load average before / after: {result['load_average_before']:.1f} / "
        f"{result['load_average_after']:.1f}",
        "",
    ]


def write_markdown(results: dict[str, Any], path: Path) -> Path:
    """results.md: machine, EM, NUTS, end to end, scaling, bootstrap, simulation, select, notes."""
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{results['command']}` on {results['started']} "
        f"({results['elapsed_seconds']:.0f} s). Ratios compare methods measured in the same run; "
        "absolute times depend on the load of this shared machine.",
        "",
        *machine_section(results["machine"]),
        *em_section(results.get("em", [])),
        *vb_section(results.get("vb")),
        *nuts_section(results.get("nuts", []), results.get("nuts_notes", [])),
        *end_to_end_section(results.get("end_to_end")),
        *scaling_section(results.get("scaling", []), results.get("scaling_plot")),
        *bootstrap_section(results.get("bootstrap")),
        *simulate_section(results.get("simulate")),
        *select_section(results.get("select")),
    ]
    notes = results.get("notes", [])
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    write_text_atomic(path, "\n".join(lines))
    return path
