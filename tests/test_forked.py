"""`analysis.forked`: a call in a forked process beside this one."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from analysis import forked

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="needs fork and two cores")


def pid_and_sum(values: np.ndarray) -> tuple[int, float]:
    """The process id and the values' sum."""
    return os.getpid(), float(np.sum(values))


def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


def wait_forever(path: str) -> None:
    """Write this process's id to path, then sleep until stopped."""
    with open(path, "w") as file:
        file.write(str(os.getpid()))
    while True:
        time.sleep(0.1)


def test_the_result_comes_from_another_process():
    values = np.arange(10.0)
    with forked.beside(pid_and_sum, values) as result:
        pid, total = result()
    assert pid != os.getpid()
    assert total == 45.0


def test_without_fork_it_runs_here_when_asked():
    calls = []
    with forked.beside(lambda: calls.append(os.getpid()) or "done", fork=False) as result:
        assert calls == []
        assert result() == "done"
    assert calls == [os.getpid()]


def test_the_childs_error_is_raised_here():
    with (
        forked.beside(fail, "no such replicate") as result,
        pytest.raises(ValueError, match="no such replicate"),
    ):
        result()


def test_an_unpicklable_result_is_a_runtime_error():
    with forked.beside(threading.Lock) as result, pytest.raises(RuntimeError, match="pickle"):
        result()


def test_leaving_early_stops_the_child(tmp_path):
    path = tmp_path / "pid"
    with pytest.raises(KeyError), forked.beside(wait_forever, str(path)):
        while not path.exists() or not path.read_text():
            time.sleep(0.01)
        child = int(path.read_text())
        raise KeyError("an error here while the child works")
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # joined: gone, not a zombie
