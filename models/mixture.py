"""The Bayesian twin of the EM model: a PyMC Gaussian mixture with the EM reference's likelihood.

The mixture is parametrised as in `em_reference`: weights w (K,), means mu (K, D) and, for each
component, the lower Cholesky factor of its covariance, written L_k = diag(s_k) C_k with s_k the
standard deviations and C_k the Cholesky factor of the correlation matrix. The likelihood needs
the precision Cholesky factor U_k = L_k^{-T}, which one batched triangular solve gives; then
`em_reference.likelihood.mixture_log_density` is evaluated with `xp=pytensor.tensor`, so the model
and EM evaluate literally the same formula. Component labels are marginalised by that formula
(log sum_k w_k N(x | mu_k, Sigma_k)), so NUTS sees only continuous parameters.

`build_model(X, K, prior="gauss-wishart")` is the model VB approximates instead (Dirichlet
weights, Gauss-Wishart means and precisions, `em_reference.variational`'s priors), with the same
likelihood, so NUTS and VB can be compared on one posterior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.transforms import CholeskyCorrTransform
from pymc.initial_point import make_initial_point_fn

from em_reference import MixtureParameters, check_data, mixture_log_density, precisions_cholesky
from em_reference.generator import draw_mixture
from em_reference.validation import check_n_components, check_positive
from em_reference.variational import GaussWishartPrior, resolve_prior

OBSERVED = "X"
"""Name of the observed variable (and of its log_likelihood / posterior_predictive entries)."""

MEAN_PRIOR_SCALE = 10.0
"""Prior sd of each component mean, in units of the data's standard deviation per column."""

SD_PRIOR_SCALE = 2.0
"""Prior scale of each component standard deviation, in units of the data's sd per column."""

LKJ_ETA = 2.0
"""Shape of the LKJ prior on each component's correlation matrix."""

PRIORS = ("default", "gauss-wishart")
"""`build_model`'s priors: weakly informative (the default), or VB's Dirichlet + Gauss-Wishart."""

BARTLETT_CHI2 = "wishart_chi2"
BARTLETT_NORMALS = "wishart_normals"
PRIOR_SCALE_CHOLESKY = "prior_scale_cholesky"
"""Names of the Gauss-Wishart model's free Bartlett variables and of its W_0 factor (data)."""

SHARED_DATA = "X_data"
PRIOR_CENTRE = "prior_centre"
PRIOR_SPREAD = "prior_spread"
"""Names of the data variables of a `build_model(..., shared_data=True)` model: the points
(point, dim), and the data's column means and standard deviations (dim) that scale the priors."""


@dataclass(frozen=True)
class DefaultPrior:
    """The default prior's scales: means' and standard deviations' (in data sds) and LKJ's eta."""

    mean_scale: float
    sd_scale: float
    eta: float


_PRIORS: WeakKeyDictionary[pm.Model, DefaultPrior | GaussWishartPrior] = WeakKeyDictionary()
"""The prior each model `build_model` made was built with (flat models are not recorded)."""


def model_prior(model: pm.Model) -> DefaultPrior | GaussWishartPrior | None:
    """The prior `build_model` built model with; None for a flat model or one built elsewhere."""
    return _PRIORS.get(model)


class CholeskyCorr(CholeskyCorrTransform):
    """PyMC's transform for Cholesky factors of correlation matrices, renamed "choleskycorr".

    PyMC 6.4 recovers a variable's name from its transformed value's name by dropping the last
    three "_"-separated parts ("x_log__" -> "x"), which breaks on the stock name "cholesky_corr":
    `pm.compute_log_likelihood` and per-chain initial values then fail to find the variable.
    """

    name = "choleskycorr"


# ---------------------------------------------------------------------------------------------
# Building the model


