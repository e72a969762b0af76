"""The simulation study: how often does each method's 94 % interval cover the truth.

Replicate r (r = 1..R) is n points drawn from a known mixture (seed-7907's true parameters) by
the seed program's LCG started at r, so any replicate can be rebuilt alone. Each is fitted by
every chosen method: EM (k-means++ restarts) with its Wald and nonparametric bootstrap intervals,
VB (equal-tailed quantiles of draws from q) and NUTS on the default model (equal-tailed
quantiles of the draws). Every method's components are matched to the truth's (the assignment
on Mahalanobis distances between means that the bootstrap uses) and a needed permutation is
counted as a switch. Every random choice in replicate r is seeded by r, so a replicate's
numbers do not depend on which worker ran it or when.

Replicates run as Dask tasks (`run_study`): on a `LocalCluster` of this machine's cores, or on
an existing scheduler. Each finished replicate is written into the results store at once
(`analysis.simulation_store`), so a re-run computes only what is missing; the report is then
made from the store (`analysis.simulation_report`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.comparison import entries, label
from analysis.em_fits import N_INIT
from analysis.interrupts import interrupts_held
from analysis.limits import REPLICATE_BYTES, describe_budget, most_units
from analysis.settings import INTERVAL_PROB
from em_reference import GaussianMixtureEM, MixtureParameters, sample_mixture, seed7907
from em_reference.bootstrap import assignment, matching_costs

if TYPE_CHECKING:
    from analysis.simulation_store import StudyStore

METHODS = ("em", "vb", "nuts")
"""The fits a study can run; EM gives two sets of intervals, `INTERVALS`."""

INTERVALS = {"em": ("em_wald", "em_bootstrap"), "vb": ("vb",), "nuts": ("nuts",)}
"""The interval sets each fit gives: EM's Wald and bootstrap intervals, VB's, NUTS's."""

TRUTHS = {"seed7907": seed7907.TRUE}
"""The mixtures a study can draw from, by name."""

STUDY_BOOTSTRAP = 200
"""EM bootstrap replicates per study replicate (the main report uses 999): 200 percentile
intervals per replicate cost a tenth of the NUTS time, and their Monte Carlo error in the 3 %
tails is small beside the coverage's own (about 2.4 points at 100 replicates)."""

STUDY_DRAWS = 500
STUDY_TUNE = 500
STUDY_CHAINS = 2
"""NUTS per replicate: 2 chains x 500 draws after 500 tuning steps (the main report: 4 x 1000),
enough for the 3 % and 97 % quantiles of a 17-parameter posterior with a dense mass matrix."""

VB_DRAWS = 4000
"""Draws from VB's q per replicate for its equal-tailed intervals."""


