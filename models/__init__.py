"""The Bayesian twin of the EM reference: a PyMC Gaussian mixture sampled with NUTS."""
