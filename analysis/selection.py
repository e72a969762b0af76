"""Choosing K: EM's BIC and ICL, VB's ELBO and NUTS's PSIS-LOO, side by side for K = 1..K_max.

Every criterion is in the sign its school reads it in:
- BIC = -2 log L + p log n and ICL, lower is better (`GaussianMixtureEM.bic`'s sign). mclust
  prints BIC_mclust = 2 log L - p log n, higher is better: BIC_mclust = -BIC. ICL follows mclust's
  `icl` (Biernacki, Celeux & Govaert 2000): the BIC of the complete data with each point given to
  its most probable component, ICL = BIC - 2 sum_i log max_k r_ik (mclust's sign: BIC_mclust +
  2 sum_i log max_k r_ik). ICL >= BIC; the gap grows with the overlap of the components.
- The ELBO (`VariationalGaussianMixture.lower_bound_`), higher is better, as fitted: Bishop's
  ln K! label term (PRML 10.2.4) is not added, since it assumes all K components are occupied
  and VB empties the ones the data do not need (with it, K = 6 would win on seed-7907).
- PSIS-LOO's elpd (arviz_stats `loo`), higher is better, with its SE, and from `compare` the
  difference to the best K with the SE of that difference.

With K above the truth a mixture posterior is multimodal: surplus components split a cluster or
wander with tiny weights, and their labels switch. Each row's `problems` says so (R-hat, ESS,
divergences, relabelled draws, nearly empty components, Pareto k) rather than hiding it.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from xarray import DataTree

from analysis.checks import too_few_points
from analysis.settings import (
    SELECTION_CHAINS,
    SELECTION_DRAWS,
    SELECTION_METHODS,
    SELECTION_TUNE,
)
from em_reference import (
    DegenerateFitError,
    GaussianMixtureEM,
    VariationalGaussianMixture,
    check_data,
    mixture_log_density,
    precisions_cholesky,
)
from models import build_model, diagnose, sample_posterior

EM_RESTARTS = 10
"""k-means++ starts of EM (and of VB) per K; the best run is kept."""

EM_MAX_ITER = 1000
"""EM's and VB's iteration limit here: at K above the truth EM creeps along a ridge and the
default 100 iterations stop it before convergence (seed-7907, K = 6)."""

SINGULAR_RIDGE = 10.0
"""An EM covariance whose smallest eigenvalue is within this many times reg_covar is singular."""

EFFECTIVE_WEIGHT = 0.01
"""A VB component counts as used when its expected weight is above this (1 %)."""

PARETO_K_BAD = 0.7
"""Pareto k above which a point's PSIS-LOO estimate is unreliable (Vehtari et al. 2024)."""

LOO_SE_MULTIPLE = 2.0
LOO_SIMILAR = 4.0
"""The LOO choice: the smallest K whose elpd is within LOO_SE_MULTIPLE SEs of the difference, or
within LOO_SIMILAR (ArviZ's `compare` flags |elpd_diff| < 4 as "models make similar
predictions"), of the best K's."""

Progress = Callable[["SelectionRow"], None]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class SelectionRow:
    """Every criterion at one K; None where a method was not run (or failed, see `problems`).

    JSON keys, in the issue's order, then extras: elpd_diff / elpd_diff_se (to the best K, from
    arviz_stats `compare`), loo_rank (0 is the best), relabelled_draws, min_ess_bulk, the
    seconds each method took, and `problems`, one readable line per warning sign.
    """

    k: int
    log_likelihood: float | None = None
    bic: float | None = None
    icl: float | None = None
    elbo: float | None = None
    vb_effective_components: int | None = None
    elpd_loo: float | None = None
    elpd_loo_se: float | None = None
    pareto_k_bad: int | None = None
    max_rhat: float | None = None
    divergences: int | None = None
    elpd_diff: float | None = None
    elpd_diff_se: float | None = None
    loo_rank: int | None = None
    relabelled_draws: int | None = None
    min_ess_bulk: float | None = None
    em_seconds: float | None = None
    vb_seconds: float | None = None
    nuts_compile_seconds: float | None = None
    nuts_sampling_seconds: float | None = None
    nuts_seconds: float | None = None
    problems: tuple[str, ...] = ()

    def describe(self) -> str:
        """One progress line: K and each criterion that was computed."""
        parts = [f"K={self.k}:"]
        if self.bic is not None:
            parts.append(f"BIC {self.bic:.1f}, ICL {self.icl:.1f}")
        if self.elbo is not None:
            parts.append(f"ELBO {self.elbo:.1f} ({self.vb_effective_components} used)")
        if self.elpd_loo is not None:
            parts.append(f"elpd_loo {self.elpd_loo:.1f} ± {self.elpd_loo_se:.1f}")
        if self.problems:
            parts.append(f"[{len(self.problems)} problem(s)]")
        return " ".join(parts)


