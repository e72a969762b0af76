"""What EM and VB share, written once: starts, the convergence rule, restarts, estimator API.

- Data-driven starts: k-means++ seeding or K random points, each followed by one M-step from
  hard assignments; explicit starting parameters checked against the data.
- One run: iterate a step until the objective (EM's log-likelihood, VB's ELBO, totals over the
  points) improves by less than `tol`, or `max_iter` steps.
- Restarts: n_init runs, failed ones (`DegenerateFitError`) skipped and counted, the run with
  the highest objective kept; a `ConvergenceWarning` for skipped starts and for a kept run that
  stopped at max_iter.
- The scikit-learn estimator conventions, without importing scikit-learn: `get_params`,
  `set_params`, `fit_predict`, a `repr` of the non-default parameters; `__init__` stores its
  arguments untouched and `fit` checks them.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from em_reference.parameters import MixtureParameters
from em_reference.shifted_sums import parameters_from_responsibilities
from em_reference.validation import (
    check_data,
    check_integer,
    check_n_components,
    check_non_negative,
)

INIT_METHODS = ("kmeans++", "random")


class NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator and `fit` has not been called."""


class DegenerateFitError(ValueError):
    """A run met a collapsed component or an objective that is not finite."""


class ConvergenceWarning(UserWarning):
    """A fit stopped at max_iter before converging, or some of its starts failed."""


# ---------------------------------------------------------------------------------------------
# Starts


def kmeans_plus_plus_centres(
    X: np.ndarray, n_components: int, rng: np.random.Generator
) -> np.ndarray:
    """K centres (K, D) by k-means++ seeding: each new centre drawn with prob. ~ distance^2."""
    centres = [X[rng.integers(X.shape[0])]]
    closest_sq = np.sum((X - centres[0]) ** 2, axis=1)
    for _ in range(1, n_components):
        total = closest_sq.sum()
        index = (
            rng.choice(X.shape[0], p=closest_sq / total) if total > 0 else rng.integers(X.shape[0])
        )
        centres.append(X[index])
        closest_sq = np.minimum(closest_sq, np.sum((X - X[index]) ** 2, axis=1))
    return np.array(centres)


