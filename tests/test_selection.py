"""Choosing K (issue 14): each criterion's pick, the JSON shape, BIC against mclust's tables."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris

from analysis.datasets import load_dataset
from analysis.selection import (
    Choice,
    SelectionRow,
    choose,
    choose_loo,
    disagreement,
    fit_em,
    plot_selection,
    select_components,
)

ISSUE_ROW_KEYS = [
    "k",
    "log_likelihood",
    "bic",
    "icl",
    "elbo",
    "vb_effective_components",
    "elpd_loo",
    "elpd_loo_se",
    "pareto_k_bad",
    "max_rhat",
    "divergences",
]
NUTS_KEYS = ["elpd_loo", "elpd_loo_se", "pareto_k_bad", "max_rhat", "divergences"]


@pytest.fixture(scope="module", params=["seed-7907", "seed42"])
def em_vb_selection(request):
    """EM and VB for K = 1..6 on a seed dataset whose truth is K = 3."""
    return select_components(load_dataset(request.param).X, range(1, 7), methods=("em", "vb"))


def test_em_and_vb_criteria_pick_three(em_vb_selection):
    choice = em_vb_selection.choice
    assert (choice.bic, choice.icl, choice.elbo) == (3, 3, 3)
    assert choice.loo is None
    assert em_vb_selection.disagreement is None


def test_vb_keeps_three_components_when_given_more(em_vb_selection):
    used = [row.vb_effective_components for row in em_vb_selection.rows]
    assert used[:3] == [1, 2, 3]
    assert used[3:] == [3, 3, 3]


def test_icl_is_bic_plus_the_hard_classification_term(em_vb_selection):
    rows = em_vb_selection.rows
    assert rows[0].icl == pytest.approx(rows[0].bic, abs=1e-9)  # one component: no entropy
    assert all(row.icl >= row.bic for row in rows)


def test_icl_follows_mclust_definition_with_independent_responsibilities():
    # mclust's icl(): BIC_mclust + 2 sum_i log z_i,map(i); in BIC's lower-is-better sign,
    # ICL = BIC - 2 sum_i log max_k r_ik. The responsibilities come from scipy here.
    X = load_dataset("seed42").X
    estimator, values, _ = fit_em(X, 3, random_seed=0)
    densities = np.column_stack(
        [
            weight * multivariate_normal(mean, covariance).pdf(X)
            for weight, mean, covariance in zip(
                estimator.weights_, estimator.means_, estimator.covariances_, strict=True
            )
        ]
    )
    responsibilities = densities / densities.sum(axis=1, keepdims=True)
    expected = values["bic"] - 2 * np.sum(np.log(responsibilities.max(axis=1)))
    assert values["icl"] == pytest.approx(expected, rel=1e-12, abs=1e-8)


def test_json_shape_with_nulls_where_a_method_was_not_run():
    result = select_components(load_dataset("seed42").X, [3, 1, 2], methods=("em", "vb"))
    document = json.loads(result.to_json())
    assert [row["k"] for row in document["rows"]] == [1, 2, 3]
    for row in document["rows"]:
        assert list(row)[: len(ISSUE_ROW_KEYS)] == ISSUE_ROW_KEYS
        assert all(row[key] is None for key in NUTS_KEYS)
        assert all(row[key] is not None for key in ("log_likelihood", "bic", "icl", "elbo"))
    assert document["choice"] == {"bic": 3, "icl": 3, "elbo": 3, "loo": None}


def test_json_has_no_nan():
    row = SelectionRow(k=2, max_rhat=math.nan, problems=("R-hat nan",))
    result = select_components(load_dataset("seed42").X, [1], methods=("em",))
    result = type(result)(rows=(row,), choice=result.choice)
    document = json.loads(result.to_json())
    assert document["rows"][0]["max_rhat"] is None
    assert document["rows"][0]["problems"] == ["R-hat nan"]


def test_progress_is_called_once_per_k():
    seen = []
    select_components(load_dataset("seed42").X, range(1, 4), methods=("em",), progress=seen.append)
    assert [row.k for row in seen] == [1, 2, 3]
    assert seen[2].describe().startswith("K=3: BIC ")


# ---------------------------------------------------------------------------------------------
# BIC against mclust's published table for its unconstrained (VVV) model on Fisher's iris data.
#
# Source: C. Fraley and A. E. Raftery, "MCLUST: Software for Model-Based Clustering, Density
# Estimation and Discriminant Analysis", Technical Report No. 415, Department of Statistics,
# University of Washington, October 2002, section 6.2 ("EMclust"): the table printed by
# `irisBIC <- EMclust(irisMatrix)`, column VVV (the report ships with the mclust R package as
# inst/doc/mclust.ps.gz, version 2.0-3). G = 3 is printed again as -580.84 in section 4 of
# C. Fraley, A. E. Raftery, T. B. Murphy and L. Scrucca, "mclust Version 4 for R", Technical
# Report No. 597, University of Washington, 2012. mclust's sign: 2 log L - p log n, higher is
# better, so mclust's value is minus ours. scikit-learn's iris equals R's (its docs: "the same
# as in R, but not as in the UCI Machine Learning Repository").
MCLUST_VVV_IRIS_BIC = {1: -829.9782, 2: -574.0178, 3: -580.8400}

# mclust stops EM when the log-likelihood changes by less than 1e-5 relative (its default tol,
# which TR 415 quotes as Mclust$tol = 1e-5): at G = 3 a last step below 1e-5 x 180 = 0.0018.
# EM converges linearly, so a few such steps may remain: mclust's log L can be ~0.005 below the
# maximum, 0.01 in BIC. The printed values are rounded to 5e-5.
MCLUST_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def iris_selection():
    """EM's rows for K = 1..4 on iris (the selection's own restarts)."""
    return select_components(load_iris().data, range(1, 5), methods=("em",))


@pytest.mark.parametrize("k", sorted(MCLUST_VVV_IRIS_BIC))
def test_bic_agrees_with_mclust_vvv_on_iris(iris_selection, k):
    ours_in_mclust_sign = -iris_selection.rows[k - 1].bic
    published = MCLUST_VVV_IRIS_BIC[k]
    assert ours_in_mclust_sign == pytest.approx(published, abs=MCLUST_TOLERANCE)
    # mclust's EM stops at or below the maximum our restarts reach (rounding aside).
    assert ours_in_mclust_sign >= published - 5e-5


def test_singular_iris_fit_at_four_components_is_flagged(iris_selection):
    # Iris is rounded to 0.1 cm: at K = 4 the restarts find a component on a subspace, where the
    # likelihood is unbounded (mclust printed -628.96 there from its hierarchical start).
    row = iris_selection.rows[3]
    assert -row.bic > -600
    assert any("collapsed onto a subspace" in problem for problem in row.problems)
    assert not any("collapsed" in problem for problem in iris_selection.rows[2].problems)


# ---------------------------------------------------------------------------------------------
# Choices


def _loo_row(k: int, diff: float, se: float) -> SelectionRow:
    return SelectionRow(k=k, elpd_loo=-1000 + diff, elpd_loo_se=20, elpd_diff=diff, elpd_diff_se=se)


def test_loo_keeps_the_simplest_k_within_two_se_of_the_best():
    rows = [_loo_row(2, -60.0, 10.0), _loo_row(3, -9.0, 5.0), _loo_row(4, 0.0, 0.0)]
    assert choose_loo(rows) == 3


def test_loo_keeps_a_k_within_four_of_the_best_even_with_a_small_se():
    rows = [_loo_row(2, -60.0, 10.0), _loo_row(3, -3.5, 0.5), _loo_row(4, 0.0, 0.0)]
    assert choose_loo(rows) == 3


def test_loo_moves_up_when_the_simpler_k_is_clearly_worse():
    rows = [_loo_row(2, -60.0, 10.0), _loo_row(3, -12.0, 4.0), _loo_row(4, 0.0, 0.0)]
    assert choose_loo(rows) == 4


def test_bic_and_icl_take_the_minimum_and_the_elbo_the_maximum():
    rows = [
        SelectionRow(k=1, bic=10.0, icl=10.0, elbo=-9.0),
        SelectionRow(k=2, bic=8.0, icl=11.0, elbo=-7.0),
        SelectionRow(k=3, bic=9.0, icl=12.0, elbo=-8.0),
    ]
    assert choose(rows) == Choice(bic=2, icl=1, elbo=2, loo=None)


def test_one_sentence_says_which_criterion_disagrees_and_why():
    sentence = disagreement(Choice(bic=3, icl=2, elbo=3, loo=3))
    assert sentence.startswith("The criteria disagree: ICL picks K = 2, BIC and the ELBO and")
    assert "overlapping" in sentence
    assert sentence.count(".") == 1
    assert disagreement(Choice(bic=3, icl=3, elbo=3, loo=None)) is None


@pytest.mark.parametrize(
    ("ks", "methods", "message"),
    [
        ([0, 1], ("em",), "ks must hold integers >= 1"),
        ([], ("em",), "ks must hold at least one"),
        ([2, 2], ("em",), "ks must not repeat"),
        ([1, 301], ("em",), "more components than X has points"),
        ([1], ("em", "mcmc"), "methods must be a non-empty subset"),
        ([1], (), "methods must be a non-empty subset"),
    ],
)
def test_bad_arguments_name_themselves(ks, methods, message):
    with pytest.raises(ValueError, match=message):
        select_components(load_dataset("seed42").X, ks, methods=methods)


def test_figure_has_one_panel_per_method(em_vb_selection, tmp_path):
    import matplotlib.image

    path = plot_selection(em_vb_selection, tmp_path / "selection.png", dpi=50)
    height, width, _ = matplotlib.image.imread(path).shape
    assert width == pytest.approx(2 * 4.2 * 50, abs=2)
    assert height == pytest.approx(3.6 * 50, abs=2)


# ---------------------------------------------------------------------------------------------
# NUTS and PSIS-LOO. 2 chains x 300 draws after 300 tuning steps keep each dataset to about a
# minute: the LOO choice needs K = 2 to be clearly worse than K = 3 (on both datasets the elpd
# gap is tens of SEs) and K = 4 not clearly better; the Monte Carlo error of an elpd from 600
# draws of a well-mixed posterior is a small fraction of the elpd's SE. K = 1..4 covers the
# truth and one surplus component; the report's full K = 1..6 runs use 2 x 500.


@pytest.fixture(scope="module", params=["seed-7907", "seed42"])
def full_selection(request):
    """All three methods for K = 1..4 on a seed dataset whose truth is K = 3."""
    return select_components(
        load_dataset(request.param).X, range(1, 5), draws=300, tune=300, chains=2
    )


@pytest.mark.sampling
def test_every_criterion_picks_three(full_selection):
    assert full_selection.choice == Choice(bic=3, icl=3, elbo=3, loo=3)
    assert full_selection.disagreement is None


@pytest.mark.sampling
def test_nuts_columns_are_filled_and_the_true_k_is_clean(full_selection):
    document = json.loads(full_selection.to_json())
    for row in document["rows"]:
        assert all(row[key] is not None for key in NUTS_KEYS)
        assert row["elpd_diff"] <= 0
    three = full_selection.rows[2]
    assert three.loo_rank is not None
    assert three.divergences == 0
    # The largest R-hat of 33 scalars from 2 x 300 draws is noisy: over 8 seeds on seed-7907 at
    # K = 3 it ranged 1.009-1.021 with PyMC's dense NUTS, 1.007-1.023 with nutpie's diagonal
    # and 1.010-1.028 with its low-rank matrix. Chains that have not mixed, or that switched
    # labels, give far more.
    assert three.max_rhat < 1.04
    # From 600 draws the largest Pareto k of 300-500 points is itself noisy: on seed42 it was
    # above 0.7 for 2 and 4 of 12 seeds (two ways of evaluating the same density), each time
    # for one point. At most 1 % of the points (3 of seed42's 300) is that noise; more would
    # be a posterior PSIS cannot handle.
    assert three.pareto_k_bad <= 3
    two = full_selection.rows[1]
    assert -two.elpd_diff > 5 * two.elpd_diff_se


@pytest.mark.sampling
def test_one_component_fit_raises_no_numerical_warning():
    # At K = 1 the weight is 1 in every draw, so its R-hat is 0/0; that is reported as a NaN
    # the row replaces, not as a RuntimeWarning on the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = select_components(
            load_dataset("seed-7907").X, [1], methods=("nuts",), draws=50, tune=50
        )
    assert math.isfinite(result.rows[0].max_rhat)


EIGHT_POINTS = np.random.default_rng(1).normal(size=(8, 2))
"""Tiny data (issue 23, case 14): NUTS is run only for K (D + 1) = 3 K <= 8, K = 1 and 2."""

THREE_POINTS_TIED = np.tile([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], (5, 1))
"""15 points on 3 distinct places: enough for NUTS at K = 2, 3 by count, yet each EM component
sits on one place, where the density is not finite enough for a chain to start."""


@pytest.mark.sampling
def test_a_k_with_too_few_points_is_a_row_saying_so_and_the_table_stands(capfd):
    # Before: NUTS ran at every K, printed Numba's ZeroDivisionError tracebacks and gave
    # elpd_loo values of -1e5 (or stopped the whole table with "All tail values are the same"
    # or "component(s) [0, ..., 49] ... increase reg_covar", whose indices were draws), and BIC
    # chose K = 6 for 8 points from fits held up by reg_covar.
    result = select_components(EIGHT_POINTS, range(1, 7), methods=("em", "nuts"), draws=50, tune=50)
    document = json.loads(result.to_json())
    assert [row["k"] for row in document["rows"]] == [1, 2, 3, 4, 5, 6]
    for row in document["rows"]:
        assert row["log_likelihood"] is not None  # EM's fit stands at every K
        left_out = [p for p in row["problems"] if p.startswith(("NUTS: not run", "EM: BIC and"))]
        if row["k"] <= 2:
            assert row["elpd_loo"] is not None and row["bic"] is not None and not left_out
        else:
            assert row["elpd_loo"] is None and row["bic"] is None and row["icl"] is None
            reason = (
                f"K = {row['k']} components in D = 2 dimensions need at least K (D + 1) = "
                f"{3 * row['k']} points (D + 1 per full covariance), the data have 8"
            )
            assert [p.split(", since ")[1].split(":")[0] for p in left_out] == [reason] * 2
        assert not any("increase reg_covar" in p for p in row["problems"])
    assert result.choice.loo in (1, 2) and result.choice.bic in (1, 2)
    assert "Error" not in capfd.readouterr().err


@pytest.mark.sampling
def test_a_k_whose_chains_cannot_start_is_a_row_saying_so(capfd):
    # Before: the callback's unset values let chains "start" and the table ended at K = 2 with
    # "covariance of component(s) [50, ..., 99] ... increase reg_covar" (the indices were draws);
    # now no chain can start there, nutpie says so (a RuntimeError), and that is the row.
    result = select_components(
        THREE_POINTS_TIED, [1, 2, 3], methods=("em", "nuts"), draws=50, tune=50
    )
    rows = {row.k: row for row in result.rows}
    assert rows[1].elpd_loo is not None
    for k in (2, 3):
        assert rows[k].elpd_loo is None and rows[k].bic is not None
        assert any(p.startswith("NUTS: not fitted, the sampler stopped") for p in rows[k].problems)
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.sampling
def test_a_k_whose_loo_cannot_be_computed_is_a_row_saying_so(monkeypatch):
    # PSIS raises ValueError on degenerate draws ("All tail values are the same" from chains
    # that did not move, a draw's covariance singular in float64); that ended the whole table.
    def degenerate(*args):
        raise ValueError("All tail values are the same")

    monkeypatch.setattr("analysis.selection.psis_loo", degenerate)
    result = select_components(EIGHT_POINTS, [1, 2], methods=("em", "nuts"), draws=50, tune=50)
    for row in result.rows:
        assert row.bic is not None and row.elpd_loo is None
        assert any(p.startswith("PSIS-LOO: not computed") for p in row.problems)
    assert result.choice.loo is None and result.choice.bic is not None
