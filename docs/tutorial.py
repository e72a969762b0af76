# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # One mixture, three answers: EM, variational Bayes and NUTS on seed-7907
#
# A lecture in five steps, on 500 points drawn from a known three-component Gaussian mixture:
#
# 1. **the data** and the model, `p(x) = sum_k w_k N(x | mu_k, Sigma_k)`;
# 2. **EM**, the maximum-likelihood estimate, and how sure it is (standard errors from the
#    observed information, a bootstrap);
# 3. **variational Bayes**, an approximate posterior `q(w, mu, Sigma)` under Dirichlet and
#    Gauss-Wishart priors;
# 4. **NUTS**, draws from the exact posterior of the same mixture, checked with ArviZ;
# 5. **the three side by side**: estimates, uncertainties, memberships.
#
# Everything runs on a laptop in under a minute; the NUTS run is kept small so it does. The
# `gmm-compare` command does all of this at full size and writes a report.

# %%
import arviz_plots as azp
import arviz_stats as azs
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from arviz_base import from_dict

from em_reference import INTERVAL_PROB, GaussianMixtureEM, VariationalGaussianMixture, seed7907
from models import build_model, diagnose, posterior_membership, sample_posterior

# %% [markdown]
# ## 1. The data
#
# The seed program draws the points with its own random number generator (an LCG), so the
# data are the same on every machine. We know the true mixture, and each point's component.

# %%
X, labels = seed7907.load()
true = seed7907.TRUE
print(X.shape, np.bincount(labels))
print("true weights", true.weights)

fig, ax = plt.subplots(figsize=(5, 4.5))
for k in range(3):
    ax.scatter(*X[labels == k].T, s=8, label=f"component {k}")
ax.set(xlabel="x1", ylabel="x2", title="seed-7907, coloured by true component")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Maximum likelihood by EM
#
# EM alternates two steps: the **E-step** computes each point's responsibilities
# `r_ik = w_k N(x_i | mu_k, Sigma_k) / sum_j w_j N(x_i | mu_j, Sigma_j)`, the **M-step** sets the
# weights, means and covariances to their responsibility-weighted averages. Each iteration can
# only raise the log-likelihood. We start where the seed program starts.

