"""VB for the comparison: one CAVI fit at the run's K, started from EM's reference run.

The fit is a `VBFit` (q's parameters, the priors actually used, the ELBO history; JSON
round-trip, saved as vb.json), so a report is rebuilt without refitting. VB starts from the
reference run's estimate, so its components are in the common component order. Its summaries
(mean, SD, equal-tailed interval, and the Monte Carlo error of the SD) are taken from
`VB_DRAWS` independent draws from q, seeded by the run's seed, so they line up with the NUTS
posterior's entry by entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.checks import standard_deviations
from analysis.datasets import Dataset
from analysis.em_fits import EMFit
from analysis.settings import INTERVAL_PROB, VB_DRAWS
from em_reference import ConvergenceWarning, VariationalGaussianMixture
from em_reference.variational import VariationalPosterior, draw_posterior

PRIOR_NAMES = (
    "weight_concentration_prior",
    "mean_precision_prior",
    "mean_prior",
    "degrees_of_freedom_prior",
    "covariance_prior",
)
"""VB's priors by their scikit-learn names: alpha_0, beta_0, m_0, nu_0 and W_0^-1."""
POSTERIOR_FIELDS = (
    "weight_concentration",
    "mean_precision",
    "means",
    "degrees_of_freedom",
    "scale_cholesky",
)
"""q's parameters as `VariationalPosterior` names them: alpha, beta, m, nu and W's factor."""
DATA_SCALED = "the data-scaled default priors (scikit-learn's)"
DRAWS_STREAM = 2
"""VB's draws use the stream [random_seed, DRAWS_STREAM], apart from NUTS's and EM's."""


@dataclass(frozen=True, eq=False)
class VBFit:
    """VB's fit: q, the priors used (`prior_source` says whose), the start, the ELBO history."""

    posterior: VariationalPosterior
    priors: dict[str, Any]
    prior_source: str
    start: str
    lower_bound_history: tuple[float, ...]
    n_iter: int
    converged: bool

    @property
    def lower_bound(self) -> float:
        """The final ELBO, a lower bound on the log evidence ln p(X)."""
        return self.lower_bound_history[-1]

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for vb.json."""
        return {
            "start": self.start,
            "prior_source": self.prior_source,
            "priors": {name: _plain(value) for name, value in self.priors.items()},
            "posterior": {
                name: np.asarray(getattr(self.posterior, name)).tolist()
                for name in POSTERIOR_FIELDS
            },
            "lower_bound": self.lower_bound,
            "lower_bound_history": list(self.lower_bound_history),
            "n_iter": self.n_iter,
            "converged": self.converged,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VBFit:
        """Rebuild from `as_dict` output; KeyError or TypeError when a field is missing."""
        q = values["posterior"]
        posterior = VariationalPosterior(
            *(np.asarray(q[name], dtype=np.float64) for name in POSTERIOR_FIELDS)
        )
        return cls(
            posterior=posterior,
            priors={name: values["priors"][name] for name in PRIOR_NAMES},
            prior_source=str(values["prior_source"]),
            start=str(values["start"]),
            lower_bound_history=tuple(float(v) for v in values["lower_bound_history"]),
            n_iter=int(values["n_iter"]),
            converged=bool(values["converged"]),
        )

    def draws(self, random_seed: int, n_draws: int = VB_DRAWS) -> dict[str, np.ndarray]:
        """Independent draws from q: weights (S, K), means (S, K, D), covariances (S, K, D, D)."""
        rng = np.random.default_rng([random_seed, DRAWS_STREAM])
        return draw_posterior(self.posterior, n_draws, rng)


def _plain(value: Any) -> Any:
    """A prior value as JSON holds it (arrays as nested lists)."""
    return np.asarray(value).tolist() if isinstance(value, np.ndarray | list | tuple) else value


def source_priors(dataset: Dataset) -> tuple[dict[str, Any], str]:
    """The priors to fit with: the source's own set-up when it has one, else the defaults.

    None for a prior means VariationalGaussianMixture's data-scaled default.
    """
    if dataset.vb_priors is not None:
        return dict(dataset.vb_priors), f"{dataset.name}'s own priors (its source's)"
    return dict.fromkeys(PRIOR_NAMES), DATA_SCALED


def fit_vb(dataset: Dataset, reference: EMFit) -> VBFit:
    """CAVI on the dataset at the reference run's K, started from the reference run's estimate.

    A fit that stops at the iteration limit is kept (`converged` False, a warning in the
    report), as EM's is.
    """
    priors, source = source_priors(dataset)
    estimator = VariationalGaussianMixture(
        reference.parameters.n_components, init=reference.parameters, **priors
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(dataset.X)
    used = {name: getattr(estimator, f"{name}_") for name in PRIOR_NAMES}
    return VBFit(
        posterior=estimator.posterior_,
        priors=used,
        prior_source=source,
        start=f"EM's {reference.name} run's estimate",
        lower_bound_history=tuple(estimator.lower_bound_history_),
        n_iter=int(estimator.n_iter_),
        converged=bool(estimator.converged_),
    )


def draw_summary(draws: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Mean, SD (ddof 1), equal-tailed INTERVAL_PROB bounds and the SD's Monte Carlo error.

    name -> statistic -> array shaped like one draw. The draws are independent, so the SD's
    standard error is sqrt((m4 - s^4) / S) / (2 s) (delta method; m4 the fourth central moment),
    computed as s sqrt((kurtosis - 1) / S) / 2 from the standardised draws, so that no fourth
    power of a covariance draw (an eighth power of the data) is formed. A constant (K = 1's
    weight) has SD 0 and a Monte Carlo error of 0.
    """
    tail = (1.0 - INTERVAL_PROB) / 2.0
    summary = {}
    for name, values in draws.items():
        n_draws = values.shape[0]
        mean = values.mean(axis=0)
        sd = standard_deviations(values, ddof=1)
        z = np.divide(values - mean, sd, out=np.zeros_like(values), where=sd > 0)
        kurtosis = np.mean(z**4, axis=0)
        low, high = np.quantile(values, [tail, 1.0 - tail], axis=0)
        summary[name] = {
            "mean": mean,
            "sd": sd,
            "low": low,
            "high": high,
            "mcse_sd": sd * np.sqrt(np.maximum(kurtosis - 1.0, 0.0) / n_draws) / 2.0,
        }
    return summary
