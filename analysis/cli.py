"""The `gmm-compare` command line: EM, VB and NUTS on the same Gaussian mixture, and the report.

    gmm-compare                      # compare on seed7907, report in reports/seed7907/
    gmm-compare compare seed42 --draws 500 --out reports/blobs
    gmm-compare seed1000 --methods em,vb   # no sampling
    gmm-compare --data points.csv --components 2
    gmm-compare report               # rebuild reports/seed7907/ from its saved results
    gmm-compare simulate --replicates 100 --workers 2   # interval coverage, on Dask

Bad input (a missing or malformed file, K < 1, too few points, an output folder that cannot be
written or is not one of our reports) gives one line on stderr and exit status 2, before any
work; set GMM_COMPARE_DEBUG=1 for a traceback. An interrupt (SIGINT or SIGTERM) in any phase
exits with 130 or 143 and leaves an existing report as it was; warnings are one line each on
stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from analysis import pipeline
from analysis.checks import check_components, check_vb_defined
from analysis.console import NOTHING_WRITTEN, PROG, interrupted_line
from analysis.datasets import (
    DATASETS,
    Dataset,
    folded_name,
    load_dataset,
    read_csv,
    to_csv,
    written_by_data,
)
from analysis.em_fits import N_INIT, EMFits
from analysis.em_uncertainty import EMUncertainty
from analysis.files import (
    PUBLISHED,
    SELECTION,
    check_output_file,
    dumps,
    staged_folder,
    write_text_atomic,
)
from analysis.forked import beside
from analysis.interrupts import (
    RECEIVED,
    Interrupted,
    check_not_interrupted,
    interrupts_unwind,
    stop_children,
)
from analysis.limits import (
    FLOAT_BYTES,
    REPLICATE_BYTES,
    WORKER_BYTES,
    RunSize,
    check_run_memory,
    describe_budget,
    most_units,
)
from analysis.render import headline
from analysis.saved import copy_results, em_document, load_results, save_results
from analysis.settings import (
    DEFAULT_BOOTSTRAP,
    METHODS,
    SELECTION_CHAINS,
    SELECTION_DRAWS,
    SELECTION_METHODS,
    SELECTION_TUNE,
    RunSettings,
)

if TYPE_CHECKING:
    from analysis.simulation import StudySettings  # imported when simulating only

DEFAULT_DATASET = "seed7907"
REPORTS = Path("reports")
SUBCOMMANDS = ("data", "em", "sample", "report", "compare", "select", "simulate")
SIMULATE_FOLDER = REPORTS / "seed7907-simulate"
MAX_SEED = 2**32 - 1
STDOUT = Path("-")


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are raised, so that main prints them in one line."""

    def error(self, message: str) -> NoReturn:
        """Raise UsageError instead of printing the usage and exiting."""
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------
# Arguments


def _bounded(least: int, unit_bytes: int = FLOAT_BYTES) -> Callable[[str], int]:
    """An argparse type: an integer from `least` to what the machine holds (`most_units`).

    argparse puts the option's name before the message.
    """

    def count(text: str) -> int:
        value = _integer(text)
        if value < least:
            wanted = "0 or more" if least == 0 else f"at least {least}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value}")
        if value > (limit := most_units(unit_bytes)):
            raise argparse.ArgumentTypeError(
                f"must be at most {limit}, got {value}: each costs at least {unit_bytes} bytes "
                f"and {describe_budget()}"
            )
        return value

    return count


_positive = _bounded(1)
_count = _bounded(0)


def _integer(text: str) -> int:
    """An argparse type: any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _seed(text: str) -> int:
    """An argparse type: an integer from 0 to MAX_SEED (what NumPy and the saved files hold)."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {value}")
    return value


def _component_range(text: str) -> range:
    """An argparse type: K values 'LOW:HIGH' (both included) or one K, every K >= 1."""
    low, _, high = text.partition(":")
    first = _positive(low)
    last = _positive(high) if high else first
    if last < first:
        raise argparse.ArgumentTypeError(f"must be LOW:HIGH with LOW <= HIGH, got {text!r}")
    return range(first, last + 1)


def _methods(text: str) -> tuple[str, ...]:
    """An argparse type: a comma-separated subset of em, vb, nuts."""
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SELECTION_METHODS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated subset of {','.join(SELECTION_METHODS)}, got {text!r}"
        )
    return chosen


