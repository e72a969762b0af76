"""The `gmm-compare` script: an interrupt is one line on stderr from the script's first line on.

Importing the command (NumPy, SciPy and the analysis modules) takes half a second or more before
`analysis.cli.main` hands SIGINT and SIGTERM to `analysis.interrupts`; until then this module's
handler answers them. Nothing has been started or written by then, so it says so and exits.
This module imports only what the interpreter has loaded before it runs (`_signal` is the C
module behind `signal`, which imports enum), so that the handler is in place at once.
"""

from __future__ import annotations

import _signal
import os
import sys

PROG = "gmm-compare"
NOTHING_WRITTEN = "nothing was written, earlier outputs are unchanged"
INTERRUPTS = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}
"""The signals that stop the command (here and in `analysis.interrupts`), with their names."""


def interrupted_line(signum: int, detail: str = NOTHING_WRITTEN) -> str:
    """The one line an interrupt prints: 'gmm-compare: interrupted (SIGINT); detail'."""
    return f"{PROG}: interrupted ({INTERRUPTS[signum]}); {detail}"


def _stop_while_importing(signum: int, _frame: object) -> None:
    """Signal handler while the command is imported: one line, exit status 128 + signum."""
    for other in INTERRUPTS:
        _signal.signal(other, _signal.SIG_IGN)  # a second Ctrl-C must not print a second line
    os.write(sys.stderr.fileno(), (interrupted_line(signum) + "\n").encode())
    os._exit(128 + signum)


def console() -> None:
    """The script: import the command under `_stop_while_importing`, run `main`, exit.

    `main` starts with Python's own handlers, as it always has. Once it has returned, its exit
    status stands: a late interrupt is ignored. The exit skips a last sweep of the heap: Python's
    shutdown collects garbage through every object the run made (imports included), about a
    second here; frozen objects are skipped (`gc.freeze`), and all go with the process.
    """
    for signum in INTERRUPTS:
        _signal.signal(signum, _stop_while_importing)
    import gc

    from analysis.cli import main

    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
    code = main()
    for signum in INTERRUPTS:
        _signal.signal(signum, _signal.SIG_IGN)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