@dataclass(frozen=True)
class Choice:
    """The K each criterion picks (None if its method was not run)."""

    bic: int | None
    icl: int | None
    elbo: int | None
    loo: int | None


@dataclass(frozen=True)
class SelectionResult:
    """The rows (one per K, in increasing K), each criterion's choice and, if they differ, why.

    `settings` records what was run (methods, random_seed, NUTS draws, tune and chains).
    """

    rows: tuple[SelectionRow, ...]
    choice: Choice
    disagreement: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document: {"rows": [...], "choice": {...}} and extra keys; NaN is null."""
        rows = [
            {key: _json_value(value) for key, value in asdict(row).items()} for row in self.rows
        ]
        return {
            "rows": rows,
            "choice": asdict(self.choice),
            "disagreement": self.disagreement,
            "loo_rule": LOO_RULE,
            "settings": {key: _json_value(value) for key, value in self.settings.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """`to_dict()` as JSON text (strict: no NaN or infinity)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


LOO_RULE = (
    f"smallest K whose elpd_loo is within {LOO_SE_MULTIPLE:g} x elpd_diff_se, or within "
    f"{LOO_SIMILAR:g}, of the best K's"
)


def _json_value(value: Any) -> Any:
    """A JSON-ready value: tuples as lists, NaN and infinities as None."""
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------
# The driver


def select_components(
    X: Any,
    ks: Iterable[int] = range(1, 7),
    *,
    methods: Sequence[str] = SELECTION_METHODS,
    random_seed: int = 0,
    draws: int = SELECTION_DRAWS,
    tune: int = SELECTION_TUNE,
    chains: int = SELECTION_CHAINS,
    progress: Progress | None = None,
) -> SelectionResult:
    """Fit K = each of ks to X (n, D) by the chosen methods; every criterion and each choice.

    EM: `EM_RESTARTS` k-means++ starts; VB: as many; NUTS: `build_model` (default priors) sampled
    by `sample_posterior` from the EM fit, `chains` x `draws` after `tune` steps. Everything is
    seeded by random_seed. `progress(row)` is called after each K (e.g. print `row.describe()`).
    """
    X = check_data(X)
    ks = check_ks(ks, X.shape[0])
    methods = check_methods(methods)
    rows, elpds = [], {}
    for k in ks:
        row, elpd = select_one(X, k, methods, random_seed, draws, tune, chains)
        rows.append(row)
        if elpd is not None:
            elpds[k] = elpd
        if progress is not None:
            progress(row)
    rows = add_loo_comparison(rows, elpds)
    choice = choose(rows)
    return SelectionResult(
        rows=tuple(rows),
        choice=choice,
        disagreement=disagreement(choice),
        settings={
            "methods": list(methods),
            "random_seed": random_seed,
            "draws": draws,
            "tune": tune,
            "chains": chains,
            "em_restarts": EM_RESTARTS,
        },
    )