def _add_select_options(parser: argparse.ArgumentParser) -> None:
    """Which K and which methods for `select`, and the NUTS sizes it uses per K."""
    parser.add_argument(
        "--max-components",
        metavar="M",
        type=_positive,
        default=6,
        help="fit K = 1..M (default 6)",
    )
    parser.add_argument(
        "--components",
        "-k",
        metavar="LOW:HIGH",
        type=_component_range,
        help="fit K = LOW..HIGH instead (e.g. 2:5)",
    )
    parser.add_argument(
        "--methods",
        type=_methods,
        default=SELECTION_METHODS,
        help=f"which methods, comma-separated (default {','.join(SELECTION_METHODS)})",
    )
    for name, default, text in (
        ("--draws", SELECTION_DRAWS, "posterior draws kept per chain, per K"),
        ("--tune", SELECTION_TUNE, "tuning draws per chain, per K"),
        ("--chains", SELECTION_CHAINS, "NUTS chains per K"),
    ):
        parser.add_argument(
            name, type=_positive, default=default, help=f"{text} (default {default})"
        )


def _add_data_options(parser: argparse.ArgumentParser, components: bool = True) -> None:
    """Which data: a dataset name or --data FILE.csv, and K (unless components is False)."""
    parser.add_argument(
        "dataset",
        nargs="?",
        default=None,
        metavar="DATASET",
        help=f"a named dataset: {', '.join(DATASETS)} (default {DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--data",
        metavar="FILE.csv",
        type=Path,
        help="your own data instead: a CSV of numeric columns, one point per row, optional "
        "header; a header column named 'label' holds known component labels",
    )
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        help="with --data: the first line is a header (--header; needed for numeric names such "
        "as 2019,2020) or data (--no-header); default: a line of names only is the header, one "
        "of numbers only is data, a mixed one is refused",
    )
    if components:
        parser.add_argument(
            "--components",
            "-k",
            metavar="K",
            type=_positive,
            help="number of mixture components (default: the dataset's true number, 3 for a CSV)",
        )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help=f"seed for EM's k-means++ restarts and for NUTS, 0 to {MAX_SEED}: same seed, same "
        "numbers (default 0)",
    )


def _add_sampler_options(parser: argparse.ArgumentParser) -> None:
    """NUTS sizes."""
    parser.add_argument(
        "--draws",
        type=_positive,
        default=1000,
        help="posterior draws kept per chain (default 1000)",
    )
    parser.add_argument(
        "--tune",
        type=_positive,
        default=1000,
        help="tuning (warm-up) draws per chain, discarded (default 1000)",
    )
    parser.add_argument(
        "--chains",
        type=_positive,
        default=4,
        help="independent NUTS chains (default 4)",
    )


def _add_methods_option(parser: argparse.ArgumentParser) -> None:
    """--methods: which of EM, VB and NUTS a comparison runs."""
    parser.add_argument(
        "--methods",
        type=_methods,
        default=METHODS,
        help=f"which methods, comma-separated, em always among them (default {','.join(METHODS)}); "
        "with vb and nuts, NUTS also samples the model under VB's priors",
    )


def _add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    """--bootstrap N: EM's nonparametric bootstrap replicates."""
    parser.add_argument(
        "--bootstrap",
        metavar="N",
        type=_count,
        default=DEFAULT_BOOTSTRAP,
        help="nonparametric bootstrap replicates of the reference EM run, for its standard "
        f"errors and intervals; 0 turns the bootstrap off (default {DEFAULT_BOOTSTRAP})",
    )


def _add_output_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    """--out, --json, --quiet."""
    parser.add_argument("--out", metavar="PATH", type=Path, help=out_help)
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON on stdout instead of text"
    )
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the output path (no progress bar, no summary)",
    )


FOLDER_HELP = (
    "report folder (default reports/NAME, NAME being the dataset or the CSV's name, with -csv "
    "added when the CSV's name reads as a dataset's, e.g. reports/Seed_42-csv)"
)


