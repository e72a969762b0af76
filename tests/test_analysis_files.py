"""Outputs built aside and renamed into place: never half a report, never a good one lost."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

import pytest

from analysis.files import MANIFEST, dumps, staged_folder, write_manifest, write_text_atomic
from analysis.saved import REPORT_NAMES


def _good_report(folder):
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("good")
    write_manifest(folder)
    return _contents(folder)


def _contents(folder):
    return {p.name: p.read_text() for p in folder.iterdir() if p.name != MANIFEST}


def test_a_complete_folder_replaces_the_old_one(tmp_path):
    target = tmp_path / "report"
    _good_report(target)
    with staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
        assert _contents(target) == {"index.html": "good"}  # untouched until complete
    assert _contents(target) == {"index.html": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_failure_leaves_the_old_folder_and_no_partial_one(tmp_path):
    target = tmp_path / "report"
    before = _good_report(target)
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "index.html").write_text("half")
        raise RuntimeError("sampler died")
    assert _contents(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_an_interrupt_leaves_the_old_folder(tmp_path):
    target = tmp_path / "report"
    before = _good_report(target)
    with pytest.raises(KeyboardInterrupt), staged_folder(target):
        raise KeyboardInterrupt
    assert _contents(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_new_folder_and_its_parents_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "report"
    with staged_folder(target) as staging:
        (staging / "x").write_text("1")
    assert _contents(target) == {"x": "1"}


def test_a_file_in_the_way_is_a_value_error(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="is a file, not a folder"), staged_folder(blocker / "r"):
        pass
    with pytest.raises(ValueError, match="exists and is not a folder"), staged_folder(blocker):
        pass
    assert blocker.read_text() == "not a folder"


def test_write_text_atomic(tmp_path):
    path = tmp_path / "out" / "data.csv"
    write_text_atomic(path, "a\n")
    write_text_atomic(path, "b\n")
    assert path.read_text() == "b\n"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()  # not mkstemp's 0o600
    assert [p.name for p in path.parent.iterdir()] == ["data.csv"]
    with pytest.raises(ValueError, match="is a folder"):
        write_text_atomic(tmp_path, "x")


def test_json_refuses_nan():
    assert dumps({"a": None}) == '{\n  "a": null\n}\n'
    with pytest.raises(ValueError):
        dumps({"a": float("nan")})


def test_a_published_folder_has_the_usual_permissions(tmp_path):
    target = tmp_path / "report"
    with staged_folder(target) as staging:
        (staging / "private").write_text("x")
        (staging / "private").chmod(0o600)
    assert target.stat().st_mode & 0o777 == 0o777 & ~_current_umask()
    assert (target / "private").stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask():
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------------------------
# Only our own reports are replaced (a manifest says which folders are)


def test_the_manifest_names_the_tool_its_version_and_the_files(tmp_path):
    target = tmp_path / "report"
    with staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
        (staging / "figures").mkdir()
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest == {
        "tool": "gmm-compare",
        "version": importlib.metadata.version("gmm-compare"),
        "files": ["figures", "index.html"],
    }


def test_a_folder_holding_anything_else_is_refused_and_kept(tmp_path):
    # Before: any folder was replaced, whatever it held.
    target = tmp_path / "report"
    _good_report(target)
    (target / "notes.txt").write_text("mine")  # added by the user after the run
    refused = r"holds files this tool did not write \(notes.txt\)"
    with pytest.raises(ValueError, match=refused), staged_folder(target):
        pytest.fail("the work started")
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_report_written_before_manifests_is_recognised_by_its_file_names(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    for name in ("index.html", "summary.md", "em.json"):
        (target / name).write_text("old")
    with staged_folder(target, recognised=REPORT_NAMES) as staging:
        (staging / "index.html").write_text("new")
    assert _contents(target) == {"index.html": "new"}
    (target / "t.txt").write_text("keep")
    (target / MANIFEST).unlink()
    refused = r"is not a gmm-compare report \(no gmm-compare-manifest"
    with pytest.raises(ValueError, match=refused), staged_folder(target, recognised=REPORT_NAMES):
        pytest.fail("the work started")
    assert (target / "t.txt").read_text() == "keep"


def test_a_symlinked_folder_is_followed_and_the_link_kept(tmp_path):
    real = tmp_path / "real"
    _good_report(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with staged_folder(link) as staging:
        (staging / "index.html").write_text("new")
    assert link.is_symlink() and link.resolve() == real
    assert _contents(real) == {"index.html": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


# ---------------------------------------------------------------------------------------------
# Killed runs: their leftovers are cleaned by the next run


def _dead_pid():
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_run_removes_a_killed_runs_staging_folder(tmp_path):
    target = tmp_path / "report"
    before = _good_report(target)
    stale = tmp_path / f".report.partial-{_dead_pid()}-abc"
    stale.mkdir()
    (stale / "posterior.nc").write_text("half")
    running = tmp_path / f".report.partial-{os.getpid()}-def"  # a live run's: left alone
    running.mkdir()
    other = tmp_path / ".other.partial-1-x"  # another report's: left alone
    other.mkdir()
    with pytest.raises(RuntimeError), staged_folder(target):
        raise RuntimeError("stop after the clean-up")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["report", running.name, other.name]
    )
    assert _contents(target) == before


def test_a_report_moved_aside_by_a_killed_run_is_put_back(tmp_path):
    # Killed between the two renames of publish: the old report is in .NAME.old-PID-*/previous.
    target = tmp_path / "report"
    aside = tmp_path / f".report.old-{_dead_pid()}-abc"
    before = _good_report(aside / "previous")
    with pytest.raises(RuntimeError), staged_folder(target):
        raise RuntimeError("stop after the clean-up")
    assert _contents(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


# ---------------------------------------------------------------------------------------------
# One atomic write for the project, with the usual permissions


def test_staging_folders_have_the_usual_permissions(tmp_path):
    # Before: mkdtemp's 0700, which a killed run left behind.
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "report") as staging:
        assert staging.stat().st_mode & 0o777 == 0o777 & ~_current_umask()
        raise RuntimeError("done")


def test_save_posterior_gives_the_usual_permissions(tmp_path):
    # Before: the netCDF library truncated mkstemp's private file, so posterior.nc was 0600.
    import xarray as xr

    from models import load_posterior, save_posterior

    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"weights": ("draw", [0.5, 0.25])})})
    path = save_posterior(tree, tmp_path / "posterior.nc")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_current_umask()
    assert load_posterior(path).posterior["weights"].values.tolist() == [0.5, 0.25]
    assert [p.name for p in tmp_path.iterdir()] == ["posterior.nc"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from models.storage import write_atomically

    path = tmp_path / "data.csv"
    path.write_text("old")

    def broken(temporary):
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]
