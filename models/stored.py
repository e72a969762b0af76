"""How much of each draw's derived quantities a posterior keeps (NumPy only, so light to import).

Read by `models.predictions`, which computes them, and by `analysis.limits`, which estimates a
run's memory before any work, without importing PyMC.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PREDICTIVE_DRAWS", "STORED_DTYPE"]

PREDICTIVE_DRAWS = 100
"""Posterior predictive data sets kept per chain, at evenly spaced draws.

The report's predictive check overlays 50 of them on the data; one per draw (4 x 1000 on
seed-7907) made up two thirds of `posterior.nc`.
"""

STORED_DTYPE = np.float32
"""Stored precision of the pointwise log-likelihood and the predictive draws.

Seven significant digits: a log-likelihood term is off by at most ~1e-6, far below LOO's
Monte Carlo error, and the draws are data sets drawn for a figure.
"""
