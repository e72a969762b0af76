"""The simulation study: replicates, the store (resume, refusal), coverage maths, Dask runs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytest

from analysis.simulation import (
    StudyRun,
    StudySettings,
    flatten,
    parameter_labels,
    replicate_data,
    run_replicate,
    run_study,
)
from analysis.simulation_report import json_document, summarise, wilson_interval
from analysis.simulation_store import REPLICATES, StudyStore, open_store
from em_reference import sample_mixture, seed7907
from models.mixture import build_model, shared_data_values, value_point

TINY = StudySettings(
    replicates=4, n_points=100, draws=40, tune=40, chains=2, bootstrap=20, vb_draws=400
)
"""A study small enough for the tests: 4 replicates of 100 points, 2 x 40 NUTS draws."""

TIMING_KEYS = {"seconds", "first_on_worker", "compile_seconds", "sampling_seconds"}


def numbers_only(record: dict) -> dict:
    """A replicate's record without where and how long it ran: what the seeds determine."""
    return {
        name: {key: value for key, value in entry.items() if key not in TIMING_KEYS}
        for name, entry in record["methods"].items()
    }


# ---------------------------------------------------------------------------------------------
# Settings, data, coverage maths (fast)


def test_replicate_r_is_the_lcg_at_seed_r():
    t = seed7907.TRUE
    X3, labels3 = replicate_data(TINY, 3)
    expected, expected_labels = sample_mixture(100, t.weights, t.means, t.covariances, seed=3)
    np.testing.assert_array_equal(X3, expected)
    np.testing.assert_array_equal(labels3, expected_labels)
    assert not np.allclose(replicate_data(TINY, 4)[0], X3)


@pytest.mark.parametrize(
    ("changes", "word"),
    [
        ({"replicates": 0}, "replicates"),
        ({"n_points": 5}, "n_points"),
        ({"methods": ("em", "gibbs")}, "methods"),
        ({"methods": ()}, "methods"),
        ({"bootstrap": -1}, "bootstrap"),
        ({"truth": "seed42"}, "truth"),
    ],
)
def test_bad_settings_are_refused_by_name(changes, word):
    with pytest.raises(ValueError, match=word):
        StudySettings(**changes)


def test_wilson_interval_by_hand():
    # 9 of 10 at z = 2: centre (0.9 + 0.2) / 1.4 = 0.7857143, half 2 / 1.4 * sqrt(0.009 + 0.01)
    # = 0.1969150.
    low, high = wilson_interval(9, 10)
    assert low == pytest.approx(0.5887993, abs=1e-6)
    assert high == pytest.approx(0.9826293, abs=1e-6)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError, match="covered"):
        wilson_interval(11, 10)


BY_HAND = StudySettings(replicates=4, methods=("vb",))
"""The study whose records the tests below write by hand."""


def _record(replicate: int, low: list[float], high: list[float], estimate: list[float]) -> dict:
    """A stored VB entry with the given bounds (coverage computed from the truth)."""
    truth = flatten(seed7907.TRUE)
    covered = [bool(lo <= t <= hi) for lo, t, hi in zip(low, truth, high, strict=True)]
    entry = {"status": "ok", "seconds": 1.0 + replicate, "estimate": estimate, "low": low}
    entry |= {"high": high, "covered": covered, "switched": False}
    return _made_by_hand(replicate, {"vb": entry})


def _made_by_hand(replicate: int, methods: dict) -> dict:
    """Replicate r's record of BY_HAND's study holding the given method entries."""
    settings = BY_HAND.fingerprint()
    return {"replicate": replicate, "settings": settings, "methods": methods, "worker": {}}


def test_coverage_width_bias_rmse_by_hand(tmp_path):
    store = open_store(tmp_path / "study", BY_HAND)
    truth = np.array(flatten(seed7907.TRUE))
    n = truth.size
    # Replicate 1 covers everything with width 2; replicate 2 misses parameter 0 only (interval
    # above the truth); replicate 3 misses everything (below); replicate 4 fails.
    store.write(_record(1, list(truth - 1), list(truth + 1), list(truth + 0.5)))
    shifted = truth - 0.1
    shifted[0] = truth[0] + 0.5
    store.write(_record(2, list(shifted), list(shifted + 0.2), list(truth - 0.5)))
    store.write(_record(3, list(truth - 3), list(truth - 2), list(truth)))
    failed = {"status": "failed", "seconds": 0.5, "error": "ValueError: collapsed"}
    store.write(_made_by_hand(4, {"vb": failed}))
    run = StudyRun(replicates=4, computed=4, reused=0, workers=2, wall_seconds=1.0)
    summary = summarise(store, run)
    vb = summary["methods"]["vb"]
    labels = parameter_labels(seed7907.TRUE)
    assert (vb["succeeded"], vb["failed"]) == (3, 1)
    assert vb["errors"] == ["ValueError: collapsed"]
    assert vb["coverage"][labels[0]] == pytest.approx(1 / 3)
    assert all(vb["coverage"][label] == pytest.approx(2 / 3) for label in labels[1:])
    assert vb["width"][labels[1]] == pytest.approx((2 + 0.2 + 1) / 3)
    assert vb["bias"][labels[1]] == pytest.approx((0.5 - 0.5 + 0) / 3)
    assert vb["rmse"][labels[1]] == pytest.approx(np.sqrt((0.25 + 0.25 + 0) / 3))
    assert vb["seconds_mean"] == pytest.approx((2 + 3 + 4 + 0.5) / 4)
    assert len(labels) == n
    document = json_document(summary)
    assert set(document) == {
        "replicates",
        "computed",
        "reused",
        "workers",
        "coverage",
        "width",
        "rmse",
    }
    assert document["coverage"]["vb"][labels[0]] == pytest.approx(1 / 3)
    json.dumps(document, allow_nan=False)  # no NaN anywhere