# %%
em = GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X)
print(f"{em.n_iter_} iterations, converged: {em.converged_}")
print(f"log-likelihood {em.log_likelihood_:.4f}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(em.log_likelihood_history_, marker="o", ms=3)
ax.set(xlabel="iteration", ylabel="total log-likelihood", title="EM never goes down")
plt.show()

# %% [markdown]
# The estimate beside the truth. EM's labels are arbitrary: here they follow the starting
# values, which are in the truth's order.

# %%
pd.DataFrame(
    {
        "true weight": true.weights,
        "EM weight": em.weights_,
        "true mean": [tuple(m) for m in true.means],
        "EM mean": [tuple(np.round(m, 3)) for m in em.means_],
    }
)

# %% [markdown]
# **How sure is EM?** The delta-method standard errors come from the observed information
# (minus the Hessian of the log-likelihood at the estimate). A nonparametric bootstrap refits EM
# on resampled data and gives a second opinion; with enough data the two agree.

# %%
se = em.standard_errors(X)
boot = em.bootstrap(X, n_boot=100, random_state=0)
pd.DataFrame(
    {
        "EM weight": em.weights_,
        "information SE": se.weights,
        "bootstrap SE": boot.standard_errors().weights,
    }
).round(4)

# %% [markdown]
# ## 3. Variational Bayes
#
# Put priors on the parameters (Dirichlet on the weights, Gauss-Wishart on each mean and
# precision) and approximate the posterior by the closest factorised `q` (coordinate ascent on
# the evidence lower bound, the ELBO). Started at the same values, it finds the same clusters,
# and unlike EM it returns a distribution we can draw from.

# %%
vb = VariationalGaussianMixture(3, init=seed7907.INITIAL, random_state=0).fit(X)
print(f"ELBO {vb.lower_bound_:.2f} after {vb.n_iter_} iterations")
vb_draws = vb.sample_posterior(600, random_state=1)  # weights (S, K), means (S, K, D), ...
print("VB posterior mean of the weights", vb_draws["weights"].mean(axis=0).round(4))
print("VB posterior SD of the weights  ", vb_draws["weights"].std(axis=0).round(4))

# %% [markdown]
# To use ArviZ on VB's draws, store them as a DataTree with the dims the NUTS model uses
# (`component`, `dim`, `dim_bis`). The draws are independent; they are arranged as 2 x 300 only
# so that they line up with the NUTS run below in ArviZ's side-by-side plots.

# %%
dims = {"weights": ["component"], "means": ["component", "dim"]}
dims["covariances"] = ["component", "dim", "dim_bis"]
arranged = {name: d.reshape(2, 300, *d.shape[1:]) for name, d in vb_draws.items()}
vb_tree = from_dict({"posterior": arranged}, dims=dims)

# %% [markdown]
# ## 4. The exact posterior by NUTS
#
# `models.build_model` writes the same mixture in PyMC (with weakly informative priors; with
# `prior="gauss-wishart"` it takes VB's priors instead), with the component labels summed out of
# the likelihood so that NUTS sees only continuous parameters. The chains start near EM's
# estimate and are labelled like it. A small run here: two chains of 300 draws after 300 tuning
# steps (the report uses 4 x 1000). With so few draws `diagnose` may flag an R-hat just above
# 1.01 or a tail ESS under 400: the run is short, and catching that is what the check is for.

# %%
model = build_model(X, n_components=3)
idata = sample_posterior(
    model, draws=300, tune=300, chains=2, random_seed=0, reference=em, progressbar=False
)
diagnose(idata)

# %% [markdown]
# **Did the chains converge?** The trace plot shows each chain's draws and densities; the rank
# plot compares the chains' rank distributions (curves inside the band: the chains agree).

# %%
azp.plot_trace_dist(idata, var_names=["weights", "means"])
plt.show()

# %%
azp.plot_rank(idata, var_names=["weights"])
plt.show()

# %% [markdown]
# ArviZ's summary: posterior means, SDs, 94 % equal-tailed intervals (the report's), R-hat and
# effective sample sizes.

# %%
azs.summary(idata, var_names=["weights", "means"], ci_prob=INTERVAL_PROB, ci_kind="eti")

# %% [markdown]
# **Does the model reproduce the data?** The posterior predictive check overlays data sets
# replicated from posterior draws on the observed data, one panel per coordinate.

# %%
azp.plot_ppc_dist(idata, num_samples=50)
plt.show()

# %% [markdown]
# ## 5. Three answers side by side
#
# ArviZ draws VB's approximate posterior over the exact one, weight by weight (a dict of
# DataTrees is compared model by model). Note that the two use different priors, so they need
# not coincide even if VB were exact.

# %%
pc = azp.plot_dist({"NUTS": idata, "VB": vb_tree}, var_names=["weights"], kind="kde")
pc.add_legend("model")
plt.show()

# %% [markdown]
# The same comparison as numbers: EM's standard error, VB's posterior SD and the NUTS posterior
# SD of every weight and mean. At n = 500 with well-separated components the three should be
# close; try it on the first 100 points (`X[:100]`) to see whether they still are.

# %%
shown = ["weights", "means"]
table = pd.DataFrame(
    {
        "EM": np.concatenate([em.weights_, em.means_.ravel()]),
        "EM SE": np.concatenate([se.weights, se.means.ravel()]),
        "VB SD": azs.summary(vb_tree, var_names=shown, kind="stats")["sd"],
        "NUTS SD": azs.summary(idata, var_names=shown, kind="stats")["sd"],
    }
)
table.round(4)

# %% [markdown]
# Finally the clustering. EM gives each point responsibilities at one estimate; the posterior
# averages them over the draws, so a point near a boundary keeps its uncertainty.

# %%
membership = posterior_membership(idata)
em_labels = em.predict(X)
print(f"EM accuracy {np.mean(em_labels == labels):.1%}")
print(f"posterior accuracy {np.mean(membership.labels == labels):.1%}")
uncertain = np.sum(membership.top_probability < 0.9)
print(f"points whose top posterior probability is below 0.9: {uncertain}")