def build_model(
    X: Any,
    n_components: int = 3,
    flat: bool = False,
    *,
    mean_scale: float = MEAN_PRIOR_SCALE,
    sd_scale: float = SD_PRIOR_SCALE,
    eta: float = LKJ_ETA,
    prior: str = "default",
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: Any = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: Any = None,
    names: Sequence[str] | None = None,
    shared_data: bool = False,
) -> pm.Model:
    """The K-component full-covariance Gaussian mixture for data X (n, D), as a `pm.Model`.

    Variables (dims): weights (component), means (component, dim), standard_deviations
    (component, dim), correlation_cholesky (component, dim, dim_bis; only when D > 1), the
    deterministic covariances (component, dim, dim_bis), and the observed `X` (point, dim).

    `flat=True` replaces the priors on means, standard deviations and correlations by flat ones
    (weights ~ Dirichlet(1) is already flat), so that the MAP estimate, which `pm.find_MAP`
    computes without Jacobian terms, is the maximum-likelihood estimate. That posterior is
    improper (a component can collapse onto one point): optimise it, never sample it.

    `names` (D,) label the `dim` and `dim_bis` coordinates (a CSV's column names); None numbers
    them 0..D-1. They are coordinates only: the draws are the same either way.

    Raises ValueError for data that is not finite 2-D numbers, a column without spread (the
    priors are scaled by it), n_components not an integer >= 1, or fewer points than components,
    for prior scales that are not positive, and for names that are not D distinct strings.

    `prior="gauss-wishart"` builds instead the model VB approximates, under the priors named as
    in `em_reference.variational.VariationalGaussianMixture` (same defaults): see
    `build_gauss_wishart_model`.

    `shared_data=True` holds X and the column means and sds that scale the priors as `pm.Data`
    (`SHARED_DATA`, `PRIOR_CENTRE`, `PRIOR_SPREAD`), so that a model compiled once takes any
    other data set of the same shape by `pm.set_data` (`shared_data_values`): same log density,
    no recompile (default prior only).
    """
    if shared_data and prior != "default":
        raise ValueError(f"shared_data=True applies to the default prior only, got {prior!r}")
    gauss_wishart = {
        "weight_concentration_prior": weight_concentration_prior,
        "mean_precision_prior": mean_precision_prior,
        "mean_prior": mean_prior,
        "degrees_of_freedom_prior": degrees_of_freedom_prior,
        "covariance_prior": covariance_prior,
    }
    if _wants_gauss_wishart(prior, flat, gauss_wishart):
        return build_gauss_wishart_model(X, n_components, **gauss_wishart, names=names)
    X = check_data(X)
    n_points, n_features = X.shape
    n_components = check_n_components(n_components, n_points)
    spread = data_spread(X)
    for name, value in (("mean_scale", mean_scale), ("sd_scale", sd_scale), ("eta", eta)):
        check_positive(name, value)
    coords = model_coords(n_points, n_features, n_components, names)
    with pm.Model(coords=coords) as model:
        observed: Any = X
        centre: Any = X.mean(axis=0)
        if shared_data:
            values = shared_data_values(X)
            observed = pm.Data(SHARED_DATA, values[SHARED_DATA], dims=("point", "dim"))
            centre = pm.Data(PRIOR_CENTRE, values[PRIOR_CENTRE], dims="dim")
            spread = pm.Data(PRIOR_SPREAD, values[PRIOR_SPREAD], dims="dim")
        weights = pm.Dirichlet("weights", a=np.ones(n_components), dims="component")
        if flat:
            means, stds, corr = _flat_priors(n_components, n_features)
        else:
            means = _prior_means(centre, mean_scale * spread)
            stds = _prior_standard_deviations(sd_scale * spread)
            corr = _prior_correlation_cholesky(n_components, n_features, eta)
        lower = stds[:, :, None] * corr  # L_k = diag(s_k) C_k, (K, D, D)
        pm.Deterministic(
            "covariances", lower @ pt.swapaxes(lower, -1, -2), dims=("component", "dim", "dim_bis")
        )
        _observe(observed, weights, means, precisions_cholesky_from_lower(lower), n_features)
    if not flat:
        _PRIORS[model] = DefaultPrior(float(mean_scale), float(sd_scale), float(eta))
    return model


def shared_data_values(X: Any) -> dict[str, np.ndarray]:
    """The values of a shared-data model's data variables for data X (n, D), for `pm.set_data`."""
    X = check_data(X)
    return {SHARED_DATA: X, PRIOR_CENTRE: X.mean(axis=0), PRIOR_SPREAD: data_spread(X)}