def test_store_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "study"
    open_store(out, TINY)
    with pytest.raises(ValueError, match=r"other settings \(draws: stored 40, asked 41\)"):
        open_store(out, StudySettings(**{**TINY.__dict__, "draws": 41}))
    # A different number of replicates is the same study, grown or reported in part.
    grown = open_store(out, StudySettings(**{**TINY.__dict__, "replicates": 9}))
    assert isinstance(grown, StudyStore)


def test_folder_that_is_not_a_study_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a gmm-compare simulation study"):
        open_store(out, TINY)
    assert (out / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_stranger_file_in_a_study_is_refused(tmp_path):
    out = tmp_path / "study"
    open_store(out, TINY)
    (out / "mine.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"did not write \(mine.csv\)"):
        open_store(out, TINY)


def test_em_and_vb_replicate_repeats_exactly():
    settings = StudySettings(**{**TINY.__dict__, "methods": ("em", "vb")})
    first, again = run_replicate(settings, 2), run_replicate(settings, 2)
    assert set(first["methods"]) == {"em_wald", "em_bootstrap", "vb"}
    assert all(entry["status"] == "ok" for entry in first["methods"].values())
    assert numbers_only(first) == numbers_only(again)
    assert numbers_only(first) != numbers_only(run_replicate(settings, 3))
    # EM matched to the truth: each estimated mean is nearest its own true mean.
    labels = parameter_labels(seed7907.TRUE)
    estimate = dict(zip(labels, first["methods"]["em_wald"]["estimate"], strict=True))
    for k, mean in enumerate(seed7907.TRUE.means):
        estimated = np.array([estimate[f"means[{k}, 0]"], estimate[f"means[{k}, 1]"]])
        assert np.argmin(np.linalg.norm(seed7907.TRUE.means - estimated, axis=1)) == k
        assert np.linalg.norm(estimated - mean) < 1.0


def test_shared_data_model_has_the_default_models_log_density():
    t = seed7907.TRUE
    X1, _ = sample_mixture(100, t.weights, t.means, t.covariances, seed=1)
    X2, _ = sample_mixture(100, t.weights, t.means, t.covariances, seed=2)
    shared = build_model(X1, 3, shared_data=True)
    logp = shared.compile_logp(mode="FAST_COMPILE")
    point = value_point(shared, t)
    for X in (X1, X2):
        pm.set_data(shared_data_values(X), model=shared)
        plain = build_model(X, 3)
        expected = plain.compile_logp(mode="FAST_COMPILE")(value_point(plain, t))
        assert float(logp(point)) == pytest.approx(float(expected), rel=1e-12)
    with pytest.raises(ValueError, match="shared_data"):
        build_model(X1, 3, prior="gauss-wishart", shared_data=True)


# ---------------------------------------------------------------------------------------------
# On Dask (NUTS: sampling)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes, shared by the Dask tests."""
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            memory_limit=0,
        ) as local,
        Client(local) as client,
    ):
        yield local, client


def finished_counts(prefix: str, since: float, dask_scheduler: Any = None) -> dict[str, int]:
    """How often each task whose key starts with prefix reached memory after `since` (a
    time.time(); the function runs on the scheduler)."""
    counts: dict[str, int] = {}
    for key, _, finish, _, _, when in dask_scheduler.transition_log:
        if str(key).startswith(prefix) and finish == "memory" and when >= since:
            counts[str(key)] = counts.get(str(key), 0) + 1
    return counts


def stored(out: Path) -> dict[int, dict]:
    """The replicate records in a study folder, by replicate."""
    records = {}
    for path in sorted((out / REPLICATES).glob("replicate-*.json")):
        record = json.loads(path.read_text())
        records[record["replicate"]] = record
    return records


