"""`python -m analysis`: the `gmm-compare` command."""

import sys

from analysis.cli import main

sys.exit(main())
