"""A call run in a forked process beside this one, where the machine has a second core.

The main job's slow single-core steps (the EM bootstrap, half the figures) run in a child while
this process does the rest. The child is a fork, so it needs no imports and no pickled inputs;
only its result comes back, pickled. Without fork (not Linux) or a second core the call runs
here, when its result is asked for, and gives the same value.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

FORK_WARNING = "This process .* is multi-threaded, use of fork"
"""The start of Python's warning when a process with threads forks."""


def can_fork() -> bool:
    """True where a forked process can work beside this one: Linux with more than one core."""
    return sys.platform == "linux" and (os.cpu_count() or 1) > 1


@contextmanager
def beside(
    function: Callable[..., Any], *args: Any, fork: bool = True
) -> Iterator[Callable[[], Any]]:
    """Start function(*args) in a forked process; yield a call that waits for its result.

    The result call raises what the function raised (a RuntimeError with its text if that
    cannot be pickled, or if the child died). Leaving the block early, by an error or an
    interrupt, stops the child. With fork false, or where `can_fork` is false, the function
    runs here when the result is asked for.
    """
    if not (fork and can_fork()):
        yield lambda: function(*args)
        return
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_call_in_child, args=(function, args, send), daemon=True)
    # The child must never collect the garbage it inherits: a library object's finaliser may
    # wait for threads a fork does not copy (nutpie's sampler joins its own, forever). Frozen,
    # the objects that exist now are never collected there; here they are unfrozen at once.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            # Python cautions against forking a process with threads: one might hold a lock
            # the child then needs. Here they are nutpie's idle Rust runtime and allocator
            # threads, and BLAS's; the child runs NumPy and matplotlib code only.
            warnings.filterwarnings("ignore", FORK_WARNING, DeprecationWarning)
            child.start()
    finally:
        gc.unfreeze()
    send.close()
    try:
        yield lambda: _result(child, receive)
    finally:
        if child.is_alive():
            child.terminate()  # left early: the result is not wanted
        child.join()
        receive.close()


def _result(child: multiprocessing.process.BaseProcess, receive: Connection) -> Any:
    """The child's result, or its error raised here."""
    try:
        failed, value = receive.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the forked process died (exit status {child.exitcode})") from None
    if failed:
        raise value
    return value


def _call_in_child(function: Callable[..., Any], args: tuple[Any, ...], send: Connection) -> None:
    """Send (False, function(*args)), or (True, the error) if it raised (in the child).

    Interrupts are the parent's business (it stops this process): the handlers inherited by
    the fork are reset, so an interrupt does not print a second traceback from here.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        outcome = (False, function(*args))
    except Exception as error:  # raised again in the parent
        outcome = (True, error)
    try:
        send.send(outcome)
    except Exception as error:  # an unpicklable result or error
        text = outcome[1] if outcome[0] else error
        send.send((True, RuntimeError(f"{type(text).__name__}: {text}")))
    finally:
        send.close()
