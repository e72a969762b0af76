"""The study's store on resume: a replicate is reused only when it was made with the study's
settings and reads back whole; otherwise it is computed again, with a one-line warning.

Issue 23, case 7: a replicate made with `-n 1000` was reused in an `-n 200` study (a coverage
changed 0.75 -> 1.00). EM only, no bootstrap: nothing samples.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis.cli import main
from analysis.simulation import StudyRun, StudySettings, run_replicate, run_study
from analysis.simulation_report import summarise
from analysis.simulation_store import REPLICATES, open_store

STUDY = StudySettings(replicates=3, n_points=100, methods=("em",), bootstrap=0)
"""A study of 3 replicates of 100 points, EM's Wald intervals only."""
LARGER = StudySettings(**{**STUDY.__dict__, "n_points": 200})
"""The same study with other settings: replicates of 200 points."""


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of one single-threaded worker process."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        memory_limit=0,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def clean(scheduler, tmp_path_factory) -> Path:
    """A complete study of STUDY, computed once; copied by the tests, never changed."""
    out = tmp_path_factory.mktemp("clean") / "study"
    run_study(STUDY, out, scheduler=scheduler)
    return out


def replicate_file(out: Path, replicate: int) -> Path:
    """Replicate r's file in the study folder out."""
    return out / REPLICATES / f"replicate-{replicate:05d}.json"


def numbers(out: Path) -> dict[int, dict]:
    """Every stored replicate's method entries without timings, by replicate."""
    records = {}
    for r in range(1, STUDY.replicates + 1):
        record = json.loads(replicate_file(out, r).read_text())
        records[r] = {
            name: {key: value for key, value in entry.items() if key != "seconds"}
            for name, entry in record["methods"].items()
        }
    return records


def _rewrite(path: Path, change: Callable[[dict], object]) -> None:
    """Rewrite a replicate's JSON after change(record) edits it in place."""
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _other_settings(out: Path) -> None:
    """Replicate 2 as a study of 200 points made it."""
    replicate_file(out, 2).write_text(json.dumps(run_replicate(LARGER, 2)))


def _truncated(out: Path) -> None:
    """Replicate 2's file cut short, as a full disk leaves it."""
    path = replicate_file(out, 2)
    path.write_text(path.read_text()[:200])


def _wrong_types(out: Path) -> None:
    """Replicate 2's coverage flags as strings: "no" would count as covered."""

    def change(record: dict) -> None:
        entry = record["methods"]["em_wald"]
        entry["covered"] = ["no" for _ in entry["covered"]]

    _rewrite(replicate_file(out, 2), change)


def _short_estimate(out: Path) -> None:
    """Replicate 2's estimate one parameter short."""
    _rewrite(replicate_file(out, 2), lambda record: record["methods"]["em_wald"]["estimate"].pop())


def _wrong_replicate(out: Path) -> None:
    """Replicate 3's record under replicate 2's name."""
    shutil.copy2(replicate_file(out, 3), replicate_file(out, 2))


def _oversized(out: Path) -> None:
    """Replicate 2's record padded past any record's size (read whole, it could be any size)."""
    path = replicate_file(out, 2)
    path.write_text(path.read_text() + " " * 2_000_000)


def _earlier_version(out: Path) -> None:
    """Replicate 2 as 963226b wrote it: no settings in the record."""
    _rewrite(replicate_file(out, 2), lambda record: record.pop("settings", None))


CASES = {
    "other settings": (_other_settings, "1 made with other settings (replicate-00002.json: "),
    "truncated": (_truncated, "1 unreadable or malformed (replicate-00002.json: "),
    "wrong types": (_wrong_types, "em_wald: covered is not 18 true/false values"),
    "short estimate": (_short_estimate, "em_wald: estimate is not 18 finite numbers"),
    "wrong replicate": (_wrong_replicate, "replicate 3, not 2"),
    "earlier version": (_earlier_version, "1 made by an earlier version"),
    "oversized": (_oversized, "(replicate-00002.json: larger than 1000000 bytes)"),
}


@pytest.mark.parametrize("case", CASES)
def test_an_unusable_replicate_is_computed_again_with_a_warning(clean, scheduler, tmp_path, case):
    # Before: no warning; each was reused as it stood (computed 0, reused 3): other settings'
    # numbers in the study, "no" counted as covered, or an error when the report read it.
    spoil, reason = CASES[case]
    out = tmp_path / "study"
    shutil.copytree(clean, out)
    spoil(out)
    with pytest.warns(UserWarning) as warned:
        run = run_study(STUDY, out, scheduler=scheduler)
    messages = [str(w.message) for w in warned]
    assert len(messages) == 1 and messages[0].startswith("computing 1 stored replicate(s) again: ")
    assert reason in messages[0]
    assert (run.computed, run.reused) == (1, 2)
    assert numbers(out) == numbers(clean)


def test_the_warning_names_the_differing_settings(clean, scheduler, tmp_path):
    out = tmp_path / "study"
    shutil.copytree(clean, out)
    _other_settings(out)
    with pytest.warns(UserWarning, match=r"n_points 200, not 100\)$"):
        run_study(STUDY, out, scheduler=scheduler)


def test_the_report_never_reads_an_unusable_replicate_as_data(clean, tmp_path):
    # Before: summarise counted the strings "no" as covered: coverage 1.0, no error.
    out = tmp_path / "study"
    shutil.copytree(clean, out)
    _wrong_types(out)
    run = StudyRun(replicates=3, computed=0, reused=3, workers=1, wall_seconds=1.0)
    with pytest.raises(ValueError, match=r"replicate-00002\.json' cannot be used: unreadable or"):
        summarise(open_store(out, STUDY), run)


def test_simulate_says_what_it_computes_again_in_one_line(clean, tmp_path, capsys):
    # Before: exit 2, "cannot read stored replicate ...", after the run: nothing computed again.
    out = tmp_path / "study"
    shutil.copytree(clean, out)
    _truncated(out)
    run = ["simulate", "-r", "3", "-n", "100", "--methods", "em", "--bootstrap", "0"]
    assert main([*run, "--workers", "1", "--out", str(out), "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "gmm-compare: warning: computing 1 stored replicate(s) again: 1 unreadable or malformed "
        "(replicate-00002.json: "
    )
    assert numbers(out) == numbers(clean)
