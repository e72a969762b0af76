"""Sampling diagnostics as data: divergences, R-hat, ESS and timings, problems spelled out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np
import xarray as xr
from xarray import DataTree

DIAGNOSED_VARIABLES = ("weights", "means", "covariances")
"""The variables whose every scalar must have converged (the ones compared with EM)."""

MAX_RHAT = 1.01
MIN_ESS = 400
ONE_CHAIN = (
    "R-hat cannot be computed from a single chain: sample 2 or more chains to check convergence"
)


@dataclass(frozen=True)
class Diagnostics:
    """How trustworthy a NUTS run is; `problems` has one readable line per failed check.

    A run is flagged for any divergence, any R-hat above `MAX_RHAT` or any bulk or tail ESS below
    `MIN_ESS` among the scalars of weights, means and covariances. Timings are in seconds.
    `relabelled_draws` counts draws that had to be permuted to the reference labelling;
    `sampler` is the NUTS that ran ("nutpie" or "pymc") and `mass_matrix` the mass matrix it
    adapted while tuning ("diag", "low-rank" or "full"). With one chain R-hat is NaN (it
    compares chains) and `problems` says so.
    """

    divergences: int
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    sampling_seconds: float
    compile_seconds: float
    problems: tuple[str, ...]
    relabelled_draws: int = 0
    mass_matrix: str = ""
    sampler: str = ""

    @property
    def ok(self) -> bool:
        """True when no divergence, R-hat or ESS problem was found."""
        return not self.problems

    @property
    def ess_bulk_per_second(self) -> float:
        """The smallest bulk ESS per second of sampling: the benchmark's speed measure."""
        return self.min_ess_bulk / self.sampling_seconds


def diagnose(idata: DataTree, summary: xr.Dataset | None = None) -> Diagnostics:
    """Diagnostics of a DataTree from `sample_posterior` (or a loaded copy of one).

    `summary`, if given, is `arviz_stats.summary(idata, fmt="xarray")` of at least the
    DIAGNOSED_VARIABLES (dim `summary` holding "r_hat", "ess_bulk", "ess_tail"): its R-hat and
    ESS are used instead of being computed again.
    """
    posterior = varying(idata.posterior.to_dataset()[list(DIAGNOSED_VARIABLES)])
    n_draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    divergences = int(idata.sample_stats["diverging"].sum())
    if summary is None:
        ess_bulk = azs.ess(posterior, method="bulk")
        ess_tail = azs.ess(posterior, method="tail")
        rhat = None
    else:
        table = summary[list(posterior.data_vars)]
        ess_bulk, ess_tail, rhat = (
            table.sel(summary=name, drop=True) for name in ("ess_bulk", "ess_tail", "r_hat")
        )
    one_chain = posterior.sizes["chain"] < 2
    if one_chain:
        max_rhat, worst_rhat = math.nan, ""
    else:
        rhat = azs.rhat(posterior) if rhat is None else rhat
        max_rhat, worst_rhat = extreme_scalar(rhat, largest=True)
    min_bulk, worst_bulk = extreme_scalar(ess_bulk, largest=False)
    min_tail, worst_tail = extreme_scalar(ess_tail, largest=False)
    problems = []
    if divergences > 0:
        problems.append(f"{divergences} divergent transitions in {n_draws} draws")
    if one_chain:
        problems.append(ONE_CHAIN)
    elif not max_rhat <= MAX_RHAT:
        problems.append(f"R-hat {max_rhat:.4f} > {MAX_RHAT} for {worst_rhat}")
    if not min_bulk >= MIN_ESS:
        problems.append(f"bulk ESS {min_bulk:.0f} < {MIN_ESS} for {worst_bulk}")
    if not min_tail >= MIN_ESS:
        problems.append(f"tail ESS {min_tail:.0f} < {MIN_ESS} for {worst_tail}")
    attrs = idata.posterior.attrs
    return Diagnostics(
        divergences=divergences,
        max_rhat=max_rhat,
        min_ess_bulk=min_bulk,
        min_ess_tail=min_tail,
        sampling_seconds=float(attrs.get("sampling_seconds", math.nan)),
        compile_seconds=float(attrs.get("compile_seconds", math.nan)),
        problems=tuple(problems),
        relabelled_draws=int(attrs.get("relabelled_draws", 0)),
        mass_matrix=str(attrs.get("mass_matrix", "")),
        sampler=str(attrs.get("sampler", "")),
    )


def varying(posterior: xr.Dataset) -> xr.Dataset:
    """The posterior without the variables that are one value in every draw.

    Such a variable (K = 1's weight, always 1) has an R-hat and ESS of 0/0: undefined, not bad.
    A chain stuck at one value while the others move is kept, and fails.
    """
    constant = [
        name
        for name, variable in posterior.data_vars.items()
        if bool((variable.max(("chain", "draw")) == variable.min(("chain", "draw"))).all())
    ]
    return posterior.drop_vars(constant)


def extreme_scalar(values: xr.Dataset, largest: bool) -> tuple[float, str]:
    """The largest (or smallest) scalar over all variables, and its label like "means[1, 0]".

    NaN (e.g. R-hat of a chain stuck at one value) counts as the worst value.
    """
    best_value, best_label = math.nan, ""
    for name, variable in values.data_vars.items():
        flat = np.asarray(variable.values, dtype=np.float64).ravel()
        if np.any(np.isnan(flat)):
            index = int(np.flatnonzero(np.isnan(flat))[0])
            return math.nan, _scalar_label(name, variable, index)
        index = int(np.argmax(flat) if largest else np.argmin(flat))
        better = flat[index] > best_value if largest else flat[index] < best_value
        if best_label == "" or better:
            best_value, best_label = float(flat[index]), _scalar_label(name, variable, index)
    return best_value, best_label


def _scalar_label(name: str, variable: xr.DataArray, flat_index: int) -> str:
    """Label "name[k, dim]" of the scalar at flat_index of variable (just "name" for a scalar).

    Each index is shown as its coordinate value (a column's name for `dim`), else its position.
    """
    if variable.ndim == 0:
        return str(name)
    position = np.unravel_index(flat_index, variable.shape)
    shown = [
        variable[dim].values[i].item() if dim in variable.coords else int(i)
        for dim, i in zip(variable.dims, position, strict=True)
    ]
    return f"{name}[{', '.join(str(value) for value in shown)}]"