def check_ks(ks: Any, n_points: int) -> tuple[int, ...]:
    """The Ks as a sorted tuple of distinct integers in 1..n, raising ValueError otherwise."""
    try:
        values = tuple(ks)
    except TypeError:
        raise TypeError(f"ks must be an iterable of integers, got {ks!r}") from None
    if not values:
        raise ValueError("ks must hold at least one number of components, got none")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"ks must hold integers >= 1, got {value!r}")
        if value > n_points:
            raise ValueError(f"ks holds {value}, more components than X has points ({n_points})")
    if len(set(values)) != len(values):
        raise ValueError(f"ks must not repeat a value, got {list(values)}")
    return tuple(sorted(int(value) for value in values))


def check_methods(methods: Any) -> tuple[str, ...]:
    """The method names as a tuple of names from SELECTION_METHODS, raising ValueError otherwise."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    unknown = [name for name in methods if name not in SELECTION_METHODS]
    if unknown or not methods:
        raise ValueError(
            f"methods must be a non-empty subset of {SELECTION_METHODS}, got {list(methods)}"
        )
    return methods


def select_one(
    X: np.ndarray,
    k: int,
    methods: Sequence[str],
    random_seed: int,
    draws: int,
    tune: int,
    chains: int,
) -> tuple[SelectionRow, Any]:
    """The row for one K (EM, then VB, then NUTS from the EM fit), and NUTS's LOO (or None)."""
    values: dict[str, Any] = {"k": k}
    problems: list[str] = []
    em, elpd = None, None
    if "em" in methods or "nuts" in methods:
        em, em_values, em_problems = fit_em(X, k, random_seed)
        if "em" in methods:
            values.update(em_values)
            problems += em_problems
    if "vb" in methods:
        vb_values, vb_problems = fit_vb(X, k, random_seed)
        values.update(vb_values)
        problems += vb_problems
    if "nuts" in methods:
        nuts_values, nuts_problems, elpd = fit_nuts(X, k, em, random_seed, draws, tune, chains)
        values.update(nuts_values)
        problems += nuts_problems
    return SelectionRow(**values, problems=tuple(problems)), elpd


# ---------------------------------------------------------------------------------------------
# EM: log-likelihood, BIC, ICL