def build_parser() -> Parser:
    """The parser with its five subcommands."""
    parser = Parser(
        prog=PROG,
        description="Fit the same Gaussian mixture by EM (maximum likelihood), by variational "
        "Bayes and by NUTS (Bayesian posterior, PyMC) and compare them. Without a subcommand, runs "
        "'compare' on seed7907.",
        epilog="Run 'gmm-compare SUBCOMMAND --help' for the options of each subcommand.",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    specs = {
        "data": (
            "write a dataset as CSV (label column first when labels are known)",
            "CSV file to write, a new path or a regular file (default, or -: standard output)",
            False,
        ),
        "em": (
            f"fit EM from the source's initial values and from {N_INIT} seeded k-means++ "
            "restarts; print the estimates",
            None,
            False,
        ),
        "sample": (
            "fit EM and VB, then sample the Bayesian mixture with NUTS; save the results "
            "(em.json, data.csv, vb.json, posterior.nc, ...) into the folder",
            FOLDER_HELP,
            True,
        ),
        "report": (
            "rebuild the report from the results saved in its folder, without sampling",
            FOLDER_HELP,
            False,
        ),
        "compare": (
            "everything (the default): EM, VB, NUTS, comparison tables, figures, "
            "summary.md and a self-contained index.html",
            FOLDER_HELP,
            True,
        ),
        "select": (
            "choose K: fit K = 1..M by EM (BIC, ICL), VB (ELBO) and NUTS (PSIS-LOO) and "
            "write the table, a figure of every criterion and each method's choice",
            "report folder (default reports/NAME-select)",
            False,
        ),
    }
    for name, (text, out_help, samples) in specs.items():
        command = sub.add_parser(name, help=text, description=text)
        _add_data_options(command, components=name != "select")
        if name == "select":
            _add_select_options(command)
        if samples:
            _add_methods_option(command)
            _add_sampler_options(command)
        if samples or name == "em":
            _add_bootstrap_option(command)
        if out_help is None:
            command.add_argument(
                "--json",
                action="store_true",
                help="print the EM results as JSON (the report's em.json)",
            )
            command.add_argument("--quiet", "-q", action="store_true", help="print nothing")
        else:
            _add_output_options(command, out_help)
        command.set_defaults(handler=HANDLERS[name])
    _add_simulate_parser(sub)
    return parser


def _add_simulate_parser(sub: Any) -> None:
    """`simulate`: the coverage study's sizes, methods, Dask cluster and output."""
    from analysis import simulation as sim

    text = (
        "simulation study: replicate data sets from seed-7907's true mixture, each fitted by "
        "EM (Wald and bootstrap intervals), VB and NUTS on Dask; coverage, width, bias and RMSE "
        "of every parameter's interval; resumes where an earlier run stopped"
    )
    command = sub.add_parser("simulate", help=text, description=text)
    command.add_argument(
        "--replicates",
        "-r",
        type=_bounded(1, REPLICATE_BYTES),
        default=100,
        help="replicates R (default 100)",
    )
    command.add_argument(
        "--points", "-n", type=_positive, default=500, help="points per replicate (default 500)"
    )
    command.add_argument(
        "--methods",
        type=_methods,
        default=sim.METHODS,
        help=f"which methods, comma-separated (default {','.join(sim.METHODS)})",
    )
    for name, default, help_text in (
        ("--draws", sim.STUDY_DRAWS, "NUTS draws kept per chain, per replicate"),
        ("--tune", sim.STUDY_TUNE, "NUTS tuning draws per chain, per replicate"),
        ("--chains", sim.STUDY_CHAINS, "NUTS chains per replicate"),
    ):
        command.add_argument(
            name, type=_positive, default=default, help=f"{help_text} (default {default})"
        )
    command.add_argument(
        "--bootstrap",
        metavar="N",
        type=_count,
        default=sim.STUDY_BOOTSTRAP,
        help=f"EM bootstrap replicates per replicate, 0 for none (default {sim.STUDY_BOOTSTRAP})",
    )
    command.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster)",
    )
    command.add_argument(
        "--workers",
        type=_bounded(1, WORKER_BYTES),
        help="worker processes of the local cluster (default: one per core)",
    )
    _add_output_options(command, f"study folder (default {SIMULATE_FOLDER})")
    command.set_defaults(handler=command_simulate, dataset=None, data=None, header=None)


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse arguments, running 'compare' when no subcommand is named."""
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]
    args = build_parser().parse_args(argv)
    if args.dataset is not None and args.data is not None:
        raise UsageError("give a dataset name or --data FILE.csv, not both")
    if args.header is not None and args.data is None:
        option = "--header" if args.header else "--no-header"
        raise UsageError(f"{option} says how to read --data FILE.csv; give it only with --data")
    return args


# ---------------------------------------------------------------------------------------------
# Shared steps


def report_name(args: argparse.Namespace) -> str:
    """The default report folder's name, without loading data.

    A named dataset's canonical name ('seed-7907' -> 'seed7907'); a CSV's stem verbatim, with
    '-csv' added when it folds to a name beginning with a named dataset's (Seed_42.csv ->
    'Seed_42-csv'), so that a CSV's report never lands in, or replaces, a named dataset's.
    """
    if args.data is None:
        name = args.dataset or DEFAULT_DATASET
        key = folded_name(name)
        return key if key in DATASETS else name  # an unknown name is refused when loaded
    stem = args.data.stem
    folded = folded_name(stem)
    return f"{stem}-csv" if any(folded.startswith(key) for key in DATASETS) else stem


def load(args: argparse.Namespace) -> Dataset:
    """The dataset the arguments name."""
    if args.data is not None:
        return read_csv(args.data, header=args.header)
    return load_dataset(args.dataset or DEFAULT_DATASET)


def settings_for(args: argparse.Namespace, dataset: Dataset) -> RunSettings:
    """The run's settings, K checked against the data and the run's memory against the machine."""
    k = args.components if args.components is not None else dataset.default_components
    check_components_option(dataset, k, "--components", getattr(args, "methods", ()))
    settings = RunSettings(
        n_components=k,
        random_seed=args.seed,
        draws=getattr(args, "draws", 0),
        tune=getattr(args, "tune", 0),
        chains=getattr(args, "chains", 0),
        bootstrap=getattr(args, "bootstrap", 0),
        methods=getattr(args, "methods", ("em",)),
    )
    size = RunSize(
        dataset.n_points,
        dataset.n_features,
        k,
        draws=settings.draws,
        chains=settings.chains,
        bootstrap=settings.bootstrap,
        nuts=settings.runs("nuts"),
        twin=settings.runs("nuts") and settings.runs("vb"),
    )
    check_run_memory(size, RUN_OPTIONS)
    return settings


def check_components_option(
    dataset: Dataset, k: int, option: str, methods: tuple[str, ...] = ()
) -> None:
    """ValueError naming the option when K exceeds the points; then `check_components`."""
    if k > dataset.n_points:
        raise ValueError(
            f"{option} {k} is more than the data can hold: at most {dataset.n_points} "
            f"({dataset.name} has {dataset.n_points} points, fewer than the {k} components "
            "asked for)"
        )
    check_components(dataset, k, methods)


RUN_OPTIONS = {
    "draws": "--draws",
    "chains": "--chains",
    "bootstrap": "--bootstrap",
    "n_components": "--components",
}
"""The options a run's memory depends on, in the order `check_run_memory` names them."""


