"""Interrupts for the command: SIGINT and SIGTERM unwind a run in any phase, workers included.

The command's process raises `Interrupted` (PyMC's sampler swallows KeyboardInterrupt); the
interrupt is also recorded in RECEIVED, so one a library swallowed still stops the run before
anything is published. Children the command forks die with it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from analysis.console import INTERRUPTS

STRAGGLER_GRACE = 3.0
"""Seconds the workers have to stop by themselves after an interrupt before they are killed."""
RECEIVED: list[int] = []
"""The interrupts this command received: checked again in case a library swallowed one."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: unwinds everything (PyMC's sampler swallows KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(owner: int) -> Callable[[int, Any], None]:
    """A signal handler for the process `owner`: ignore further interrupts and unwind.

    A process forked from it (PyMC's samplers, the figure drawer) keeps the usual behaviour:
    KeyboardInterrupt on SIGINT, death on SIGTERM.
    """

    def interrupt(signum: int, _frame: Any) -> None:
        if os.getpid() != owner:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        for other in INTERRUPTS:
            signal.signal(other, signal.SIG_IGN)  # the clean-up must finish
        RECEIVED.append(signum)
        # Should a library swallow the exception (it happens while PyMC starts its workers),
        # killing the workers makes the sampler fail, and the run unwinds all the same.
        straggler = threading.Timer(STRAGGLER_GRACE, stop_children)
        straggler.daemon = True
        straggler.start()
        raise Interrupted(signum)

    return interrupt


def _drop_swallowed_interrupts(unraisable: Any) -> None:
    """sys.unraisablehook: an Interrupted that Python had to drop is not printed.

    The handler raised it where Python cannot propagate it (a fork callback, when PyMC starts
    its workers); it is recorded in RECEIVED and the run stops anyway (see `_handler`).
    """
    if not isinstance(unraisable.exc_value, Interrupted):
        sys.__unraisablehook__(unraisable)


PR_SET_PDEATHSIG = 1
_DIE_WITH_PARENT: list[bool] = []


def _die_with_parent() -> None:
    """In a child forked by the command (Linux): be killed when its parent dies.

    PyMC's forked workers hold both ends of their own pipes, so a worker whose parent was
    killed (SIGKILL) would otherwise wait for orders forever.
    """
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def children_die_with_the_command() -> None:
    """Register, once, the fork callback `_die_with_parent` (Linux only)."""
    if sys.platform == "linux" and not _DIE_WITH_PARENT:
        os.register_at_fork(after_in_child=_die_with_parent)
        _DIE_WITH_PARENT.append(True)


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted while inside (main thread only); restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    children_die_with_the_command()
    handler = _handler(os.getpid())
    previous = {signum: signal.signal(signum, handler) for signum in INTERRUPTS}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _drop_swallowed_interrupts
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, old in previous.items():
            signal.signal(signum, old)


def check_not_interrupted() -> None:
    """Raise Interrupted if an interrupt arrived, even one a library caught and ignored."""
    if RECEIVED:
        raise Interrupted(RECEIVED[0])


def stop_children() -> None:
    """Kill the worker processes an interrupt left running (PyMC's samplers wait for orders).

    Interrupted while starting them, PyMC never tells them to stop, and Python's exit would
    wait for them forever.
    """
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=STRAGGLER_GRACE)


@contextmanager
def interrupts_held(block: Collection[int] = INTERRUPTS) -> Iterator[None]:
    """SIGINT and SIGTERM wait while inside (a step that must not be cut in two); raised after.

    The signals in `block` are blocked in this thread, and so in the threads and processes it
    starts meanwhile, which keep them blocked (Dask's workers: a Ctrl-C at a terminal then
    reaches this process only). One that another thread catches still reaches Python's handlers
    in the main thread, so they are swapped for one that only records it. On leaving, the
    handlers come back and the first interrupt recorded is raised again, for them. Outside the
    main thread (where handlers cannot be set) only the mask applies.
    """
    recorded: list[int] = []

    def record(signum: int, _frame: Any) -> None:
        recorded.append(signum)

    handlers = {}
    if threading.current_thread() is threading.main_thread():
        # A handler set outside Python reads as None and could not be put back: left alone.
        handlers = {s: h for s in INTERRUPTS if (h := signal.getsignal(s)) is not None}
    held = set(block) - signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        for signum in handlers:
            signal.signal(signum, record)
        yield
    finally:
        for signum, handler in handlers.items():
            if signal.getsignal(signum) is record:
                signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        for signum in recorded[:1]:
            signal.raise_signal(signum)