def fit_em(
    X: np.ndarray, k: int, random_seed: int
) -> tuple[GaussianMixtureEM | None, dict[str, Any], list[str]]:
    """EM with restarts at K: the estimator (None if every start failed), its numbers, problems."""
    started = time.perf_counter()
    estimator = GaussianMixtureEM(
        k, n_init=EM_RESTARTS, max_iter=EM_MAX_ITER, random_state=random_seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.fit(X)
        except DegenerateFitError as error:
            return None, {"em_seconds": time.perf_counter() - started}, [f"EM: {error}"]
    problems = _warnings_as_problems("EM", caught)
    bic = estimator.bic(X)
    values = {
        "log_likelihood": float(estimator.log_likelihood_),
        "bic": bic,
        "icl": integrated_completed_likelihood(bic, estimator.predict_proba(X)),
        "em_seconds": time.perf_counter() - started,
    }
    shortfall = too_few_points(*X.shape, k)
    if shortfall is not None:
        values.update(bic=None, icl=None)
        problems.append(
            f"EM: BIC and ICL left out, since {shortfall}: in every fit some component's "
            "covariance rests on the reg_covar floor, which they would measure"
        )
    smallest = float(np.min(estimator.weights_) * X.shape[0])
    if smallest < X.shape[1] + 1:
        problems.append(
            f"EM: a component holds {smallest:.2g} points' worth of mass, fewer than D + 1 = "
            f"{X.shape[1] + 1}: its covariance rests on too few points (K is too large)"
        )
    problems += singular_components(estimator)
    return estimator, values, problems


def singular_components(estimator: GaussianMixtureEM) -> list[str]:
    """A problem line if a fitted covariance collapsed onto the reg_covar ridge, else none.

    With rounded or tied data a component can sit on a subspace where the likelihood is
    unbounded; EM then stops at a spike held up only by reg_covar, and its log-likelihood (hence
    BIC and ICL) measures the ridge, not the data.
    """
    smallest = np.linalg.eigvalsh(estimator.covariances_).min(axis=1)  # (K,)
    singular = np.flatnonzero(smallest <= SINGULAR_RIDGE * estimator.reg_covar)
    if not singular.size:
        return []
    return [
        f"EM: component(s) {singular.tolist()} collapsed onto a subspace (smallest covariance "
        f"eigenvalue {smallest[singular].min():.2g}, at the reg_covar ridge): the likelihood is "
        "unbounded there, so log L, BIC and ICL are not comparable"
    ]


def integrated_completed_likelihood(bic: float, responsibilities: np.ndarray) -> float:
    """ICL = BIC - 2 sum_i log max_k r_ik (responsibilities (n, K)); mclust's `icl`, BIC's sign."""
    return float(bic - 2.0 * np.sum(np.log(np.max(responsibilities, axis=1))))


def _warnings_as_problems(method: str, caught: list[warnings.WarningMessage]) -> list[str]:
    """The method's own warnings as problem lines; any other warning is issued again."""
    problems = []
    for caught_warning in caught:
        if caught_warning.category.__module__.startswith("em_reference"):
            problems.append(f"{method}: {caught_warning.message}")
        else:
            warnings.warn_explicit(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    return problems


# ---------------------------------------------------------------------------------------------
# VB: the ELBO and the components it keeps


def fit_vb(X: np.ndarray, k: int, random_seed: int) -> tuple[dict[str, Any], list[str]]:
    """VB with restarts at K: the ELBO, the number of components it uses, and problems."""
    started = time.perf_counter()
    estimator = VariationalGaussianMixture(
        k, n_init=EM_RESTARTS, max_iter=EM_MAX_ITER, random_state=random_seed
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X)
    problems = _warnings_as_problems("VB", caught)
    if not estimator.converged_:
        problems.append(f"VB: stopped at max_iter={EM_MAX_ITER} before the ELBO converged")
    values = {
        "elbo": float(estimator.lower_bound_),
        "vb_effective_components": int(np.sum(estimator.weights_ > EFFECTIVE_WEIGHT)),
        "vb_seconds": time.perf_counter() - started,
    }
    return values, problems


# ---------------------------------------------------------------------------------------------
# NUTS: PSIS-LOO and the sampler's diagnostics


def fit_nuts(
    X: np.ndarray,
    k: int,
    em: GaussianMixtureEM | None,
    random_seed: int,
    draws: int,
    tune: int,
    chains: int,
) -> tuple[dict[str, Any], list[str], Any]:
    """NUTS at K from the EM fit: LOO and diagnostics as row values, problems, the LOO object."""
    if em is None:
        return {}, ["NUTS: not run, since EM found no fit to start from"], None
    shortfall = too_few_points(*X.shape, k)
    if shortfall is not None:
        return {}, [f"NUTS: not run, since {shortfall}"], None
    started = time.perf_counter()
    try:
        idata = sample_posterior(
            build_model(X, k),
            draws=draws,
            tune=tune,
            chains=chains,
            random_seed=random_seed,
            reference=em,
            progressbar=False,
            predictions=False,
        )
    except RuntimeError as error:  # nutpie's: e.g. no start with a finite density near EM's fit
        reason = str(error).splitlines()[0]
        return (
            {"nuts_seconds": time.perf_counter() - started},
            [f"NUTS: not fitted, the sampler stopped ({reason})"],
            None,
        )
    return nuts_criteria(X, idata, started)


def nuts_criteria(
    X: np.ndarray, idata: Any, started: float
) -> tuple[dict[str, Any], list[str], Any]:
    """LOO and diagnostics of NUTS's draws for X (n, D) as row values, problems, the LOO object.

    `started` is when the sampling began (perf_counter).
    """
    diagnostics = diagnose(idata)
    posterior = idata.posterior.to_dataset()
    problems = [f"NUTS: {problem}" for problem in diagnostics.problems]
    try:
        elpd = psis_loo(posterior, pointwise_log_likelihood(X, posterior))
    except ValueError:  # a draw's covariance singular in float64, or tails without spread
        problems.append(
            "PSIS-LOO: not computed, since the draws are degenerate (a covariance singular in "
            "float64 or chains that did not move): the components collapse at this K"
        )
        return {"nuts_seconds": time.perf_counter() - started}, problems, None
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    pareto_k_bad = int(np.sum(elpd.pareto_k.values > PARETO_K_BAD))
    values = {
        "elpd_loo": float(elpd.elpd),
        "elpd_loo_se": float(elpd.se),
        "pareto_k_bad": pareto_k_bad,
        "max_rhat": diagnostics.max_rhat,
        "divergences": diagnostics.divergences,
        "relabelled_draws": diagnostics.relabelled_draws,
        "min_ess_bulk": diagnostics.min_ess_bulk,
        "nuts_compile_seconds": diagnostics.compile_seconds,
        "nuts_sampling_seconds": diagnostics.sampling_seconds,
        "nuts_seconds": time.perf_counter() - started,
    }
    problems += posterior_problems(posterior, diagnostics.relabelled_draws, n_draws)
    if pareto_k_bad:
        problems.append(
            f"PSIS-LOO: {pareto_k_bad} of {X.shape[0]} points have Pareto k > {PARETO_K_BAD}, "
            "so their elpd terms are unreliable"
        )
    return values, problems, elpd


def posterior_problems(posterior: xr.Dataset, relabelled: int, n_draws: int) -> list[str]:
    """Signs of more components than the data support: label switching, near-empty components."""
    problems = []
    if relabelled:
        problems.append(
            f"NUTS: {relabelled} of {n_draws} draws had to be relabelled to EM's component "
            "order: the labels switch, the posterior is multimodal"
        )
    mean_weights = posterior["weights"].mean(("chain", "draw")).values
    empty = np.flatnonzero(mean_weights < EFFECTIVE_WEIGHT)
    if empty.size:
        problems.append(
            f"NUTS: component(s) {empty.tolist()} have posterior mean weight below "
            f"{EFFECTIVE_WEIGHT:.0%}: more components than the data support"
        )
    return problems


def pointwise_log_likelihood(X: np.ndarray, posterior: xr.Dataset) -> xr.DataArray:
    """Log-likelihoods log p(x_i | theta_s) (chain, draw, point) of every draw, the shared formula.

    Computed in NumPy by `em_reference.mixture_log_density` from the drawn weights, means and
    covariances, so no PyTensor function has to be compiled for it.
    """
    weights = posterior["weights"].transpose("chain", "draw", "component").values
    means = posterior["means"].transpose("chain", "draw", "component", "dim").values
    covariances = (
        posterior["covariances"].transpose("chain", "draw", "component", "dim", "dim_bis").values
    )
    n_chains, n_draws, n_components = weights.shape
    flat_precisions = precisions_cholesky(covariances.reshape(-1, *covariances.shape[2:]))
    flat_weights = weights.reshape(-1, n_components)
    flat_means = means.reshape(-1, *means.shape[2:])
    values = np.stack(
        [
            mixture_log_density(X, flat_weights[s], flat_means[s], flat_precisions[s], n_components)
            for s in range(flat_weights.shape[0])
        ]
    )
    return xr.DataArray(
        values.reshape(n_chains, n_draws, X.shape[0]),
        dims=("chain", "draw", "point"),
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values},
        name="X",
    )


def psis_loo(posterior: xr.Dataset, log_likelihood: xr.DataArray) -> Any:
    """arviz_stats PSIS-LOO with pointwise values (r_eff from the posterior's ESS).

    ArviZ's Pareto-k warning is silenced here because `fit_nuts` reports the count in the row.
    """
    tree = DataTree.from_dict(
        {"posterior": posterior, "log_likelihood": xr.Dataset({"X": log_likelihood})}
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Pareto.*")
        return azs.loo(tree, pointwise=True, var_name="X")


def add_loo_comparison(rows: list[SelectionRow], elpds: dict[int, Any]) -> list[SelectionRow]:
    """Rows with elpd_diff, its SE and the rank from arviz_stats `compare` over the K with LOO."""
    if not elpds:
        return rows
    if len(elpds) == 1:
        table = {"elpd_diff": {k: 0.0 for k in elpds}, "dse": {k: 0.0 for k in elpds}}
        ranks = {k: 0 for k in elpds}
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Pareto.*")
            frame = azs.compare({k: elpd for k, elpd in elpds.items()}, round_to="none")
        table = {"elpd_diff": frame["elpd_diff"].to_dict(), "dse": frame["dse"].to_dict()}
        ranks = frame["rank"].to_dict()
    return [
        row
        if row.k not in elpds
        else _replace(
            row,
            elpd_diff=float(table["elpd_diff"][row.k]),
            elpd_diff_se=float(table["dse"][row.k]),
            loo_rank=int(ranks[row.k]),
        )
        for row in rows
    ]


def _replace(row: SelectionRow, **changes: Any) -> SelectionRow:
    """A copy of row with some fields changed."""
    return SelectionRow(**{**{f.name: getattr(row, f.name) for f in fields(row)}, **changes})


# ---------------------------------------------------------------------------------------------
# Choices


CRITERIA = {"bic": "BIC", "icl": "ICL", "elbo": "the ELBO", "loo": "PSIS-LOO"}


def choose(rows: Sequence[SelectionRow]) -> Choice:
    """Each criterion's K: BIC and ICL minimum, ELBO maximum, LOO by `choose_loo`."""
    return Choice(
        bic=_best_k(rows, "bic", lower=True),
        icl=_best_k(rows, "icl", lower=True),
        elbo=_best_k(rows, "elbo", lower=False),
        loo=choose_loo(rows),
    )


def _best_k(rows: Sequence[SelectionRow], name: str, lower: bool) -> int | None:
    """The K whose `name` is lowest (or highest); the smallest such K on a tie; None if unset."""
    scored = [(getattr(row, name), row.k) for row in rows if getattr(row, name) is not None]
    if not scored:
        return None
    best = min(value for value, _ in scored) if lower else max(value for value, _ in scored)
    return min(k for value, k in scored if value == best)


def choose_loo(rows: Sequence[SelectionRow]) -> int | None:
    """The smallest K whose elpd is not clearly below the best K's (see LOO_RULE).

    The best elpd is itself a noisy estimate, and a surplus component that copies an existing
    one predicts new points as well as the simpler mixture does, so the highest elpd often
    belongs to a K above the truth by a margin within the noise. Following the one-standard-
    error habit of cross-validation, the simplest K that is not clearly worse is kept: within
    LOO_SE_MULTIPLE SEs of the paired difference (about a 95 % normal band), or within
    LOO_SIMILAR, below which ArviZ says the SE itself is unreliable and the models predict alike.
    """
    for row in sorted(rows, key=lambda row: row.k):
        if row.elpd_diff is None or row.elpd_diff_se is None:
            continue
        if -row.elpd_diff <= max(LOO_SE_MULTIPLE * row.elpd_diff_se, LOO_SIMILAR):
            return row.k
    return None


REASONS = {
    "icl": "ICL adds the entropy of the classification, so it penalises overlapping components",
    "loo": "PSIS-LOO scores only predictions of held-out points and pays no log n per parameter",
    "elbo": "the ELBO integrates over the parameters under VB's priors instead of penalising them",
    "bic": "BIC pays log n per parameter",
}


def disagreement(choice: Choice) -> str | None:
    """One sentence naming which criteria pick which K and why they can differ; None if agreed."""
    picks = {name: k for name, k in asdict(choice).items() if k is not None}
    if len(set(picks.values())) <= 1:
        return None
    by_k: dict[int, list[str]] = {}
    for name, k in picks.items():
        by_k.setdefault(k, []).append(name)
    clauses = [
        f"{' and '.join(CRITERIA[name] for name in names)} pick{'s' if len(names) == 1 else ''} "
        f"K = {k}"
        for k, names in sorted(by_k.items())
    ]
    majority = max(by_k.values(), key=len)
    outliers = [name for name in picks if name not in majority]
    reasons = "; ".join(REASONS[name] for name in outliers)
    return f"The criteria disagree: {', '.join(clauses)} ({reasons})."


# ---------------------------------------------------------------------------------------------
# The figure


def plot_selection(result: SelectionResult, path: str | Path, dpi: int = 110) -> Path:
    """Every criterion against K, one panel per method run, the chosen K starred; the PNG's path."""
    panels = [
        (method, draw)
        for method, draw in (("em", _draw_em), ("vb", _draw_vb), ("nuts", _draw_nuts))
        if method in result.settings.get("methods", SELECTION_METHODS)
    ]
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (_, draw) in zip(axes, panels, strict=True):
        draw(ax, result)
        ax.set_xlabel("number of components K")
        ax.set_xticks([row.k for row in result.rows])
        ax.grid(alpha=0.3)
    figure.suptitle("Choosing K: every criterion against K (chosen K starred)")
    path = Path(path)
    figure.savefig(path, dpi=dpi)
    return path


def _series(result: SelectionResult, name: str) -> tuple[list[int], list[float]]:
    """The Ks where `name` is set and its values."""
    pairs = [(row.k, getattr(row, name)) for row in result.rows if getattr(row, name) is not None]
    return [k for k, _ in pairs], [value for _, value in pairs]


def _mark_choice(ax: Any, result: SelectionResult, name: str, chosen: int | None, colour: str):
    """A star on the curve of `name` at the chosen K, and a dotted line through it."""
    if chosen is None:
        return
    value = next(getattr(row, name) for row in result.rows if row.k == chosen)
    ax.plot([chosen], [value], marker="*", markersize=16, color=colour, zorder=5)
    ax.axvline(chosen, color=colour, linestyle=":", alpha=0.7)


def _draw_em(ax: Any, result: SelectionResult) -> None:
    """EM's BIC and ICL (lower is better)."""
    for name, colour in (("bic", "tab:blue"), ("icl", "tab:orange")):
        ks, values = _series(result, name)
        ax.plot(ks, values, marker="o", color=colour, label=name.upper())
        _mark_choice(ax, result, name, getattr(result.choice, name), colour)
    ax.set_title("EM: BIC and ICL\n(lower is better)")
    ax.set_ylabel("-2 log L + penalty")
    ax.legend()


def _draw_vb(ax: Any, result: SelectionResult) -> None:
    """VB's ELBO (higher is better), each point labelled with the components VB keeps."""
    ks, values = _series(result, "elbo")
    ax.plot(ks, values, marker="o", color="tab:green", label="ELBO")
    _mark_choice(ax, result, "elbo", result.choice.elbo, "tab:green")
    for row in result.rows:
        if row.elbo is not None:
            ax.annotate(
                f"{row.vb_effective_components} used",
                (row.k, row.elbo),
                textcoords="offset points",
                xytext=(0, -11),
                ha="center",
                va="top",
                fontsize=8,
            )
    ax.margins(x=0.08, y=0.15)  # room for the outermost points' labels inside the axes
    ax.set_title("VB: ELBO\n(higher is better)")
    ax.set_ylabel("evidence lower bound")


def _draw_nuts(ax: Any, result: SelectionResult) -> None:
    """NUTS's elpd_loo with its SE (higher is better); open markers where a row has problems."""
    rows = [row for row in result.rows if row.elpd_loo is not None]
    ax.errorbar(
        [row.k for row in rows],
        [row.elpd_loo for row in rows],
        yerr=[row.elpd_loo_se for row in rows],
        marker="o",
        color="tab:purple",
        capsize=3,
    )
    flagged = [row for row in rows if row.problems]
    ax.plot(
        [row.k for row in flagged],
        [row.elpd_loo for row in flagged],
        linestyle="none",
        marker="o",
        markersize=11,
        markerfacecolor="none",
        color="tab:red",
        label="problems flagged",
    )
    _mark_choice(ax, result, "elpd_loo", result.choice.loo, "tab:purple")
    ax.set_title("NUTS: PSIS-LOO elpd ± SE\n(higher is better)")
    ax.set_ylabel("elpd_loo")
    if flagged:
        ax.legend()