@pytest.mark.sampling
def test_tiny_study_on_two_workers_then_resume(cluster, tmp_path):
    local, _ = cluster
    out = tmp_path / "study"
    run = run_study(TINY, out, scheduler=local.scheduler_address)
    assert (run.replicates, run.computed, run.reused, run.workers) == (4, 4, 0, 2)
    records = stored(out)
    assert sorted(records) == [1, 2, 3, 4]
    for record in records.values():
        assert set(record["methods"]) == {"em_wald", "em_bootstrap", "vb", "nuts"}
        assert all(entry["status"] == "ok" for entry in record["methods"].values())
    assert len({record["worker"]["pid"] for record in records.values()}) == 2
    # Every worker compiled once: its first replicate built the sampler, the later ones not.
    firsts = [r["methods"]["nuts"]["first_on_worker"] for r in records.values()]
    assert sum(firsts) == 2

    # Resume: replicate 2 lost, the others kept as they are.
    kept = {r: (out / REPLICATES / f"replicate-{r:05d}.json").stat().st_mtime_ns for r in (1, 3, 4)}
    (out / REPLICATES / "replicate-00002.json").unlink()
    again = run_study(TINY, out, scheduler=local.scheduler_address)
    assert (again.computed, again.reused) == (1, 3)
    for r, mtime in kept.items():
        assert (out / REPLICATES / f"replicate-{r:05d}.json").stat().st_mtime_ns == mtime
    # Recomputed alone, on whichever worker, replicate 2 has the same numbers.
    assert numbers_only(stored(out)[2]) == numbers_only(records[2])

    # Nothing missing: nothing computed; the report is made from the store.
    from analysis.simulation_report import write_study_report

    done = run_study(TINY, out, scheduler=local.scheduler_address)
    assert (done.computed, done.reused) == (0, 4)
    summary = write_study_report(open_store(out, TINY), done)
    assert (out / "index.html").is_file() and (out / "coverage.png").is_file()
    nuts = summary["methods"]["nuts"]
    assert nuts["succeeded"] == 4
    assert all(0.0 <= value <= 1.0 for value in nuts["coverage"].values())


@pytest.mark.sampling
def test_one_worker_gives_the_same_replicates_as_two(cluster, tmp_path):
    local, _ = cluster
    two = tmp_path / "two"
    run_study(TINY, two, scheduler=local.scheduler_address)
    one = tmp_path / "one"
    run = run_study(TINY, one, workers=1)
    assert run.workers == 1
    by_two, by_one = stored(two), stored(one)
    assert sorted(by_one) == sorted(by_two) == [1, 2, 3, 4]
    for r in by_one:
        assert numbers_only(by_one[r]) == numbers_only(by_two[r])


@pytest.mark.sampling
def test_interrupt_keeps_finished_replicates_and_resumes(cluster, tmp_path):
    local, _ = cluster
    out = tmp_path / "study"

    def stop_after_first(done: int, total: int, computed: int) -> None:
        if computed == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(TINY, out, scheduler=local.scheduler_address, progress=stop_after_first)
    finished = sorted(stored(out))
    assert len(finished) >= 1
    run = run_study(TINY, out, scheduler=local.scheduler_address)
    assert run.reused == len(finished)
    assert run.computed == 4 - len(finished)
    assert sorted(stored(out)) == [1, 2, 3, 4]


@pytest.mark.sampling
def test_study_completes_when_a_worker_is_killed(cluster, tmp_path):
    local, client = cluster
    out = tmp_path / "study"
    settings = StudySettings(**{**TINY.__dict__, "replicates": 6})
    outcome: dict = {}

    def study() -> None:
        try:
            outcome["run"] = run_study(settings, out, scheduler=local.scheduler_address)
        except BaseException as error:  # reported by the assertion below
            outcome["error"] = error

    thread = threading.Thread(target=study)
    started = time.time()  # the LocalCluster's scheduler runs in this process, on this clock
    thread.start()
    killed = None
    while thread.is_alive() and killed is None:
        # A worker that has already delivered a replicate, and is running another.
        delivered = {record["worker"]["pid"] for record in stored(out).values()}
        pids = client.run(os.getpid)
        busy = [worker for worker, keys in client.processing().items() if keys]
        victims = [pids[worker] for worker in busy if pids.get(worker) in delivered]
        if victims:
            os.kill(victims[0], signal.SIGKILL)
            killed = victims[0]
        time.sleep(0.2)
    thread.join()
    assert "error" not in outcome, outcome.get("error")
    assert killed is not None, "the study ended before a worker could be killed"
    assert sorted(stored(out)) == [1, 2, 3, 4, 5, 6]
    assert outcome["run"].computed == 6
    client.wait_for_workers(2)
    assert killed not in client.run(os.getpid).values()
    # Only the replicate in flight was run again: those the killed worker had delivered were
    # stored and released, not recomputed (each of the six keys finished once).
    prefix = f"gmm-compare-replicate-{open_store(out, settings).token}-"
    finished = client.run_on_scheduler(finished_counts, prefix, started)
    assert finished == {f"{prefix}{r}": 1 for r in range(1, 7)}