def model_coords(
    n_points: int, n_features: int, n_components: int, names: Sequence[str] | None = None
) -> dict[str, Sequence]:
    """The model's coordinates: component (K), dim and dim_bis (D: names or 0..D-1), point (n)."""
    dim = range(n_features) if names is None else check_dim_names(names, n_features)
    return {
        "component": range(n_components),
        "dim": dim,
        "dim_bis": dim,
        "point": range(n_points),
    }


def check_dim_names(names: Sequence[str], n_features: int) -> tuple[str, ...]:
    """The names (D,) as a tuple; ValueError unless they are D distinct non-empty strings."""
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of {n_features} strings, got {names!r}")
    names = tuple(names)
    if len(names) != n_features or len(set(names)) != n_features:
        raise ValueError(f"names must be {n_features} distinct names, one per column, got {names}")
    if not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"names must be non-empty strings, got {names}")
    return names


def data_spread(X: np.ndarray) -> np.ndarray:
    """Standard deviation of each column of X (D,), raising ValueError if one is zero."""
    spread = X.std(axis=0)
    flat_columns = np.flatnonzero(~(spread > 0))
    if flat_columns.size:
        raise ValueError(
            f"X column(s) {flat_columns.tolist()} have no spread (all values equal); the priors "
            "are scaled by each column's standard deviation"
        )
    return spread


# ---------------------------------------------------------------------------------------------
# Priors


def _prior_means(centre: np.ndarray, scale: np.ndarray) -> pt.TensorVariable:
    """Means (K, D) ~ Normal(data centre, scale): wide, so the data dominate.

    With scale = 10 data sds the prior density changes by under 5 % across the whole cloud of
    points (about +-3 sds), yet it is proper, so every component mean has a prior to fall back
    on when its weight is small.
    """
    return pm.Normal("means", mu=centre, sigma=scale, dims=("component", "dim"))


def _prior_standard_deviations(scale: np.ndarray) -> pt.TensorVariable:
    """Standard deviations s_k (K, D) ~ HalfNormal(scale): weakly informative.

    A component is at most as spread as the whole data set, so with scale = 2 data sds the prior
    is nearly flat (density within 12 %) over every plausible value, while it keeps NUTS away
    from absurdly wide components.
    """
    return pm.HalfNormal("standard_deviations", sigma=scale, dims=("component", "dim"))


def _prior_correlation_cholesky(n_components: int, n_features: int, eta: float) -> Any:
    """Cholesky factors C_k (K, D, D) of the correlation matrices ~ LKJ(eta), batched over K.

    Together with the standard deviations this is the distribution `pm.LKJCholeskyCov(eta,
    sd_dist=HalfNormal)` defines (correlations ~ LKJ, independent sds), but batched with dims:
    `LKJCholeskyCov` only has a logp for one matrix at a time. eta = 2 mildly favours weaker
    correlations and gives zero density at |rho| = 1, a weakly informative default. D = 1 has no
    correlations: C_k = [[1]].
    """
    if n_features == 1:
        return pt.ones((n_components, 1, 1))
    # `shape` next to `dims`: LKJCorr's random graph cannot take its size from the coords.
    return pm.LKJCorr(
        "correlation_cholesky",
        n=n_features,
        eta=eta,
        shape=(n_components, n_features, n_features),
        dims=("component", "dim", "dim_bis"),
        default_transform=CholeskyCorr(n=n_features),
    )


def _flat_priors(n_components: int, n_features: int) -> tuple[Any, Any, Any]:
    """Flat priors on means, standard deviations and correlation Cholesky factors (MAP = MLE)."""
    means = pm.Flat("means", dims=("component", "dim"))
    stds = pm.HalfFlat("standard_deviations", dims=("component", "dim"))
    if n_features == 1:
        return means, stds, pt.ones((n_components, 1, 1))
    identity = np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features))
    corr = pm.Flat(
        "correlation_cholesky",
        dims=("component", "dim", "dim_bis"),
        default_transform=CholeskyCorr(n=n_features),
        initval=identity.copy(),
    )
    return means, stds, corr


