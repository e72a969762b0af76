"""Outputs built aside and renamed into place: never half a report, never a good one lost."""

from __future__ import annotations

import pytest

from analysis.files import dumps, staged_folder, write_text_atomic


def _good_report(folder):
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("good")
    return {p.name: p.read_text() for p in folder.iterdir()}


def _contents(folder):
    return {p.name: p.read_text() for p in folder.iterdir()}


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
