"""`python -m analysis`: the `gmm-compare` command."""

from analysis.cli import console

console()