# ---------------------------------------------------------------------------------------------
# The likelihood: em_reference's function, written in PyTensor


def precisions_cholesky_from_lower(lower: Any) -> Any:
    """Precision Cholesky factors U_k = L_k^{-T} (K, D, D) from covariance Cholesky factors L_k.

    One batched triangular solve L_k V_k = I; no inverse or determinant of Sigma_k is formed.
    """
    n_features = lower.shape[-1]
    identity = pt.broadcast_to(pt.eye(n_features), lower.shape)
    inverse_lower = pt.linalg.solve_triangular(lower, identity, lower=True)
    return pt.swapaxes(inverse_lower, -1, -2)


def _observe(X: Any, weights: Any, means: Any, precisions_chol: Any, n_features: int) -> Any:
    """The observed X (point, dim) with the marginal mixture density, one logp term per point.

    X is an array or a `pm.Data` variable of D = n_features columns.
    """
    core = {"n_components": int(weights.type.shape[0]), "n_features": n_features}
    return pm.CustomDist(
        OBSERVED,
        weights,
        means,
        precisions_chol,
        logp=partial(mixture_logp, **core),
        random=partial(mixture_random, **core),
        signature="(k),(k,d),(k,d,d)->(d)",
        observed=X,
        dims=("point", "dim"),
    )


def mixture_logp(
    value: Any,
    weights: Any,
    means: Any,
    precisions_chol: Any,
    *,
    n_components: int,
    n_features: int,
) -> Any:
    """Log p(x_i) for each row of value (n, D): `em_reference`'s `mixture_log_density`, in PyTensor.

    PyMC hands the parameters over with leading broadcast dimensions of length 1; reshaping to the
    core shapes (K,), (K, D), (K, D, D) drops them (and fails loudly if a real batch arrived).
    """
    weights = pt.reshape(weights, (n_components,))
    means = pt.reshape(means, (n_components, n_features))
    precisions_chol = pt.reshape(precisions_chol, (n_components, n_features, n_features))
    return mixture_log_density(value, weights, means, precisions_chol, n_components, xp=pt)


def mixture_random(
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
    rng: np.random.Generator | None = None,
    size: tuple[int, ...] | None = None,
    *,
    n_components: int,
    n_features: int,
) -> np.ndarray:
    """Points (*size, D) by em_reference's sampler; L_k = U_k^-T from the precision factors."""
    weights = np.reshape(weights, (n_components,))
    means = np.reshape(means, (n_components, n_features))
    precisions_chol = np.reshape(precisions_chol, (n_components, n_features, n_features))
    identity = np.broadcast_to(np.eye(n_features), precisions_chol.shape)
    lower = np.swapaxes(np.linalg.solve(precisions_chol, identity), -1, -2)  # L_k = U_k^{-T}
    size = () if size is None else tuple(size)
    points, _ = draw_mixture(
        np.random.default_rng(rng), size, weights / weights.sum(), means, lower
    )
    return points


# ---------------------------------------------------------------------------------------------
# Between mixture parameters and model points


def parameter_point(parameters: Any) -> dict[str, np.ndarray]:
    """The model's free variables (by name, untransformed) at given mixture parameters.

    Sigma_k = L_k L_k^T with L_k = diag(s_k) C_k: s_k = sqrt(diag Sigma_k), C_k = L_k / s_k by row.
    """
    params = MixtureParameters.from_any(parameters)
    lower = np.linalg.cholesky(params.covariances)
    stds = np.sqrt(np.diagonal(params.covariances, 0, 1, 2))
    point = {
        "weights": np.array(params.weights),
        "means": np.array(params.means),
        "standard_deviations": stds,
    }
    if params.n_features > 1:
        point["correlation_cholesky"] = lower / stds[:, :, None]
    return point


def check_compatible(model: pm.Model, parameters: MixtureParameters) -> None:
    """Raise ValueError unless the parameters have the model's K components and D dimensions."""
    check_shape(parameters, len(model.coords["component"]), len(model.coords["dim"]))