def output_folder(args: argparse.Namespace) -> Path:
    """--out, or reports/NAME (`report_name`)."""
    return args.out if args.out is not None else REPORTS / report_name(args)


def say(args: argparse.Namespace, *lines: str) -> None:
    """Print lines unless --quiet."""
    if not args.quiet:
        print("\n".join(lines))


def note(args: argparse.Namespace) -> Callable[[str], None] | None:
    """A one-line progress note on stderr, or None with --quiet or --json."""
    if args.quiet or args.json:
        return None
    return lambda line: print(f"{line} ...", file=sys.stderr, flush=True)


def quiet_libraries(args: argparse.Namespace) -> None:
    """With --quiet or --json, keep PyMC's and PyTensor's informational logging off."""
    if args.quiet or args.json:
        silence_libraries()


def silence_libraries() -> None:
    """Keep PyMC's and PyTensor's logging to errors (our own lines report what they would).

    Whether or not they are imported yet: PyMC sets its logger to INFO when imported, but adds
    its own handler only to a logger without one, and this one passes errors only.
    """
    for name in ("pymc", "pytensor"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        if _ERRORS_ONLY not in logger.handlers:
            logger.addHandler(_ERRORS_ONLY)


_ERRORS_ONLY = logging.StreamHandler()
_ERRORS_ONLY.setLevel(logging.ERROR)


# ---------------------------------------------------------------------------------------------
# Subcommands


def command_data(args: argparse.Namespace) -> int:
    """Write the dataset as CSV to --out or stdout (replacing only a file of that form)."""
    to_stdout = args.out is None or args.out == STDOUT
    if not to_stdout:
        check_output_file(args.out, written_by_data)  # before any work
    dataset = load(args)
    text = to_csv(dataset)
    if to_stdout:
        sys.stdout.write(text)
        return 0
    write_text_atomic(args.out, text, written_by_data)
    if args.json:
        print(
            dumps(
                {
                    "path": str(args.out),
                    "n_points": dataset.n_points,
                    "n_features": dataset.n_features,
                }
            ),
            end="",
        )
    else:
        say(args, str(args.out))
    return 0


def command_em(args: argparse.Namespace) -> int:
    """Fit both EM runs and print them."""
    dataset = load(args)
    settings = settings_for(args, dataset)
    fits = pipeline.run_em(dataset, settings)
    pipeline.announce_uncertainty(settings, note(args))
    uncertainty = pipeline.run_uncertainty(dataset, fits, settings)
    if args.json:
        print(dumps(em_document(dataset, fits, settings, uncertainty)), end="")
        return 0
    say(args, *em_lines(dataset, fits, uncertainty))
    return 0


def em_lines(dataset: Dataset, fits: EMFits, uncertainty: EMUncertainty) -> list[str]:
    """A readable account of each EM run, and the reference run's standard errors."""
    import numpy as np

    lines = [f"{dataset.name}: n = {dataset.n_points}, D = {dataset.n_features}"]
    for name, run in fits.runs.items():
        p = run.parameters
        accuracy = ""
        if dataset.labels is not None:
            accuracy = f", accuracy {np.mean(run.labels == dataset.labels):.1%}"
        mark = " (reference)" if name == fits.reference else ""
        lines += [
            f"EM {name}{mark}: {run.start}",
            f"  {run.n_iter} iterations, converged {run.converged}, "
            f"log-likelihood {run.log_likelihood:.4f}{accuracy}",
            f"  weights     {np.round(p.weights, 3).tolist()}",
            f"  means       {np.round(p.means, 3).tolist()}",
            f"  covariances {np.round(p.covariances, 3).tolist()}",
        ]
    for title, errors in (
        ("information", uncertainty.standard_errors),
        (f"bootstrap ({uncertainty.n_boot} replicates)", uncertainty.bootstrap_standard_errors),
    ):
        if errors is not None:
            weights = np.round(errors.weights, 3).tolist() if errors.weights.size > 1 else None
            lines += [
                f"standard errors of the reference run, {title}:",
                f"  weights     {weights or 'none: the one weight is fixed at 1'}",
                f"  means       {np.round(errors.means, 3).tolist()}",
                f"  covariances {np.round(errors.covariances, 3).tolist()}",
            ]
    return lines + [f"WARNING: {problem}" for problem in uncertainty.problems]


def prepared(args: argparse.Namespace) -> tuple[Dataset, RunSettings, Path]:
    """The dataset, the settings and the report folder, all checked before anything runs."""
    dataset = load(args)
    settings = settings_for(args, dataset)
    target = output_folder(args)
    quiet_libraries(args)
    return dataset, settings, target


def report_folder(target: Path) -> Any:
    """The staging context for a report folder: only a folder that is one of ours is replaced."""
    return staged_folder(target, before_publish=check_not_interrupted)


def sample_into(
    args: argparse.Namespace, dataset: Dataset, settings: RunSettings, staging: Path
) -> pipeline.Results:
    """Run EM and NUTS and save the results into the staging folder."""
    results = run_methods(args, dataset, settings)
    save_results(results, staging)
    return results


def run_methods(
    args: argparse.Namespace, dataset: Dataset, settings: RunSettings
) -> pipeline.Results:
    """EM, its uncertainty, VB and NUTS as the settings say, with progress unless quiet."""
    return pipeline.run_all(
        dataset, settings, progressbar=not (args.quiet or args.json), note=note(args)
    )


def command_sample(args: argparse.Namespace) -> int:
    """EM and NUTS; save the results (no report) into the folder."""
    dataset, settings, target = prepared(args)
    with report_folder(target) as staging:
        results = sample_into(args, dataset, settings, staging)
    if results.idata is None:
        if args.json:
            print(dumps({"path": str(target), "sampler": None}), end="")
        elif args.quiet:
            print(target)
        else:
            say(args, f"results saved in {target}/")
        return 0
    from analysis.comparison import sampler_summary  # ArviZ: only when there is a posterior

    sampler = sampler_summary(results.idata)
    if args.json:
        print(dumps({"path": str(target), "sampler": sampler}), end="")
    elif args.quiet:
        print(target)
    else:
        verdict = "fine" if sampler["ok"] else "PROBLEMS: " + "; ".join(sampler["problems"])
        say(
            args,
            f"sampler: {sampler['divergences']} divergences, max R-hat "
            f"{sampler['max_rhat']:.3f}, min bulk ESS {sampler['min_ess_bulk']:.0f}: "
            f"{verdict}",
            f"results saved in {target}/",
        )
    return 0


def command_report(args: argparse.Namespace) -> int:
    """Rebuild the report from the results saved in the folder."""
    from analysis.report import write_report  # ArviZ, matplotlib: only when writing a report

    target = output_folder(args)
    results = load_results(target)
    quiet_libraries(args)
    with report_folder(target) as staging:
        copy_results(target, staging)
        comparison = write_report(results, staging)
    return finish(args, target, comparison)


def command_compare(args: argparse.Namespace) -> int:
    """EM, NUTS and the whole report."""
    from analysis.report import write_report  # ArviZ, matplotlib: only when writing a report

    dataset, settings, target = prepared(args)
    with report_folder(target) as staging:
        results = run_methods(args, dataset, settings)
        # Saving (netCDF, compressed) is single-core: beside the comparison and the figures.
        with beside(save_results, results, staging) as saved:
            comparison = write_report(results, staging)
            saved()
    return finish(args, target, comparison)


def finish(args: argparse.Namespace, target: Path, comparison: dict[str, Any]) -> int:
    """Print the summary and the report's path (or JSON, or only the path)."""
    if args.json:
        print(dumps({"report": str(target), **comparison}), end="")
    elif args.quiet:
        print(target / "index.html")
    else:
        print("\n".join([*headline(comparison), f"report: {target / 'index.html'}"]))
    return 0


def command_select(args: argparse.Namespace) -> int:
    """Fit every K by every chosen method; write the selection report; print the choices."""
    from analysis.selection import select_components
    from analysis.selection_report import choice_lines, write_selection_report

    dataset = load(args)
    ks = args.components or range(1, args.max_components + 1)
    k_option = "--components" if args.components else "--max-components"
    check_components_option(dataset, ks[-1], k_option)
    check_vb_defined(dataset, args.methods)
    size = RunSize(
        dataset.n_points,
        dataset.n_features,
        ks[-1],
        draws=args.draws,
        chains=args.chains,
        nuts="nuts" in args.methods,
    )
    check_run_memory(size, {**RUN_OPTIONS, "n_components": k_option})
    target = args.out if args.out is not None else REPORTS / f"{report_name(args)}-select"
    silence_libraries()  # one progress line per K is ours; PyMC's would repeat per K
    verbose = not (args.quiet or args.json)

    def progress(row: Any) -> None:
        if verbose:
            print(row.describe(), file=sys.stderr, flush=True)

    if verbose and "nuts" in args.methods:
        from models.sampling import announce_first_compile

        announce_first_compile()

    with staged_folder(target, SELECTION, before_publish=check_not_interrupted) as staging:
        result = select_components(
            dataset.X,
            ks,
            methods=args.methods,
            random_seed=args.seed,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            progress=progress,
        )
        write_selection_report(result, staging, dataset.name)
    if args.json:
        print(result.to_json())
    elif args.quiet:
        print(target / "index.html")
    else:
        print("\n".join([*choice_lines(result), f"report: {target / 'index.html'}"]))
    return 0


def command_simulate(args: argparse.Namespace) -> int:
    """Run the missing replicates of the study on Dask, then write its report from the store."""
    from analysis.simulation import StudySettings, print_progress, run_study
    from analysis.simulation_report import headline as study_headline
    from analysis.simulation_report import json_document, write_study_report
    from analysis.simulation_store import open_store

    if args.scheduler is not None and args.workers is not None:
        raise UsageError("give --workers for a local cluster or --scheduler ADDRESS, not both")
    settings = StudySettings(
        replicates=args.replicates,
        n_points=args.points,
        methods=args.methods,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        bootstrap=args.bootstrap,
    )
    check_study_memory(settings, args)
    target = args.out if args.out is not None else SIMULATE_FOLDER
    quiet_libraries(args)
    try:
        run = run_study(
            settings,
            target,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=print_progress(args.quiet or args.json),
        )
        check_not_interrupted()
    except (Interrupted, KeyboardInterrupt) as stop:
        if target.is_dir():  # else stopped before the store was made: nothing was written
            stop.detail = (  # type: ignore[union-attr]
                f"the replicates finished so far are kept in {target}/; run the same command "
                "again to compute only the missing ones"
            )
        raise
    summary = write_study_report(open_store(target, settings), run)
    if args.json:
        print(dumps(json_document(summary)), end="")
    elif args.quiet:
        print(target / "index.html")
    else:
        print("\n".join([*study_headline(summary), f"report: {target / 'index.html'}"]))
    return 0


def check_study_memory(settings: StudySettings, args: argparse.Namespace) -> None:
    """ValueError naming the option to lower when the study cannot fit in this machine's memory.

    A local cluster's workers each hold one replicate's run; a remote scheduler's workers are
    another machine's, so only one run (and the replicates' bookkeeping) is counted here.
    """
    from analysis.simulation import default_workers

    workers = 0 if args.scheduler is not None else (args.workers or default_workers())
    truth = settings.true_parameters
    size = RunSize(
        settings.n_points,
        truth.n_features,
        truth.n_components,
        draws=settings.draws,
        chains=settings.chains,
        bootstrap=settings.bootstrap,
        nuts="nuts" in settings.methods,
        workers=workers,
        replicates=settings.replicates,
    )
    options = {"n_points": "--points"} | {
        field: option for field, option in RUN_OPTIONS.items() if field != "n_components"
    }  # the study's K is its truth's
    options["replicates"] = "--replicates"
    if args.workers:
        options["workers"] = "--workers"
    check_run_memory(size, options)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "select": command_select,
    "data": command_data,
    "em": command_em,
    "sample": command_sample,
    "report": command_report,
    "compare": command_compare,
}


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """warnings.showwarning for the command: one line on stderr, no source line."""
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text} ({category.__name__})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command; bad input is one line on stderr and exit status 2."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        RECEIVED.clear()
        PUBLISHED.clear()
        with interrupts_unwind(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # Said once per compile folder when PyTensor first looks for a BLAS for its C
            # backend; every function here is compiled by Numba, which needs none.
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
            args = parse(argv)
            code = args.handler(args)
        check_not_interrupted()
        return code
    except SystemExit as done:  # --help
        return int(done.code or 0)
    except BaseException as stop:
        if not (RECEIVED or isinstance(stop, KeyboardInterrupt | Interrupted)):
            return failed(stop)
        stop_children()
        signum = RECEIVED[0] if RECEIVED else getattr(stop, "signum", signal.SIGINT)
        detail = getattr(stop, "detail", NOTHING_WRITTEN)
        if PUBLISHED:  # the interrupt came after the new output was put in place
            detail = f"the new output was complete and is in place in {PUBLISHED[-1]}/"
        print(interrupted_line(signum, detail), file=sys.stderr)
        return 128 + int(signum)


def failed(error: BaseException) -> int:
    """Bad input: one line on stderr and exit status 2; anything else is raised again."""
    if not isinstance(error, UsageError | ValueError | TypeError | OSError) or os.environ.get(
        "GMM_COMPARE_DEBUG"
    ):
        raise error
    message = " ".join(str(error).split()) or type(error).__name__
    hint = " (see gmm-compare --help)" if isinstance(error, UsageError) else ""
    print(f"{PROG}: error: {message}{hint}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    from analysis.console import console

    console()
