"""Comparisons of the EM estimate and the NUTS posterior, figures, reports and the command line."""