def check_shape(parameters: MixtureParameters, n_components: int, n_features: int) -> None:
    """Raise ValueError unless the parameters have K = n_components in D = n_features."""
    if (parameters.n_components, parameters.n_features) != (n_components, n_features):
        raise ValueError(
            f"the parameters have {parameters.n_components} components in "
            f"{parameters.n_features} dimensions but the model has {n_components} in {n_features}"
        )


def value_point(model: pm.Model, parameters: Any) -> dict[str, np.ndarray]:
    """The model's value variables (transformed, as logp functions take them) at the parameters."""
    params = MixtureParameters.from_any(parameters)
    check_compatible(model, params)
    overrides = {name: value for name, value in parameter_point(params).items() if name in model}
    if BARTLETT_CHI2 in model.named_vars:
        overrides |= bartlett_point(params, model[PRIOR_SCALE_CHOLESKY].get_value())
    return make_initial_point_fn(model=model, overrides=overrides, jitter_rvs=set())(0)


def log_likelihood_at(model: pm.Model, parameters: Any, mode: str = "FAST_COMPILE") -> float:
    """The model's total log-likelihood of its data at the parameters (EM's `log_likelihood_`).

    One evaluation, so by default it is compiled in PyTensor's quickest-to-build mode.
    """
    logp = model.compile_logp(vars=model.observed_RVs, jacobian=False, sum=True, mode=mode)
    return float(logp(value_point(model, parameters)))


def prior_centre_spread(model: pm.Model) -> tuple[np.ndarray, np.ndarray]:
    """The column means and sds (D,) that centre and scale a default model's priors."""
    if SHARED_DATA in model.named_vars:
        return model[PRIOR_CENTRE].get_value(), model[PRIOR_SPREAD].get_value()
    values = shared_data_values(observed_data(model))
    return values[PRIOR_CENTRE], values[PRIOR_SPREAD]


def observed_data(model: pm.Model) -> np.ndarray:
    """The data X (n, D) the model holds (a shared-data model: the data set last swapped in)."""
    value = model.rvs_to_values[model[OBSERVED]]
    return np.asarray(value.get_value() if hasattr(value, "get_value") else value.data)


# ---------------------------------------------------------------------------------------------
# The model under VB's priors: Dirichlet weights, Gauss-Wishart means and precisions


