"""Issue 23: reading the user's data and the command's options (header, streams, counts, names)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main, output_folder, parse, settings_for
from analysis.datasets import load_dataset, read_csv

SPREAD_ROWS = "\n".join(f"{i % 7},{(i * 3) % 11 + 0.5}" for i in range(40))
"""40 points spread over a grid: EM fits K = 2 to them quickly."""

# --- Case 5: the header is detected by a rule, or chosen, and the report says which


def test_a_first_line_mixing_numbers_and_names_is_refused_naming_the_field(tmp_path):
    # Before: '0.5,1.2.3' became the header, the point dropped, the columns named '0.5', '1.2.3'.
    path = tmp_path / "points.csv"
    path.write_text("0.5,1.2.3\n1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"line 1 mixes numbers and names: column 2, '1\.2\.3'"):
        read_csv(path)


def test_a_label_field_counts_as_a_name_in_the_header(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("label,x,y\n0,1,2\n1,3,4\n")
    dataset = read_csv(path)
    assert dataset.names == ("x", "y")
    assert dataset.labels.tolist() == [0, 1]
    path.write_text("label,2019\n0,1\n1,3\n")
    with pytest.raises(ValueError, match=r"column 1, 'label', is not a number but column 2"):
        read_csv(path)


def test_header_true_or_false_overrides_the_detection(tmp_path):
    path = tmp_path / "years.csv"
    path.write_text("2019,2020\n1,2\n3,4\n5,6\n")
    detected = read_csv(path)
    assert detected.n_points == 4 and detected.names is None
    assert detected.header.as_dict() == {"used": False, "detected": True}
    asked = read_csv(path, header=True)
    assert asked.names == ("2019", "2020")
    assert asked.X.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert asked.header.as_dict() == {"used": True, "detected": False}
    path.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=r"line 1, column 1: 'x' is not a number"):
        read_csv(path, header=False)
    with pytest.raises(TypeError, match="header must be None, True or False"):
        read_csv(path, header="yes")


def test_the_description_says_how_the_first_line_was_read(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("x,y\n1,2\n3,4\n")
    assert read_csv(path).description.endswith("first line read as the header (every field a name)")
    path.write_text("1,2\n3,4\n")
    assert read_csv(path).description.endswith("no header (every field of the first line a number)")
    assert read_csv(path, header=False).description.endswith("no header, as asked")


def test_header_options_on_the_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("0.5,1.2.3\n1,2\n3,4\n")
    assert main(["em", "--data", str(bad), "-k", "1", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "'1.2.3'" in err
    years = tmp_path / "years.csv"
    years.write_text(f"2019,2020\n{SPREAD_ROWS}\n")
    command = ["em", "--data", str(years), "-k", "2", "--bootstrap", "0", "--json"]
    assert main([*command, "--header"]) == 0
    dataset = json.loads(capsys.readouterr().out)["dataset"]
    assert dataset["names"] == ["2019", "2020"]
    assert dataset["header"] == {"used": True, "detected": False}
    assert main([*command, "--no-header"]) == 0
    dataset = json.loads(capsys.readouterr().out)["dataset"]
    assert dataset["names"] is None and dataset["description"].startswith("41 points")
    assert main(["em", "seed42", "--header"]) == 2
    assert "--header says how to read --data" in capsys.readouterr().err


def test_the_report_says_how_the_header_was_read(tmp_path, capsys):
    data = tmp_path / "years.csv"
    data.write_text(f"2019,2020\n{SPREAD_ROWS}\n")
    out = tmp_path / "rep"
    args = ["compare", "--data", str(data), "-k", "2", "--methods", "em", "--bootstrap", "0"]
    assert main([*args, "--header", "--out", str(out), "-q"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert comparison["dataset"]["header"] == {"used": True, "detected": False}
    assert "first line read as the header, as asked" in (out / "summary.md").read_text()
    assert "first line read as the header, as asked" in (out / "index.html").read_text()
    assert main(["report", "--out", str(out), "-q"]) == 0  # rebuilt from em.json and data.csv
    rebuilt = json.loads((out / "comparison.json").read_text())
    assert rebuilt["dataset"]["names"] == ["2019", "2020"]
    assert rebuilt["dataset"]["header"] == {"used": True, "detected": False}


# --- Case 9: only a regular file is read, in chunks, up to a cap

NOT_A_FILE_GUARD = 60
"""Seconds a command given a stream may take before the test calls it a hang (a hang guard)."""


def _refused_in_a_subprocess(run_gmm_compare_guarded, path: str) -> str:
    """Run `em --data path`; its stderr, after checking it is one line and exit status 2."""
    result = run_gmm_compare_guarded("em", "--data", path, "-k", "1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.splitlines()) == 1
    return result.stderr


@pytest.fixture
def run_gmm_compare_guarded(tmp_path):
    """Run the command with a timeout and an address-space cap (so that an old reader of an
    endless stream fails fast instead of filling the machine's memory)."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**32, 2**32))

    def run(*args: str) -> subprocess.CompletedProcess:
        code = "import sys; from analysis.cli import main; sys.exit(main(sys.argv[1:]))"
        try:
            return subprocess.run(
                [sys.executable, "-c", code, *args],
                capture_output=True,
                text=True,
                timeout=NOT_A_FILE_GUARD,
                preexec_fn=limit_memory,
                cwd=tmp_path,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"gmm-compare {' '.join(args)} still running after {NOT_A_FILE_GUARD} s")

    return run


def test_an_endless_device_is_refused_before_reading(run_gmm_compare_guarded):
    # Before: /dev/zero was read until the kernel killed the command (22.7 GB).
    err = _refused_in_a_subprocess(run_gmm_compare_guarded, "/dev/zero")
    assert "'/dev/zero' is a character device, not a regular file" in err


def test_a_fifo_without_a_writer_is_refused_at_once(run_gmm_compare_guarded, tmp_path):
    # Before: opening the FIFO waited for a writer forever.
    fifo = tmp_path / "points.csv"
    os.mkfifo(fifo)
    err = _refused_in_a_subprocess(run_gmm_compare_guarded, str(fifo))
    assert "is a FIFO (named pipe), not a regular file" in err


def test_a_socket_and_a_folder_are_refused_naming_them(tmp_path):
    path = tmp_path / "s.csv"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ValueError, match=r"s\.csv' (is a socket|cannot be read)"):
            read_csv(path)
    with pytest.raises(ValueError, match="is a folder, not a regular file"):
        read_csv(tmp_path)