def random_centres(X: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    """K distinct data points (K, D) chosen uniformly at random as centres."""
    return X[rng.choice(X.shape[0], size=n_components, replace=False)]


def parameters_from_centres(
    X: np.ndarray, centres: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One M-step from hard assignments of every point to its nearest centre (K, D)."""
    sq_distances = np.sum((X[:, None, :] - centres[None, :, :]) ** 2, axis=2)  # (n, K)
    hard = np.zeros_like(sq_distances)
    hard[np.arange(X.shape[0]), np.argmin(sq_distances, axis=1)] = 1.0
    return parameters_from_responsibilities(X, hard, reg_covar)


def data_driven_starts(
    X: np.ndarray, init: str, n_components: int, n_init: int, random_state: Any, reg_covar: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """n_init starting (weights, means, covariances) by `init` ("kmeans++" or "random")."""
    choose = kmeans_plus_plus_centres if init == "kmeans++" else random_centres
    rng = np.random.default_rng(random_state)
    return [
        parameters_from_centres(X, choose(X, n_components, rng), reg_covar) for _ in range(n_init)
    ]


def explicit_start(init: Any, n_components: int, n_features: int) -> MixtureParameters:
    """Starting parameters given as `init`, checked against K and the data's D."""
    start = MixtureParameters.from_any(init)
    if start.n_components != n_components:
        raise ValueError(
            f"init has {start.n_components} components but n_components={n_components}"
        )
    if start.n_features != n_features:
        raise ValueError(f"init means have {start.n_features} columns but X has {n_features}")
    return start


# ---------------------------------------------------------------------------------------------
# One run, and the best of several


@dataclass(frozen=True)
class RunOutcome[State]:
    """Where one run from one start ended: its final state and the objective after each step.

    For EM the history starts with the starting parameters' log-likelihood (n_iter + 1 values);
    for VB, with the ELBO after the first step (n_iter values).
    """

    state: State
    objective_history: tuple[float, ...]
    converged: bool
    n_iter: int

    @property
    def objective(self) -> float:
        """The objective of the final state."""
        return self.objective_history[-1]


def has_converged(history: Sequence[float], tol: float) -> bool:
    """The stopping rule: the last step improved the objective (a total) by less than tol."""
    return len(history) > 1 and history[-1] - history[-2] < tol


def iterate[State](
    step: Callable[[State, int], tuple[State, float]],
    state: State,
    history: list[float],
    max_iter: int,
    tol: float,
) -> RunOutcome[State]:
    """Apply step(state, iteration) -> (state, objective) until `has_converged` or max_iter."""
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        state, objective = step(state, iteration)
        history.append(objective)
        if has_converged(history, tol):
            converged = True
            break
    return RunOutcome(state, tuple(history), converged, iteration)


def best_run[Start, State](
    run: Callable[[Start], RunOutcome[State]], starts: Sequence[Start], method: str
) -> tuple[RunOutcome[State], int]:
    """The run with the highest final objective over the starts, and how many starts failed.

    Starts whose run raises DegenerateFitError are skipped, with a ConvergenceWarning; the fit
    fails only when every start fails.
    """
    outcomes, failures = [], []
    for start in starts:
        try:
            outcomes.append(run(start))
        except DegenerateFitError as error:
            failures.append(error)
    if not outcomes:
        which = "the start" if len(starts) == 1 else f"all {len(starts)} starts"
        raise DegenerateFitError(f"{method} failed from {which}: {failures[0]}")
    if failures:
        warnings.warn(
            f"{len(failures)} of {len(starts)} {method} starts failed and were skipped "
            f"(the first: {failures[0]})",
            ConvergenceWarning,
            stacklevel=3,
        )
    return max(outcomes, key=lambda outcome: outcome.objective), len(failures)


def warn_unless_converged(
    outcome: RunOutcome, method: str, objective: str, max_iter: int, tol: float
) -> None:
    """A ConvergenceWarning if the kept run stopped at max_iter, with its last change."""
    if outcome.converged:
        return
    history = outcome.objective_history
    change = f"by {history[-1] - history[-2]:.3g}" if len(history) > 1 else "(it was the first)"
    warnings.warn(
        f"{method} stopped at max_iter={max_iter} before converging (the last iteration "
        f"changed the {objective} {change}, tol={tol:g}): increase max_iter",
        ConvergenceWarning,
        stacklevel=3,
    )


# ---------------------------------------------------------------------------------------------
# The estimator conventions


@dataclass(frozen=True)
class FitSettings:
    """The checked settings every mixture fit uses: the data X (n, D), K, starts, stopping."""

    X: np.ndarray
    n_components: int
    n_init: int
    max_iter: int
    tol: float


class MixtureEstimator:
    """Base of the mixture estimators: scikit-learn's conventions and the checks of `fit`.

    Subclasses list their parameters as keyword arguments of `__init__` (stored as given) and
    implement `fit(X, y=None)` and `predict(X)`; a fitted estimator has `n_features_in_`.
    """

    _fitted_attribute = "n_features_in_"

    @classmethod
    def _parameter_names(cls) -> list[str]:
        """The parameters of `__init__`, in order."""
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The estimator's parameters by name (none is itself an estimator, so `deep` is moot)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params: Any) -> MixtureEstimator:
        """Set parameters by name (checked at the next `fit`); returns self."""
        valid = self._parameter_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        """The class and its parameters that differ from the defaults, as a constructor call."""
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same_value(value, defaults[name].default)
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags (a density estimator); only scikit-learn calls this, so it exists.

        Importing scikit-learn here, not at the top, keeps em_reference NumPy-only at run time.
        """
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            classifier_tags=None,
            regressor_tags=None,
            input_tags=InputTags(),
        )

    def fit(self, X: Any, y: Any = None) -> MixtureEstimator:
        """Fit the model to X (n, D); returns self."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """The most probable component of each point (n,)."""
        raise NotImplementedError

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit to X (n, D) and return the most probable component of each point (n,)."""
        return self.fit(X).predict(X)

    @property
    def parameters_(self) -> MixtureParameters:
        """The fitted `weights_` (K,), `means_` (K, D), `covariances_` (K, D, D) as one value.

        What each estimator's attributes mean is its own (VB's are E_q[pi] and E_q[Lambda]^-1);
        this lets `MixtureParameters.from_any` and the analysis take either estimator alike.
        """
        self._check_fitted()
        return MixtureParameters(self.weights_, self.means_, self.covariances_)

    def _check_fitted(self) -> None:
        """Raise NotFittedError unless `fit` has been called."""
        if not hasattr(self, self._fitted_attribute):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")

    def _fit_settings(self, X: Any) -> FitSettings:
        """Check the parameters every mixture fit shares, and the data; ValueError naming them."""
        n_components = check_integer("n_components", self.n_components)
        n_init = check_integer("n_init", self.n_init)
        max_iter = check_integer("max_iter", self.max_iter)
        tol = check_non_negative("tol", self.tol)
        X = check_data(X)
        check_n_components(n_components, X.shape[0])
        return FitSettings(X, n_components, n_init, max_iter, tol)

    def _starts(
        self, settings: FitSettings, reg_covar: float, explicit: str
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
        """Data-driven starting parameters when `init` names a method, else None.

        `explicit` names the kinds of explicit start the estimator also accepts, for messages.
        """
        if not isinstance(self.init, str):
            if settings.n_init != 1:
                raise ValueError(
                    f"n_init must be 1 with explicit initial values, got {settings.n_init}"
                )
            return None
        if self.init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS} or {explicit}, got {self.init!r}")
        return data_driven_starts(
            settings.X,
            self.init,
            settings.n_components,
            settings.n_init,
            self.random_state,
            reg_covar,
        )


def _same_value(value: Any, default: Any) -> bool:
    """Whether a parameter value is its default (an array or other object only if the same)."""
    if value is default:
        return True
    return (
        isinstance(value, str | int | float) and type(value) is type(default) and value == default
    )