def _wants_gauss_wishart(prior: Any, flat: bool, gauss_wishart: Mapping[str, Any]) -> bool:
    """True for prior="gauss-wishart"; ValueError for an unknown prior or misplaced settings."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if prior == "gauss-wishart":
        if flat:
            raise ValueError("flat=True applies to the default prior only, not 'gauss-wishart'")
        return True
    given = [name for name, value in gauss_wishart.items() if value is not None]
    if given:
        raise ValueError(f"{given[0]} applies to prior='gauss-wishart' only, got prior={prior!r}")
    return False


def build_gauss_wishart_model(
    X: Any,
    n_components: int = 3,
    *,
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: Any = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: Any = None,
    names: Sequence[str] | None = None,
) -> pm.Model:
    """The mixture under the priors VB approximates (Bishop, PRML 10.2), as a `pm.Model`.

    weights ~ Dirichlet(alpha_0); Lambda_k ~ Wishart(W_0, nu_0) by the Bartlett decomposition
    Lambda_k = F_k F_k^T, F_k = L_0 A_k, with W_0 = L_0 L_0^T and A_k lower triangular,
    (A_k)_ii^2 = `wishart_chi2` ~ chi^2(nu_0 - i + 1), (A_k)_ij = `wishart_normals` ~ N(0, 1)
    below the diagonal; means | Lambda_k ~ N(m_0, (beta_0 Lambda_k)^-1). F_k is lower
    triangular with Lambda_k = F_k F_k^T, so it is the precision factor the shared likelihood
    takes, with no solve. The deterministic covariances are Lambda_k^-1 = V_k^T V_k, V_k = F_k^-1.
    Priors and their defaults are `VariationalGaussianMixture`'s; W_0's factor L_0 is stored
    as the data `prior_scale_cholesky` (dim, dim_bis). `names` as in `build_model`.
    """
    X = check_data(X)
    n_points, n_features = X.shape
    n_components = check_n_components(n_components, n_points)
    prior = resolve_prior(
        X,
        n_components,
        weight_concentration_prior,
        mean_precision_prior,
        mean_prior,
        degrees_of_freedom_prior,
        covariance_prior,
    )
    coords = model_coords(n_points, n_features, n_components, names)
    coords["dim_pair"] = range(n_features * (n_features - 1) // 2)
    with pm.Model(coords=coords) as model:
        scale_lower = pm.Data(
            PRIOR_SCALE_CHOLESKY, _prior_scale_lower(prior), dims=("dim", "dim_bis")
        )
        weights = pm.Dirichlet(
            "weights", a=np.full(n_components, prior.weight_concentration), dims="component"
        )
        factors = scale_lower @ _bartlett_factors(prior, n_components, n_features)  # F_k
        identity = pt.broadcast_to(pt.eye(n_features), factors.shape)
        inverse = pt.linalg.solve_triangular(factors, identity, lower=True)  # V_k = F_k^-1
        covariances = pm.Deterministic(
            "covariances",
            pt.swapaxes(inverse, -1, -2) @ inverse,
            dims=("component", "dim", "dim_bis"),
        )
        # PyMC 6.4's MvNormal(tau=) has no batched logp, so the covariance form: (beta_0 Lambda)^-1.
        means = pm.MvNormal(
            "means",
            mu=np.broadcast_to(prior.mean, (n_components, n_features)),
            cov=covariances / prior.mean_precision,
            dims=("component", "dim"),
        )
        _observe(X, weights, means, factors, n_features)
    _PRIORS[model] = prior
    return model


def _prior_scale_lower(prior: GaussWishartPrior) -> np.ndarray:
    """L_0 (D, D), the lower Cholesky factor of W_0 = U_0 U_0^T (U_0 the prior's factor)."""
    return np.linalg.cholesky(prior.scale_cholesky @ prior.scale_cholesky.T)


def _bartlett_factors(prior: GaussWishartPrior, n_components: int, n_features: int) -> Any:
    """A_k (K, D, D) lower triangular: sqrt(chi^2(nu_0 - i + 1)) diagonal, N(0, 1) below."""
    # chi^2(k) = Gamma(k / 2, rate 1 / 2), spelled with float64 arrays: PyMC's ChiSquared passes
    # its rate as a Python 0.5, which PyTensor folds in float32 (a logp error of about 1e-8).
    chi2 = pm.Gamma(
        BARTLETT_CHI2,
        alpha=0.5 * (prior.degrees_of_freedom - np.arange(n_features)),
        beta=np.full(n_features, 0.5),
        dims=("component", "dim"),
    )
    factors = pt.zeros((n_components, n_features, n_features))
    diagonal = np.arange(n_features)
    factors = pt.set_subtensor(factors[:, diagonal, diagonal], pt.sqrt(chi2))
    if n_features > 1:
        normals = pm.Normal(BARTLETT_NORMALS, 0.0, 1.0, dims=("component", "dim_pair"))
        rows, cols = np.tril_indices(n_features, k=-1)
        factors = pt.set_subtensor(factors[:, rows, cols], normals)
    return factors


def bartlett_point(parameters: Any, scale_lower: np.ndarray) -> dict[str, np.ndarray]:
    """The Bartlett variables at mixture parameters, for a prior with W_0 = L_0 L_0^T.

    Lambda_k = Sigma_k^-1 has the lower Cholesky factor F_k = L_0 A_k, so A_k = L_0^-1 F_k.
    """
    params = MixtureParameters.from_any(parameters)
    n_features = params.n_features
    upper = precisions_cholesky(params.covariances)  # Lambda_k = U_k U_k^T, U_k upper
    factors = np.linalg.cholesky(upper @ np.swapaxes(upper, -1, -2))  # F_k, lower
    bartlett = np.linalg.solve(scale_lower, factors)  # (K, D, D), lower triangular
    diagonal = np.arange(n_features)
    point = {BARTLETT_CHI2: bartlett[:, diagonal, diagonal] ** 2}
    if n_features > 1:
        rows, cols = np.tril_indices(n_features, k=-1)
        point[BARTLETT_NORMALS] = bartlett[:, rows, cols]
    return point