@dataclass(frozen=True)
class StudySettings:
    """What a study computes: R replicates of n points from `truth`, the methods and sizes."""

    replicates: int = 100
    n_points: int = seed7907.N_POINTS
    methods: tuple[str, ...] = METHODS
    draws: int = STUDY_DRAWS
    tune: int = STUDY_TUNE
    chains: int = STUDY_CHAINS
    bootstrap: int = STUDY_BOOTSTRAP
    vb_draws: int = VB_DRAWS
    truth: str = "seed7907"

    def __post_init__(self) -> None:
        for name in ("replicates", "n_points", "draws", "chains", "vb_draws"):
            _check_count(name, getattr(self, name), 1)
        for name in ("tune", "bootstrap"):
            _check_count(name, getattr(self, name), 0)
        # Checked before `run_study` lists the missing replicates: a list of 10^20 never ends.
        if self.replicates > (most := most_units(REPLICATE_BYTES)):
            raise ValueError(
                f"replicates must be at most {most}, got {self.replicates}: each costs at least "
                f"{REPLICATE_BYTES} bytes while the study runs and {describe_budget()}"
            )
        if self.truth not in TRUTHS:
            raise ValueError(f"truth must be one of {sorted(TRUTHS)}, got {self.truth!r}")
        methods = tuple(self.methods)
        if (
            not methods
            or any(m not in METHODS for m in methods)
            or len(set(methods)) < len(methods)
        ):
            raise ValueError(
                f"methods must be distinct names among {', '.join(METHODS)}, got {self.methods!r}"
            )
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in methods))
        if self.n_points < 2 * self.true_parameters.n_components:
            raise ValueError(
                f"n_points must be at least {2 * self.true_parameters.n_components} "
                f"(two per component), got {self.n_points}"
            )

    @property
    def true_parameters(self) -> MixtureParameters:
        """The mixture the replicates are drawn from."""
        return TRUTHS[self.truth]

    @property
    def interval_sets(self) -> tuple[str, ...]:
        """The interval sets the study reports: em_wald, em_bootstrap (if any), vb, nuts."""
        names = [name for method in self.methods for name in INTERVALS[method]]
        return tuple(n for n in names if n != "em_bootstrap" or self.bootstrap > 0)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (the store's study.json)."""
        return {**asdict(self), "methods": list(self.methods), "interval_prob": INTERVAL_PROB}

    def fingerprint(self) -> dict[str, Any]:
        """What a stored replicate depends on: everything but the number of replicates."""
        values = self.as_dict()
        del values["replicates"]
        return values


def _check_count(name: str, value: Any, least: int) -> None:
    """ValueError unless value is an integer >= least."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def parameter_labels(parameters: MixtureParameters) -> list[str]:
    """The study's scalar parameters (P,) as the report prints them: 'means[1, 0]', ..."""
    return [label(name, index) for name, index in entries(*parameters.means.shape)]


def flatten(parameters: Any) -> list[float]:
    """Weights, means, covariance entries i <= j as one list (P,), in `parameter_labels` order."""
    values = {name: np.asarray(getattr(parameters, name)) for name in ("weights", "means")}
    values["covariances"] = np.asarray(parameters.covariances)
    k, d = np.asarray(parameters.means).shape
    return [float(values[name][index]) for name, index in entries(k, d)]


def replicate_data(settings: StudySettings, replicate: int) -> tuple[np.ndarray, np.ndarray]:
    """Replicate r's points X (n, D) and true labels (n,): the seed program's LCG at seed r."""
    t = settings.true_parameters
    return sample_mixture(settings.n_points, t.weights, t.means, t.covariances, seed=replicate)


# ---------------------------------------------------------------------------------------------
# One replicate, every method


def match_to_truth(estimate: MixtureParameters, truth: MixtureParameters) -> np.ndarray:
    """The order (K,): order[k] is the estimate's component that plays true component k."""
    return assignment(matching_costs(estimate.means, truth))


def permuted(parameters: MixtureParameters, order: np.ndarray) -> MixtureParameters:
    """The parameters with components in `order` (K,)."""
    p = parameters
    return MixtureParameters(p.weights[order], p.means[order], p.covariances[order])


def draw_summary(
    draws: dict[str, np.ndarray], truth: MixtureParameters
) -> tuple[list[float], list[float], list[float]]:
    """Posterior means and equal-tailed INTERVAL_PROB bounds (P,) of draws (S, ...) per name."""
    tails = (0.5 - 0.5 * INTERVAL_PROB, 0.5 + 0.5 * INTERVAL_PROB)
    k, d = truth.means.shape
    out = []
    for statistic in (
        lambda a: np.mean(a, axis=0),
        lambda a: np.quantile(a, tails[0], axis=0),
        lambda a: np.quantile(a, tails[1], axis=0),
    ):
        values = {name: statistic(array) for name, array in draws.items()}
        out.append([float(values[name][index]) for name, index in entries(k, d)])
    return out[0], out[1], out[2]


def interval_record(
    estimate: list[float],
    low: list[float],
    high: list[float],
    truth: list[float],
    seconds: float,
    **extra: Any,
) -> dict[str, Any]:
    """One method's result on one replicate: estimate, bounds and coverage per parameter (P,)."""
    covered = [bool(lo <= t <= hi) for lo, t, hi in zip(low, truth, high, strict=True)]
    return {
        "status": "ok",
        "seconds": seconds,
        "estimate": estimate,
        "low": low,
        "high": high,
        "covered": covered,
        **extra,
    }


def draws_record(
    draws: dict[str, np.ndarray], truth: MixtureParameters, started: float, **extra: Any
) -> dict[str, Any]:
    """The record of a method summarised by draws (S, ...) matched to the truth's labels."""
    estimate, low, high = draw_summary(draws, truth)
    return interval_record(
        estimate, low, high, flatten(truth), time.perf_counter() - started, **extra
    )


def failed_record(error: BaseException, seconds: float) -> dict[str, Any]:
    """A method that failed on a replicate: why, counted in the report and never averaged."""
    return {"status": "failed", "seconds": seconds, "error": f"{type(error).__name__}: {error}"}


def fit_em(
    X: np.ndarray, truth: MixtureParameters, replicate: int
) -> tuple[GaussianMixtureEM, bool]:
    """EM with k-means++ restarts seeded by the replicate, matched to the truth: fit, switched."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unconverged restart is counted by EM itself
        fit = GaussianMixtureEM(truth.n_components, n_init=N_INIT, random_state=replicate).fit(X)
    order = match_to_truth(fit.parameters_, truth)
    matched = permuted(fit.parameters_, order)
    refit = GaussianMixtureEM(truth.n_components)
    for name, value in (
        ("weights_", matched.weights),
        ("means_", matched.means),
        ("covariances_", matched.covariances),
        ("precisions_cholesky_", fit.precisions_cholesky_[order]),
        ("log_likelihood_", fit.log_likelihood_),
        ("log_likelihood_history_", fit.log_likelihood_history_),
        ("converged_", fit.converged_),
        ("n_iter_", fit.n_iter_),
        ("n_features_in_", fit.n_features_in_),
    ):
        setattr(refit, name, value)
    return refit, bool(np.any(order != np.arange(order.size)))


def run_em_methods(
    X: np.ndarray, truth: MixtureParameters, settings: StudySettings, replicate: int
) -> tuple[dict[str, dict[str, Any]], GaussianMixtureEM | None]:
    """EM's Wald and bootstrap records, and the matched fit (None if EM failed)."""
    true = flatten(truth)
    started = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    try:
        fit, switched = fit_em(X, truth, replicate)
    except (ValueError, np.linalg.LinAlgError) as error:
        failure = failed_record(error, time.perf_counter() - started)
        return {name: failure for name in INTERVALS["em"][: 1 + (settings.bootstrap > 0)]}, None
    fit_seconds = time.perf_counter() - started
    estimate = flatten(fit.parameters_)
    try:
        wald = fit.wald_intervals(X, INTERVAL_PROB)
        records["em_wald"] = interval_record(
            estimate,
            flatten(wald.lower),
            flatten(wald.upper),
            true,
            time.perf_counter() - started,
            switched=switched,
            converged=bool(fit.converged_),
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        records["em_wald"] = failed_record(error, time.perf_counter() - started)
    if settings.bootstrap > 0:
        boot_started = time.perf_counter()
        try:
            result = fit.bootstrap(X, settings.bootstrap, "nonparametric", replicate, n_jobs=1)
            bounds = result.intervals(INTERVAL_PROB)
            records["em_bootstrap"] = interval_record(
                estimate,
                flatten(bounds.lower),
                flatten(bounds.upper),
                true,
                fit_seconds + time.perf_counter() - boot_started,
                switched=switched,
                n_failed=result.n_failed,
                n_relabelled=result.n_relabelled,
            )
        except (ValueError, np.linalg.LinAlgError) as error:
            records["em_bootstrap"] = failed_record(error, time.perf_counter() - boot_started)
    return records, fit


def run_vb(
    X: np.ndarray, truth: MixtureParameters, settings: StudySettings, replicate: int
) -> dict[str, Any]:
    """VB with k-means++ restarts; intervals from draws of q, matched to the truth."""
    from em_reference import VariationalGaussianMixture

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = VariationalGaussianMixture(
                truth.n_components, n_init=N_INIT, random_state=replicate
            ).fit(X)
        draws = fit.sample_posterior(settings.vb_draws, random_state=replicate)
        means = draws["means"].mean(axis=0)
        order = assignment(matching_costs(means, truth))
        matched = {name: values[:, order] for name, values in draws.items()}
        return draws_record(
            matched, truth, started, switched=bool(np.any(order != np.arange(order.size)))
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return failed_record(error, time.perf_counter() - started)


def run_nuts(
    X: np.ndarray,
    truth: MixtureParameters,
    settings: StudySettings,
    replicate: int,
    reference: GaussianMixtureEM | None,
) -> dict[str, Any]:
    """NUTS on the default model from the matched EM fit, with this process's compiled model."""
    from models.shared_sampler import cached_sampler

    started = time.perf_counter()
    if reference is None:
        return failed_record(ValueError("EM found no fit to start NUTS from"), 0.0)
    try:
        sampler, first = cached_sampler(X, truth.n_components)
        draws = sampler.sample(
            X,
            reference.parameters_,
            settings.draws,
            settings.tune,
            settings.chains,
            random_seed=replicate,
        )
        arrays = {"weights": draws.weights, "means": draws.means, "covariances": draws.covariances}
        return draws_record(
            arrays,
            truth,
            started,
            switched=draws.relabelled_draws > 0,
            relabelled_draws=draws.relabelled_draws,
            divergences=draws.divergences,
            first_on_worker=first,
            compile_seconds=sampler.compile_seconds if first else 0.0,
            sampling_seconds=draws.sampling_seconds,
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return failed_record(error, time.perf_counter() - started)


def run_replicate(settings: StudySettings, replicate: int) -> dict[str, Any]:
    """Replicate r (a Dask task): its settings, every method's record, and where it ran.

    One BLAS thread: a worker is one core's share.
    """
    from threadpoolctl import threadpool_limits

    truth = settings.true_parameters
    X, _ = replicate_data(settings, replicate)
    methods: dict[str, dict[str, Any]] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        reference = None
        if "em" in settings.methods or "nuts" in settings.methods:
            em_records, reference = run_em_methods(X, truth, settings, replicate)
            if "em" in settings.methods:
                methods |= em_records
        if "vb" in settings.methods:
            methods["vb"] = run_vb(X, truth, settings, replicate)
        if "nuts" in settings.methods:
            methods["nuts"] = run_nuts(X, truth, settings, replicate, reference)
    return {
        "replicate": replicate,
        "settings": settings.fingerprint(),
        "methods": methods,
        "worker": {"host": socket.gethostname(), "pid": os.getpid()},
    }


# ---------------------------------------------------------------------------------------------
# The study on Dask


Progress = Callable[[int, int, int], None]
"""progress(done, total, computed_now): called after each replicate is stored."""


@dataclass(frozen=True)
class StudyRun:
    """What `run_study` did: replicates stored in all, computed now, reused, Dask workers."""

    replicates: int
    computed: int
    reused: int
    workers: int
    wall_seconds: float


def default_workers() -> int:
    """Workers of a LocalCluster when none are asked for: one per core."""
    return os.cpu_count() or 1


def run_study(
    settings: StudySettings,
    out: Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> StudyRun:
    """Compute the replicates missing from the store in `out`, on Dask; what was done.

    The store is checked (a folder not ours, or a store of other settings, is refused) before
    any work; a stored replicate made with other settings, or unreadable, is computed again
    (a warning says how many and why). `scheduler`: an existing scheduler's address; otherwise
    a LocalCluster of `workers` processes (default one per core) of one thread each. The store
    is created only once the cluster is reached. Each replicate is written to the store as soon
    as it arrives; an interrupt loses only those in flight.
    """
    from analysis.simulation_store import check_store, open_store, recompute_note

    if workers is not None:
        _check_count("workers", workers, 1)
    if scheduler is not None and workers is not None:
        raise ValueError("give workers for a local cluster or a scheduler address, not both")
    stored = check_store(out, settings)
    unusable = stored.unusable()
    if unusable:
        warnings.warn(recompute_note(unusable), UserWarning, stacklevel=2)
    missing = [r for r in range(1, settings.replicates + 1) if r in unusable or not stored.has(r)]
    reused = settings.replicates - len(missing)
    started = time.perf_counter()
    n_workers = 0
    if missing:
        with dask_client(scheduler, workers) as client:
            store = open_store(out, settings)
            n_workers = _compute(client, settings, store, missing, reused, progress)
    else:
        open_store(out, settings)
        if progress is not None:
            progress(settings.replicates, settings.replicates, 0)
    return StudyRun(
        settings.replicates, len(missing), reused, n_workers, time.perf_counter() - started
    )


SCHEDULER_TIMEOUT = "20s"
"""How long to try reaching a `--scheduler` before giving up."""


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A Client of the scheduler at `scheduler`, else of a new LocalCluster; closed on leaving.

    The LocalCluster has `workers` single-threaded processes (default one per core). ValueError
    when the scheduler cannot be reached.
    """
    import logging
    from multiprocessing import resource_tracker

    from distributed import Client, LocalCluster

    with ExitStack() as stack:
        if scheduler is None:
            # Ctrl-C at a terminal reaches the whole process group. The cluster's threads,
            # started here, spawn the worker processes, which inherit SIGINT blocked: only this
            # process is interrupted (once the cluster is whole, so that it can be closed),
            # and closing the cluster stops them without a traceback.
            # multiprocessing unblocks SIGINT in the thread that first starts its resource
            # tracker (a process of its own): started before the block, it leaves it alone.
            resource_tracker.ensure_running()
            with interrupts_held(block=(signal.SIGINT,)):
                cluster = LocalCluster(
                    n_workers=workers or default_workers(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=logging.ERROR,
                    memory_limit=0,
                )
                stack.callback(cluster.close)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
            except OSError as error:
                raise ValueError(
                    f"cannot reach the Dask scheduler {scheduler!r}: {error}"
                ) from None
        stack.callback(client.close)
        yield client


def _compute(
    client: Any,
    settings: StudySettings,
    store: StudyStore,
    missing: list[int],
    reused: int,
    progress: Progress | None,
) -> int:
    """Run the missing replicates on the client's cluster, storing each as it arrives; workers."""
    from distributed import as_completed

    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    token = store.token
    futures = [
        client.submit(
            run_replicate, settings, r, key=f"gmm-compare-replicate-{token}-{r}", pure=False
        )
        for r in missing
    ]
    pending = as_completed(futures)
    del futures  # as_completed holds them until each is done
    done = reused
    for computed, future in enumerate(pending, start=1):
        store.write(future.result())
        # Stored: let the worker drop it. A result the client still wants is recomputed
        # elsewhere when its worker dies, so one killed worker would cost every replicate
        # it ever ran, not only the one in flight.
        future.release()
        done += 1
        if progress is not None:
            progress(done, settings.replicates, computed)
    return n_workers


def print_progress(quiet: bool) -> Progress | None:
    """A progress line on stderr (rewritten in place on a terminal), or None when quiet."""
    if quiet:
        return None
    started = time.perf_counter()
    terminal = sys.stderr.isatty()

    def show(done: int, total: int, computed: int) -> None:
        elapsed = time.perf_counter() - started
        rate = f", {elapsed / computed:.1f} s per replicate" if computed else ""
        left = total - done
        eta = f", about {left * elapsed / computed / 60:.1f} min left" if computed and left else ""
        bar = "#" * (20 * done // total)
        line = f"replicates [{bar:<20}] {done}/{total} ({computed} computed now{rate}{eta})"
        if terminal:
            print(f"\r{line}", end="\n" if done == total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show
