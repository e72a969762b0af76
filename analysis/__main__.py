"""`python -m analysis`: the `gmm-compare` command."""

from analysis.console import console

console()
