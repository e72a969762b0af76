"""Outputs built aside and renamed into place: never half a report, never a good one lost."""

from __future__ import annotations

import ctypes
import errno
import importlib.metadata
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from analysis.files import (
    MANIFEST,
    PUBLISHED,
    SELECTION,
    dumps,
    staged_folder,
    write_manifest,
    write_text_atomic,
)


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


def test_the_manifest_names_the_tool_its_version_the_kind_and_every_file(tmp_path):
    # Changed for issue 23 (case 2): it listed the top-level names only ("figures", not
    # what figures/ held), so a file a user added inside figures/ was replaced unseen.
    target = tmp_path / "report"
    with staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
        (staging / "figures" / "inner").mkdir(parents=True)
        (staging / "figures" / "a.png").write_text("png")
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest == {
        "tool": "gmm-compare",
        "version": importlib.metadata.version("gmm-compare"),
        "kind": "report",
        "files": ["figures/a.png", "index.html"],
        "folders": ["figures", "figures/inner"],
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


def test_a_folder_without_a_manifest_is_refused_whatever_names_it_holds(tmp_path):
    # Replaces a test that pinned the defect of issue 23, case 1: a folder without a manifest
    # was replaced when all its names were names a report uses.
    target = tmp_path / "report"
    target.mkdir()
    for name in ("index.html", "summary.md", "em.json"):
        (target / name).write_text("mine")
    refused = (
        r"is not a gmm-compare report \(no gmm-compare-manifest.json; "
        r"it holds em.json, index.html, summary.md\)"
    )
    with pytest.raises(ValueError, match=refused), staged_folder(target):
        pytest.fail("the work started")
    assert _contents(target) == {name: "mine" for name in ("index.html", "summary.md", "em.json")}


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


# ---------------------------------------------------------------------------------------------
# Issue 23: only a folder wholly ours, of the same kind, is replaced (cases 1 to 3)

EM_ONLY = ("--methods", "em", "-q")
COMPARE = ("compare", "seed42", "--bootstrap", "0")


def _tree(folder):
    """Every file under folder, at any depth: relative path -> bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _files(folder, files):
    """Write files (relative path -> text) under folder."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _work_started(*_args, **_kwargs):
    """Stands for the work: an error the command line does not turn into exit status 2."""
    raise AssertionError("the work started")


@pytest.fixture
def no_work(monkeypatch):
    """The fitting of compare and select fails the test if it starts."""
    monkeypatch.setattr("analysis.pipeline.run_em", _work_started)
    monkeypatch.setattr("analysis.selection.select_components", _work_started)


@pytest.mark.parametrize(
    ("command", "files"),
    [
        (COMPARE, {"index.html": "<html>mine</html>"}),
        (COMPARE, {"data.csv": "1,2\n", "figures/plot.png": "mine"}),
        (("select", "seed42", "-k", "1:2"), {"summary.md": "# mine"}),
    ],
)
def test_a_folder_without_a_manifest_is_never_replaced(tmp_path, no_work, capsys, command, files):
    # Issue 23, case 1. Before: the work ran, exit 0, and the user's files were gone.
    from analysis.cli import main

    site = _files(tmp_path / "site", files)
    assert main([*command, *EM_ONLY, "--out", str(site)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gmm-compare: error: output folder '{site}' is not a gmm-compare ")
    assert f"(no {MANIFEST}; it holds " in err and err.count("\n") == 1
    assert _tree(site) == {name: text.encode() for name, text in files.items()}
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_a_file_added_inside_a_reports_subfolder_is_refused_and_kept(tmp_path):
    # Issue 23, case 2. Before: the manifest listed "figures" only, and figures/mine.png went.
    target = tmp_path / "report"
    with staged_folder(target) as staging:
        _files(staging, {"index.html": "good", "figures/a.png": "ours"})
    for added in ("figures/mine.png", "figures/deeper/mine.txt"):
        before = _tree(_files(target, {added: "mine"}))
        with pytest.raises(ValueError, match=r"did not write \(figures/"), staged_folder(target):
            pytest.fail("the work started")
        assert _tree(target) == before
        (target / added).unlink()
    (target / "figures" / "deeper").rmdir()
    (target / "figures" / "link.png").symlink_to(tmp_path)  # links are not ours either
    refused = pytest.raises(ValueError, match=r"did not write \(figures/link.png\)")
    with refused, staged_folder(target):
        pytest.fail("the work started")
    (target / "figures" / "link.png").unlink()
    with staged_folder(target) as staging:  # nothing but ours: replaced
        _files(staging, {"index.html": "new"})
    assert _tree(target) == {"index.html": b"new", MANIFEST: (target / MANIFEST).read_bytes()}


def test_a_file_added_while_the_run_works_is_refused_and_kept(tmp_path):
    # Before: the folder was checked when the run started only; the file went with it.
    target = tmp_path / "report"
    before = _good_report(target)
    refused = pytest.raises(ValueError, match=r"did not write \(figures/\)")
    with refused, staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
        _files(target, {"figures/mine.png": "mine"})
    assert _tree(target) == {
        "index.html": before["index.html"].encode(),
        "figures/mine.png": b"mine",
        MANIFEST: (target / MANIFEST).read_bytes(),
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def _study(folder):
    """A simulation study as `simulate` leaves it, with one stored replicate."""
    from analysis.simulation import StudySettings
    from analysis.simulation_store import open_store

    store = open_store(folder, StudySettings(replicates=2, n_points=100))
    store.write({"replicate": 1, "methods": {}})
    return folder


def _as_written_by_963226b(folder):
    """Give folder the manifest 963226b wrote: no kind, its top-level names only."""
    names = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    document = {"tool": "gmm-compare", "version": "0.1.0", "files": names}
    (folder / MANIFEST).write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize("command", [COMPARE, ("select", "seed42", "-k", "1:2")])
@pytest.mark.parametrize("manifest", ["today's", "963226b's"])
def test_compare_or_select_never_replaces_a_simulation_study(
    tmp_path, no_work, capsys, command, manifest
):
    # Issue 23, case 3. Before: the work ran and study.json and every replicate were deleted.
    from analysis.cli import main

    study = _study(tmp_path / "study")
    if manifest == "963226b's":
        _as_written_by_963226b(study)
    before = _tree(study)
    assert main([*command, *EM_ONLY, "--out", str(study)]) == 2
    err = capsys.readouterr().err
    kind = "selection report" if command[0] == "select" else "report"
    assert f"'{study}' holds a gmm-compare simulation study, not a gmm-compare {kind} " in err
    assert err.count("\n") == 1
    assert _tree(study) == before


@pytest.mark.parametrize(("made_by", "run_by"), [("compare", "select"), ("select", "compare")])
def test_a_report_and_a_selection_report_do_not_replace_each_other(
    tmp_path, no_work, capsys, made_by, run_by
):
    # Issue 23, case 3. Before: each replaced the other (both hold index.html, summary.md).
    from analysis.cli import main

    kinds = {"compare": "report", "select": SELECTION}
    folder = tmp_path / "out"
    with staged_folder(folder, kinds[made_by]) as staging:
        _files(staging, {"index.html": "ours", "summary.md": "ours"})
    before = _tree(folder)
    command = ("select", "seed42", "-k", "1:2") if run_by == "select" else COMPARE
    assert main([*command, *EM_ONLY, "--out", str(folder)]) == 2
    names = {"compare": "a gmm-compare report", "select": "a gmm-compare selection report"}
    assert f"holds {names[made_by]}, not {names[run_by]} " in capsys.readouterr().err
    assert _tree(folder) == before


REPORT_BY_963226B = {
    "em.json": "{}",
    "data.csv": "x1,x2\n0.5,1.5\n",
    "comparison.json": "{}",
    "summary.md": "# report",
    "index.html": "<p>report</p>",
    "figures/data.png": "png",
    "figures/rank.png": "png",
}


def test_a_report_written_by_963226b_is_replaced_by_a_report_only(tmp_path):
    # Issue 23, case 3: its kind is inferred from its names (em.json), and figures/ may hold
    # only the figures that version drew.
    folder = _as_written_by_963226b(_files(tmp_path / "old", REPORT_BY_963226B))
    before = _tree(folder)
    refused = pytest.raises(ValueError, match="holds a gmm-compare report, not a gmm-compare sel")
    with refused, staged_folder(folder, SELECTION):
        pytest.fail("the work started")
    _files(folder, {"figures/mine.png": "mine"})
    refused = pytest.raises(ValueError, match=r"did not write \(figures/mine.png\)")
    with refused, staged_folder(folder):
        pytest.fail("the work started")
    assert _tree(folder) == {**before, "figures/mine.png": b"mine"}
    (folder / "figures" / "mine.png").unlink()
    with staged_folder(folder) as staging:
        _files(staging, {"index.html": "new"})
    assert _tree(folder)["index.html"] == b"new"


def test_a_selection_report_written_by_963226b_is_replaced_by_select_only(tmp_path):
    names = ("selection.json", "criteria.png", "summary.md", "index.html")
    folder = _as_written_by_963226b(_files(tmp_path / "old", dict.fromkeys(names, "x")))
    refused = pytest.raises(ValueError, match="holds a gmm-compare selection report, not a gmm-")
    with refused, staged_folder(folder):
        pytest.fail("the work started")
    with staged_folder(folder, SELECTION) as staging:
        _files(staging, {"index.html": "new"})
    assert _tree(folder)["index.html"] == b"new"


# ---------------------------------------------------------------------------------------------
# Issue 23, case 4: `data --out` replaces only a file of the form it writes, keeping its mode

DATA_CSV = "label,x1,x2\n0,0.5,-1.25\n2,3.0,4e-05\n"


@pytest.mark.parametrize("linked", [True, False])
@pytest.mark.parametrize(
    "text", ["root:x:0:0::/root:/bin/bash\n", "x1,x2\n", "x1,x2\n1,2\n3\n", "", "a,b\n1,two\n"]
)
def test_data_never_replaces_a_file_it_did_not_write(tmp_path, capsys, text, linked):
    # Before: `ln -s /etc/hostname l; gmm-compare data seed42 --out l` replaced the system file
    # (and a regular file named directly, whatever it held).
    from analysis.cli import main

    theirs = tmp_path / "theirs"
    theirs.write_text(text)
    theirs.chmod(0o600)
    out = tmp_path / "link" if linked else theirs
    if linked:
        out.symlink_to(theirs)
    assert main(["data", "seed42", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gmm-compare: error: output file '{out}'")
    assert "is not a file this command writes, so it is not replaced" in err
    assert err.count("\n") == 1
    assert theirs.read_text() == text and theirs.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"theirs", out.name})


def test_data_refuses_a_dangling_link(tmp_path, capsys):
    from analysis.cli import main

    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere" / "new.csv")
    assert main(["data", "seed42", "--out", str(link)]) == 2
    assert "is a link to" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


@pytest.mark.parametrize("linked", [True, False])
def test_data_replaces_its_own_csv_and_keeps_its_mode(tmp_path, capsys, linked):
    # Before: the replaced file got the usual 0644 (it was 0600).
    from analysis.cli import main
    from analysis.datasets import load_dataset, to_csv

    ours = tmp_path / "ours.csv"
    ours.write_text(DATA_CSV)
    ours.chmod(0o600)
    out = tmp_path / "link.csv" if linked else ours
    if linked:
        out.symlink_to(ours)
    assert main(["data", "seed42", "--out", str(out), "-q"]) == 0
    assert ours.read_text() == to_csv(load_dataset("seed42"))
    assert ours.stat().st_mode & 0o777 == 0o600
    assert out.is_symlink() == linked
    assert main(["data", "seed1000", "--out", str(out), "-q"]) == 0  # what it wrote is ours
    assert ours.read_text() == to_csv(load_dataset("seed1000"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"ours.csv", out.name})


# ---------------------------------------------------------------------------------------------
# Issue 23, case 8: publishing is one step; an interrupt waits for it and is told truthfully


def _exchange_works(folder):
    """Whether renameat2(RENAME_EXCHANGE) swaps two folders here (asked of libc directly)."""
    first, second = folder / "probe-a", folder / "probe-b"
    first.mkdir()
    second.mkdir()
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    works = renameat2 is not None and renameat2(-100, bytes(first), -100, bytes(second), 2) == 0
    first.rmdir()
    second.rmdir()
    return works


def _renameat2_failing(code):
    """A stand-in for analysis.files._renameat2: no renameat2, or one failing with errno code."""
    if code is None:
        return lambda: None

    def renameat2(*_args):
        ctypes.set_errno(code)
        return -1

    return lambda: renameat2


def _interrupt_when_moved(monkeypatch, target):
    """Send SIGINT to the main thread right after the first rename or swap that moves target.

    Aimed at the main thread, it waits exactly as long as that thread holds it; one caught by
    another thread is `test_interrupts_held_waits_for_an_interrupt_another_thread_caught`'s.
    """
    import analysis.files

    sent = []

    def wrapped(function):
        def moving(*args, **kwargs):
            result = function(*args, **kwargs)
            if not sent and result is not False and target in (Path(args[0]), Path(args[1])):
                sent.append(function.__name__)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            return result

        return moving

    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, wrapped(getattr(os, name)))
    if hasattr(analysis.files, "exchange"):
        monkeypatch.setattr(analysis.files, "exchange", wrapped(analysis.files.exchange))
    return sent


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt here (a test run in the background starts ignoring it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_existing_report_is_swapped_in_one_step(tmp_path, monkeypatch):
    # Before: two renames, and between them the report folder did not exist.
    if not _exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system")
    target = tmp_path / "report"
    _good_report(target)
    missing = []

    def watched(function):
        def spy(source, destination, *args, **kwargs):
            function(source, destination, *args, **kwargs)
            if not target.exists():
                missing.append((source, destination))

        return spy

    for name in ("rename", "replace"):
        monkeypatch.setattr(os, name, watched(getattr(os, name)))
    with staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
    assert missing == []
    assert _contents(target) == {"index.html": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize("swap", ["exchange", "EINVAL", "ENOSYS", "no renameat2"])
def test_an_interrupt_while_publishing_waits_for_it_and_says_so(
    tmp_path, monkeypatch, sigint_raises, swap
):
    # Before: SIGINT between the two renames left no report folder (the old one in
    # .report.old-*) and said "earlier outputs are unchanged". The fallback (EINVAL, ENOSYS,
    # no renameat2) still takes two renames, with the interrupt held until both are done.
    if swap == "exchange" and not _exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available on this system")
    if swap != "exchange":
        code = getattr(errno, swap, None)
        monkeypatch.setattr("analysis.files._renameat2", _renameat2_failing(code), raising=False)
    target = tmp_path / "report"
    _good_report(target)
    sent = _interrupt_when_moved(monkeypatch, target)
    PUBLISHED.clear()
    with pytest.raises(KeyboardInterrupt), staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert _contents(target) == {"index.html": "new"}
    assert [target] == PUBLISHED  # what the command line's message reads
    PUBLISHED.clear()
    assert sent == (["exchange"] if swap == "exchange" else ["rename"])


def test_interrupts_held_waits_for_an_interrupt_another_thread_caught(sigint_raises):
    # A Ctrl-C goes to a thread that does not hold it; Python runs its handler in the main
    # thread, which must only record it until the held step is over.
    from analysis.interrupts import interrupts_held

    go = threading.Event()
    catcher = threading.Thread(
        target=lambda: go.wait() and signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    )
    catcher.start()  # before holding: this thread does not hold SIGINT
    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        go.set()
        catcher.join()
        steps += [sum(range(n)) for n in range(1000)]  # Python runs its handlers meanwhile
        steps.append("held to the end")
    assert steps[-1] == "held to the end"


def test_a_swap_that_fails_otherwise_leaves_the_old_report(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "analysis.files._renameat2", _renameat2_failing(errno.EACCES), raising=False
    )
    target = tmp_path / "report"
    before = _good_report(target)
    with pytest.raises(PermissionError), staged_folder(target) as staging:
        (staging / "index.html").write_text("new")
    assert _contents(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_the_command_says_the_new_report_is_in_place_when_interrupted_while_publishing(
    tmp_path, monkeypatch, capsys
):
    # Before: exit 130, "nothing was written, earlier outputs are unchanged", while the new
    # report was half published (no report folder until a later run put the old one back).
    from analysis.cli import main
    from analysis.interrupts import RECEIVED

    target = tmp_path / "report"
    _good_report(target)
    _interrupt_when_moved(monkeypatch, target)
    # The command's handler kills this process's workers a few seconds after an interrupt
    # (`analysis.interrupts.STRAGGLER_GRACE`): not those of the tests that follow.
    monkeypatch.setattr("analysis.interrupts.stop_children", lambda: None)
    try:
        assert main([*COMPARE, *EM_ONLY, "--out", str(target)]) == 130
    finally:
        RECEIVED.clear()
    assert capsys.readouterr().err == (
        "gmm-compare: interrupted (SIGINT); the new output was complete and is in place in "
        f"{target}/\n"
    )
    assert json.loads((target / MANIFEST).read_text())["kind"] == "report"
    assert (target / "em.json").is_file() and (target / "figures" / "data.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_clearing_leftovers_never_deletes_the_only_copy_of_a_report(tmp_path, capsys):
    # Before: `python -m analysis.files --remove` deleted .report.old-*/previous, the only copy
    # of the report, and the staging folder of a command still running.
    from analysis.files import main as clear

    aside = tmp_path / f".report.old-{_dead_pid()}-abc"
    before = _good_report(aside / "previous")
    running = tmp_path / f".other.partial-{os.getpid()}-def"
    running.mkdir()
    stale = tmp_path / f".other.partial-{_dead_pid()}-xyz"
    stale.mkdir()
    assert clear([str(tmp_path), "--remove"]) == 0
    assert _contents(tmp_path / "report") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report", running.name])
    assert f"put back as {tmp_path / 'report'}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Issue 23, case 17 (part): a write the disk refuses is one clean error


def _file_size_limit(limit):
    """A preexec_fn: files larger than limit bytes cannot be written (EFBIG, no SIGXFSZ)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


SAVE_LARGE_POSTERIOR = """
import sys
import numpy as np
import xarray as xr
from models import save_posterior

draws = np.random.default_rng(0).normal(size=(4, 100_000))
tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"w": (("chain", "draw"), draws)})})
try:
    save_posterior(tree, sys.argv[1])
except OSError as error:
    print(error.errno, error.filename == sys.argv[1])
"""


def test_a_posterior_the_disk_refuses_is_one_oserror(tmp_path):
    # Before: h5py printed "Exception ignored" tracebacks, raised a RuntimeError, and the
    # process died of SIGSEGV on the way out.
    path = tmp_path / "posterior.nc"
    result = subprocess.run(
        [sys.executable, "-c", SAVE_LARGE_POSTERIOR, str(path)],
        preexec_fn=_file_size_limit(100_000),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{errno.EFBIG} True\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.sampling
def test_a_report_the_disk_refuses_is_one_line_and_the_old_report_stays(tmp_path):
    # Before, with the limit just under posterior.nc's size: h5py's "Exception ignored"
    # tracebacks, a crash (SIGSEGV) and the staging folder left behind.
    report = tmp_path / "report"
    command = [str(Path(sys.executable).with_name("gmm-compare")), "sample", "seed42", "-q"]
    command += ["--methods", "em,nuts", "--draws", "50", "--tune", "50", "--chains", "2"]
    command += ["--bootstrap", "0", "--out", str(report)]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    before = _tree(report)
    size = (report / "posterior.nc").stat().st_size
    limit = size - size // 25
    assert max(len(content) for name, content in before.items() if name != "posterior.nc") < limit
    result = subprocess.run(
        command, preexec_fn=_file_size_limit(limit), capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("gmm-compare: error: [Errno 27] File too large: ")
    assert _tree(report) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_simulate_refuses_a_report_and_resumes_a_study_written_by_963226b(tmp_path):
    from analysis.simulation import StudySettings
    from analysis.simulation_store import open_store

    report = tmp_path / "report"
    _good_report(report)
    with pytest.raises(ValueError, match="holds a gmm-compare report, not a gmm-compare sim"):
        open_store(report, StudySettings(replicates=2, n_points=100))
    study = _as_written_by_963226b(_study(tmp_path / "study"))
    store = open_store(study, StudySettings(replicates=3, n_points=100))
    # Resumed, not refused: its replicate, made without recorded settings, is computed again.
    assert set(store.unusable()) == {1}
    assert json.loads((study / MANIFEST).read_text())["kind"] == "simulate"