def test_a_file_beyond_the_cap_is_refused_after_reading_at_most_the_cap(tmp_path, monkeypatch):
    import analysis.datasets as datasets

    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 3 * datasets.READ_CHUNK)
    path = tmp_path / "big.csv"
    line = b"1.0,2.0\n"
    path.write_bytes(line * (3 * datasets.READ_CHUNK // len(line) + 1))
    reads: list[int] = []
    real_read = os.read

    def counted(fd: int, size: int) -> bytes:
        reads.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(datasets.os, "read", counted)
    with pytest.raises(ValueError, match=r"big\.csv' is larger than 3 MiB \(3145728 bytes\)"):
        read_csv(path)
    # Bounded chunks, stopping at the first one past the cap (a growing file stops there too).
    assert reads == [datasets.READ_CHUNK] * 4
    path.write_bytes(line * (3 * datasets.READ_CHUNK // len(line)))
    assert read_csv(path).n_points == 3 * datasets.READ_CHUNK // len(line)


class _AlarmError(Exception):
    """Raised by the test's SIGALRM handler."""


def test_an_interrupt_stops_the_read_between_chunks(tmp_path, monkeypatch):
    # Before: the whole file was read by one call, and a signal handler ran only once it was
    # all in memory. A sparse file of 1 GiB of zeros takes no disk and a while to read.
    import resource

    import analysis.datasets as datasets

    size = 2**30
    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 2 * size, raising=False)  # read it all
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.truncate(size)

    def alarm(_signum: int, _frame: Any) -> None:
        raise _AlarmError

    previous = signal.signal(signal.SIGALRM, alarm)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with pytest.raises(_AlarmError):
            read_csv(path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < size // 4  # stopped long before the file was in memory


# --- Case 17 (b): a CSV's default report folder is never a named dataset's


def test_a_csv_named_like_a_dataset_never_writes_the_datasets_report(tmp_path, monkeypatch):
    # Before: Seed_42.csv wrote to reports/seed42/ and replaced seed42's own report.
    monkeypatch.chdir(tmp_path)
    quick = ["--methods", "em", "--bootstrap", "0", "-q"]
    assert main(["compare", "seed42", *quick]) == 0
    named = tmp_path / "reports" / "seed42"
    before = {path.name: path.read_bytes() for path in named.iterdir() if path.is_file()}
    assert main(["data", "seed42", "--out", "Seed_42.csv", "-q"]) == 0
    assert main(["compare", "--data", "Seed_42.csv", *quick]) == 0
    assert (tmp_path / "reports" / "Seed_42-csv" / "index.html").is_file()
    assert {path.name: path.read_bytes() for path in named.iterdir() if path.is_file()} == before
    assert main(["select", "--data", "Seed_42.csv", "-k", "1:2", "--methods", "em", "-q"]) == 0
    assert (tmp_path / "reports" / "Seed_42-csv-select" / "index.html").is_file()
    assert not (tmp_path / "reports" / "seed42-select").exists()


@pytest.mark.parametrize(
    ("arguments", "folder"),
    [
        (["--data", "points.csv"], "reports/points"),
        (["--data", "dir/Points_2.csv"], "reports/Points_2"),
        (["--data", "SEED-7907.csv"], "reports/SEED-7907-csv"),
        (["--data", "seed42-select.csv"], "reports/seed42-select-csv"),
        (["seed-7907"], "reports/seed7907"),
        (["Seed_1000"], "reports/seed1000"),
    ],
)
def test_default_report_folders(arguments, folder):
    assert output_folder(parse(["compare", *arguments])) == Path(folder)


# --- Case 17 (a): a `|` in a column's name is escaped in the Markdown tables


def _table_widths(markdown: str) -> list[set[int]]:
    """The numbers of unescaped `|` on the lines of each Markdown table (one set per table)."""
    widths: list[set[int]] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            if not inside:
                widths.append(set())
            widths[-1].add(len(re.findall(r"(?<!\\)\|", line)))
        inside = line.startswith("|")
    return widths


def test_a_pipe_in_a_column_name_keeps_the_markdown_tables_whole(tmp_path):
    # Before: the `|` of 'a|b' split its cells, so rows had more columns than the header.
    data = tmp_path / "pipes.csv"
    data.write_text(f"a|b,c\n{SPREAD_ROWS}\n")
    out = tmp_path / "rep"
    args = ["--data", str(data), "-k", "2", "--methods", "em", "--bootstrap", "0", "-q"]
    assert main(["compare", *args, "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert r"a\|b" in summary
    widths = _table_widths(summary)
    assert widths and all(len(table) == 1 for table in widths), widths


# --- Case 17 (c): Ctrl-C while the command is still importing is one line and exit 130

STARTUP_GUARD = 60.0
"""Seconds to wait for a line from the child or for its exit (a hang guard only)."""
EARLY_DELAYS = [0.025 * i for i in range(1, 17)]
"""When SIGINT comes after the `analysis` package is imported: through the command's imports
(about 0.4 s) and after."""


def _lines(stream: Any) -> queue.Queue[str]:
    """A queue of the stream's lines as a thread reads them ('' at the end)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.parametrize("delay", EARLY_DELAYS, ids=lambda delay: f"{delay:.3f}s")
def test_ctrl_c_while_the_command_imports_is_one_line_and_130(delay):
    # Before: a KeyboardInterrupt traceback from inside NumPy's or our imports, killed by SIGINT.
    # Python's own start-up (site and its .pth files) is not the command's: -X importtime tells
    # when the script's first import, the `analysis` package, is done, and the delays count
    # from there.
    script = Path(sys.executable).with_name("gmm-compare")
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", str(script), "em", "seed42", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _lines(process.stderr)
        while (line := lines.get(timeout=STARTUP_GUARD)).rpartition("|")[2].strip() != "analysis":
            assert line, "the command ended before importing the analysis package"
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STARTUP_GUARD) == 130
        rest = iter(lambda: lines.get(timeout=STARTUP_GUARD), "")
        said = [line.rstrip() for line in rest if not line.startswith("import time:")]
    finally:
        process.kill()
        process.wait()
    assert said == [
        "gmm-compare: interrupted (SIGINT); nothing was written, earlier outputs are unchanged"
    ]


# --- Case 10: every count is bounded by what the machine can hold, before any work

HUGE = str(2**63)
"""A count past int64: NumPy and nutpie raised OverflowError on it."""


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["simulate", "-r", "100000000000000000000"], "--replicates/-r"),
        (["simulate", "--workers", "100000000"], "--workers"),
        (["simulate", "--points", HUGE], "--points/-n"),
        (["compare", "seed42", "--draws", HUGE], "--draws"),
        (["compare", "seed42", "--tune", HUGE], "--tune"),
        (["sample", "seed42", "--chains", HUGE], "--chains"),
        (["em", "seed42", "--bootstrap", HUGE], "--bootstrap"),
        (["em", "seed42", "-k", HUGE], "--components/-k"),
        (["select", "seed42", "--max-components", HUGE], "--max-components"),
    ],
)
def test_a_count_no_machine_holds_is_refused_in_one_line(
    run_gmm_compare_guarded, tmp_path, arguments, option
):
    # Before: 10^20 replicates were listed one by one (10 minutes, memory growing), 2^63 draws
    # or bootstrap replicates raised an OverflowError traceback.
    out = [] if arguments[0] == "em" else ["--out", str(tmp_path / "out")]
    result = run_gmm_compare_guarded(*arguments, *out)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.splitlines()
    assert f"argument {option}: must be at most " in line and f"got {arguments[-1]}" in line
    assert not (tmp_path / "out").exists()


def test_a_posterior_too_large_is_refused_before_sampling(run_gmm_compare_guarded, tmp_path):
    # Before: nutpie aborted ("memory allocation of 136000001360 bytes failed", exit 134).
    out = tmp_path / "out"
    args = ["compare", "seed42", "--draws", "1000000000", "--tune", "10", "--chains", "2"]
    result = run_gmm_compare_guarded(
        *args, "--methods", "em,nuts", "--bootstrap", "0", "--out", str(out)
    )
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = result.stderr.splitlines()
    assert "--draws 1000000000 is more than this machine can hold" in line
    assert re.search(r"at most \d+ ", line)
    assert not out.exists()


@pytest.fixture
def eight_gb_machine(monkeypatch):
    """The limits of a machine with 8 GB of memory, whatever this one has."""
    import analysis.limits as limits

    monkeypatch.setattr(limits, "memory_budget", lambda: int(8e9 * limits.MEMORY_SHARE))
    return limits


def test_the_limit_named_is_the_largest_count_that_fits(eight_gb_machine, tmp_path):
    limits = eight_gb_machine
    size = limits.RunSize(300, 2, 3, draws=10**9, chains=4, bootstrap=999, nuts=True, twin=True)
    with pytest.raises(ValueError, match=r"--draws 1000000000 .* at most (\d+) ") as error:
        limits.check_run_memory(size, {"draws": "--draws", "chains": "--chains"})
    most = int(re.search(r"at most (\d+) ", str(error.value)).group(1))
    budget = limits.memory_budget()
    assert limits.run_bytes(replace(size, draws=most)) <= budget
    assert limits.run_bytes(replace(size, draws=most + 1)) > budget
    # The posterior's log-likelihood alone is chains x draws x n float32 values: a bound from
    # outside the estimate.
    assert most * 4 * 300 * 4 < budget
    wide = replace(size, draws=1000, chains=10**8)
    with pytest.raises(ValueError, match=r"^--chains 100000000 is more than"):
        limits.check_run_memory(wide, {"draws": "--draws", "chains": "--chains"})


def test_the_largest_runs_the_tests_make_stay_allowed(eight_gb_machine):
    # tests/test_cli_signals.py samples seed42 (300 points) with 2 chains x 200000 draws.
    limits = eight_gb_machine
    size = limits.RunSize(300, 2, 3, draws=200_000, chains=2, bootstrap=999, nuts=True, twin=True)
    limits.check_run_memory(size, {"draws": "--draws"})
    assert (
        settings_for(
            parse(["sample", "seed42", "--draws", "200000", "--chains", "2"]),
            load_dataset("seed42"),
        ).draws
        == 200_000
    )


def test_a_study_of_more_replicates_than_fit_is_refused_before_listing_them():
    from analysis.simulation import StudySettings

    with pytest.raises(ValueError, match=r"replicates must be at most \d+, got 10{20}"):
        StudySettings(replicates=10**20)


def test_a_study_too_large_for_the_workers_names_the_option(eight_gb_machine, tmp_path):
    from analysis.cli import check_study_memory
    from analysis.simulation import StudySettings

    args = parse(["simulate", "--points", "10000000", "--workers", "2"])
    settings = StudySettings(n_points=args.points)
    with pytest.raises(ValueError, match=r"^--points 10000000 is more than .* at most \d+ "):
        check_study_memory(settings, args)
    args = parse(["simulate", "--workers", "2"])
    check_study_memory(StudySettings(), args)  # the defaults fit
