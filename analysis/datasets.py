"""The datasets the command offers by name, and reading and writing a user's CSV.

Named datasets:
- `seed7907`: the seed program's 500 bivariate points (its LCG), with its initial values and
  published EM table;
- `seed42`: 100 points each from N((0, 0), I), N((5, 5), I), N((5, 0), I), stacked in that order,
  drawn with NumPy's legacy generator after `np.random.seed(42)` (a GMM tutorial's data);
- `seed1000`: 1000 points from a 3-component mixture (weights 0.15 / 0.35 / 0.5) drawn with
  `np.random.seed(1000)` as a GMM notebook does, with that notebook's EM starting values and
  VB priors.

A CSV holds numeric columns, one point per row, with an optional header; a header column
named `label` (any case) holds true component labels and is not a coordinate. The header's other
names become the `dim` coordinate of everything downstream (tables, figures, posterior.nc); without
a header, and for the named datasets, the coordinates are 0..D-1. A first line of numbers only is
data, one of names only is the header, a mixed one is refused; the caller may decide instead
(`read_csv(path, header=True)` for numeric names such as years), and the dataset says which was
used (`Dataset.header`).
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from em_reference import MixtureParameters, seed7907
from em_reference.variational import SEED1000_PRIORS

LABEL_COLUMN = "label"


class HeaderUse(NamedTuple):
    """How a CSV's first line was read: as the header or as data, and whether detected or asked."""

    used: bool
    detected: bool

    def describe(self) -> str:
        """The reading in words, for the dataset's description (and so the report's heading)."""
        if self.detected:
            return (
                "first line read as the header (every field a name)"
                if self.used
                else "no header (every field of the first line a number)"
            )
        return "first line read as the header, as asked" if self.used else "no header, as asked"

    def as_dict(self) -> dict[str, bool]:
        """Plain values for em.json and comparison.json's dataset block."""
        return {"used": self.used, "detected": self.detected}


@dataclass(frozen=True)
class Dataset:
    """Points X (n, D), true labels (n,) when known, and the known parameters of its source.

    `names` (D,) are the coordinates' names (a CSV's header), or None for unnamed coordinates,
    which are numbered 0..D-1.
    """

    name: str
    X: np.ndarray
    labels: np.ndarray | None
    description: str
    true: MixtureParameters | None = None
    initial: MixtureParameters | None = None
    published: MixtureParameters | None = None
    published_accuracy: float | None = None
    names: tuple[str, ...] | None = None
    vb_priors: Mapping[str, Any] | None = None
    """The source's own VB priors (scikit-learn's names), used instead of the defaults."""
    header: HeaderUse | None = None
    """How a CSV's first line was read (None for a named dataset)."""

    def __post_init__(self) -> None:
        """ValueError unless names, when given, are D valid and distinct names."""
        if self.names is not None:
            object.__setattr__(self, "names", check_names(self.names, self.n_features))

    @property
    def dim_coords(self) -> list[str] | list[int]:
        """The `dim` coordinate (D,): the names, or 0..D-1 when the coordinates are unnamed."""
        return list(self.names) if self.names is not None else list(range(self.n_features))

    @property
    def n_points(self) -> int:
        """The number of points n."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """The dimension D of each point."""
        return int(self.X.shape[1])

    @property
    def default_components(self) -> int:
        """K to fit when the user gives none: the true K when known, else 3 (capped at n)."""
        if self.true is not None:
            return self.true.n_components
        if self.labels is not None:
            return int(np.unique(self.labels).size)
        return min(3, self.n_points)


# ---------------------------------------------------------------------------------------------
# Named datasets


def load_seed7907() -> Dataset:
    """The seed program's 500 points, its true mixture, initial values and published table."""
    X, labels = seed7907.load()
    return Dataset(
        name="seed7907",
        X=X,
        labels=labels,
        description="500 bivariate points from the seed program's LCG (seed 7907), 3 components",
        true=seed7907.TRUE,
        initial=seed7907.INITIAL,
        published=seed7907.PUBLISHED,
        published_accuracy=seed7907.PUBLISHED_ACCURACY,
    )


SEED42_MEANS = ((0.0, 0.0), (5.0, 5.0), (5.0, 0.0))
SEED42_PER_COMPONENT = 100


def load_seed42() -> Dataset:
    """Three unit-covariance blobs of 100 points, NumPy's legacy generator after seed(42)."""
    state = np.random.RandomState(42)  # the legacy global generator's algorithm and stream
    blocks = [
        state.multivariate_normal(mean, np.eye(2), SEED42_PER_COMPONENT) for mean in SEED42_MEANS
    ]
    n_components = len(SEED42_MEANS)
    true = MixtureParameters(
        weights=np.full(n_components, 1.0 / n_components),
        means=SEED42_MEANS,
        covariances=np.stack([np.eye(2)] * n_components),
    )
    return Dataset(
        name="seed42",
        X=np.vstack(blocks),
        labels=np.repeat(np.arange(n_components), SEED42_PER_COMPONENT),
        description="300 points, 100 from each of three unit-covariance blobs (NumPy seed 42)",
        true=true,
    )


SEED1000_TRUE = MixtureParameters(
    weights=[0.15, 0.35, 0.5],
    means=[[-3.0, 2.0], [4.0, 2.0], [3.0, 1.0]],
    covariances=[[[1.0, 0.2], [0.2, 2.0]], [[0.8, -1.0], [-1.0, 1.3]], [[1.5, 1.4], [1.4, 1.5]]],
)
SEED1000_INITIAL = MixtureParameters(
    weights=[0.4, 0.3, 0.3],
    means=[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]],
    covariances=[[[1.0, 0.5], [0.5, 1.0]]] * 3,
)
SEED1000_POINTS = 1000


def load_seed1000() -> Dataset:
    """1000 points drawn one at a time as the notebook does, after NumPy's legacy seed(1000)."""
    state = np.random.RandomState(1000)
    choices = state.uniform(0, 1, size=SEED1000_POINTS)
    w = SEED1000_TRUE.weights
    # The notebook's thresholds, summed as it sums them: u < w0 -> 0, u < w0 + w1 -> 1, else 2.
    labels = np.where(choices < w[0], 0, np.where(choices < w[0] + w[1], 1, 2))
    X = np.vstack(
        [
            state.multivariate_normal(SEED1000_TRUE.means[k], SEED1000_TRUE.covariances[k], size=1)
            for k in labels
        ]
    )
    return Dataset(
        name="seed1000",
        X=X,
        labels=labels.astype(np.int64),
        description="1000 bivariate points, weights 0.15 / 0.35 / 0.5 (NumPy seed 1000)",
        true=SEED1000_TRUE,
        initial=SEED1000_INITIAL,
        vb_priors=SEED1000_PRIORS,
    )


DATASETS: dict[str, Callable[[], Dataset]] = {
    "seed7907": load_seed7907,
    "seed42": load_seed42,
    "seed1000": load_seed1000,
}


def folded_name(name: str) -> str:
    """A dataset's name as names are compared: lower case, without '-' and '_'."""
    return name.lower().replace("-", "").replace("_", "")


def load_dataset(name: str) -> Dataset:
    """The named dataset; 'seed-7907', 'Seed_7907' and 'seed7907' are the same name."""
    key = folded_name(name)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key]()


# ---------------------------------------------------------------------------------------------
# CSV


MAX_DATA_BYTES = 2**28
"""The largest CSV read, 256 MiB: parsing holds every field as a Python string in lists, about
11 times the text at its peak (measured on a 3-column file of random floats), so about 3 GB at
the cap, which a machine with 8 GB of memory still holds beside the run."""
READ_CHUNK = 2**20
"""Bytes read at a time: an interrupt is handled between chunks, and the cap checked."""


def read_csv(path: str | Path, header: bool | None = None) -> Dataset:
    """Read a CSV of numeric columns (optional header; a `label` column holds true labels).

    `header` None reads a first line of names only as the header and one of numbers only as
    data (a mixed line is a ValueError naming the field); True or False decides instead.
    """
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header must be None, True or False, got {header!r}")
    path = Path(path)
    text = _read_text(path)
    rows = [
        (number, row)
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if row and not (len(row) == 1 and not row[0].strip())
    ]
    names_row, rows, use = _split_header(path, rows, header)
    if not rows:
        raise ValueError(f"data file {str(path)!r} has no data rows")
    values = _parse_rows(path, rows, names_row)
    label_index = _label_index(path, names_row)
    X = np.delete(values, label_index, axis=1) if label_index is not None else values
    if X.shape[1] < 1:
        raise ValueError(f"data file {str(path)!r} has no coordinate columns")
    labels = None if label_index is None else _as_labels(path, values[:, label_index])
    names = None
    if names_row is not None:
        names = tuple(name for i, name in enumerate(names_row) if i != label_index)
        _check_header(path, names_row, label_index)
    return Dataset(
        name=path.stem,
        X=X,
        labels=labels,
        description=f"{X.shape[0]} points in {X.shape[1]} dimensions from {path.name}; "
        f"{use.describe()}",
        names=names,
        header=use,
    )


def _read_text(path: Path) -> str:
    """A regular file's text, read in chunks up to MAX_DATA_BYTES; ValueError naming the path.

    Anything else (a FIFO, a device such as /dev/zero, a socket, a folder) is refused before a
    byte is read: it may never end. Opened non-blocking, so a FIFO without a writer is refused
    at once instead of waiting.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ValueError(f"data file {str(path)!r} does not exist") from None
    except OSError as error:  # a socket cannot be opened (ENXIO); permissions, ...
        raise ValueError(f"data file {str(path)!r} cannot be read: {error.strerror}") from None
    try:
        kind = _file_kind(os.fstat(fd).st_mode)
        if kind:
            raise ValueError(
                f"data file {str(path)!r} is {kind}, not a regular file: give a CSV file"
            )
        data = _read_capped(path, fd)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"data file {str(path)!r} is not a text CSV file") from None


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words ('' for a regular file)."""
    if stat.S_ISREG(mode):
        return ""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((text for test, text in kinds if test(mode)), "a special file")


def _read_capped(path: Path, fd: int) -> bytes:
    """The file's bytes, read READ_CHUNK at a time; ValueError beyond MAX_DATA_BYTES.

    The cap counts the bytes read, not the size at the start, so a file that keeps growing
    stops there too.
    """
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, READ_CHUNK):
        total += len(chunk)
        if total > MAX_DATA_BYTES:
            raise ValueError(
                f"data file {str(path)!r} is larger than {MAX_DATA_BYTES / 2**20:g} MiB "
                f"({MAX_DATA_BYTES} bytes), the most gmm-compare reads: fit a sample of its rows"
            )
        chunks.append(chunk)
    return b"".join(chunks)


FORBIDDEN_IN_NAMES = ",[]"
"""Characters a coordinate's name may not hold: they would make labels like `means[0, x]`
ambiguous."""


def check_names(names: Any, n_features: int) -> tuple[str, ...]:
    """The coordinates' names (D,) as a tuple of str; ValueError naming a bad or repeated one."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"names must be a sequence of {n_features} strings, got {names!r}")
    names = tuple(names)
    if len(names) != n_features:
        raise ValueError(f"names must hold {n_features} names, one per column, got {len(names)}")
    for j, name in enumerate(names):
        problem = _name_problem(name)
        if problem:
            raise ValueError(f"names[{j}] = {name!r} {problem}")
        if name in names[:j]:
            raise ValueError(f"names[{j}] = {name!r} repeats names[{names.index(name)}]")
    return names


def _name_problem(name: Any) -> str:
    """Why a coordinate's name is not usable ('' when it is)."""
    if not isinstance(name, str):
        return "is not a string"
    if not name.strip():
        return "is empty"
    if name != name.strip() or any(not c.isprintable() for c in name):
        return "has leading or trailing spaces or unprintable characters"
    if any(c in FORBIDDEN_IN_NAMES for c in name):
        return f"holds one of {' '.join(FORBIDDEN_IN_NAMES)}, which parameter labels use"
    if name.lower() == LABEL_COLUMN:
        return f"is the name of the labels' column, {LABEL_COLUMN!r}"
    return ""


def _check_header(path: Path, header: list[str], label_index: int | None) -> None:
    """ValueError naming the column (1-based) whose header name is empty, unusable or repeated."""
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        if j == label_index:
            continue
        column = f"data file {str(path)!r}: column {j + 1} of the header"
        problem = _name_problem(name)
        if problem:
            raise ValueError(f"{column}, {name!r}, {problem}: rename the column")
        if name in seen:
            raise ValueError(
                f"{column} repeats the name {name!r} of column {seen[name] + 1}: "
                "every coordinate needs its own name"
            )
        seen[name] = j


def _split_header(
    path: Path, rows: list[tuple[int, list[str]]], header: bool | None
) -> tuple[list[str] | None, list, HeaderUse]:
    """The header's names (None without one), the data rows and how the first line was read."""
    if not rows:
        return None, rows, HeaderUse(used=bool(header), detected=header is None)
    line, first = rows[0]
    if header is None:
        use = HeaderUse(used=_looks_like_header(path, line, first), detected=True)
    else:
        use = HeaderUse(used=header, detected=False)
    if not use.used:
        return None, rows, use
    return [field.strip() for field in first], rows[1:], use


def _looks_like_header(path: Path, line: int, fields: list[str]) -> bool:
    """True for a line of names only, False for numbers only; ValueError naming a mixed field."""
    numeric = [_is_number(field) for field in fields]
    if all(numeric) or not any(numeric):
        return not any(numeric)
    name = numeric.index(False)
    number = numeric.index(True)
    raise ValueError(
        f"data file {str(path)!r}: line {line} mixes numbers and names: column {name + 1}, "
        f"{fields[name].strip()!r}, is not a number but column {number + 1}, "
        f"{fields[number].strip()!r}, is; say whether it is a header (--header, or "
        "header=True in Python) or data (--no-header, header=False)"
    )


def _is_number(field: str) -> bool:
    """True when the field parses as a float (including nan and inf, rejected later)."""
    try:
        float(field)
    except ValueError:
        return False
    return True


def _parse_rows(
    path: Path, rows: list[tuple[int, list[str]]], header: list[str] | None
) -> np.ndarray:
    """The rows as a float array (n, columns); ValueError naming the first bad line or field."""
    width = len(header) if header is not None else len(rows[0][1])
    values = np.empty((len(rows), width))
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"data file {str(path)!r}: line {line} has {len(row)} columns, expected {width}"
            )
        for j, field in enumerate(row):
            try:
                values[i, j] = float(field)
            except ValueError:
                raise ValueError(
                    f"data file {str(path)!r}: line {line}, column {j + 1}: "
                    f"{field.strip()!r} is not a number"
                ) from None
        if not np.all(np.isfinite(values[i])):
            raise ValueError(f"data file {str(path)!r}: line {line} has a NaN or infinite value")
    return values


def _label_index(path: Path, header: list[str] | None) -> int | None:
    """The position of the `label` column in the header, if there is one (ValueError if two)."""
    if header is None:
        return None
    found = [i for i, name in enumerate(header) if name.lower() == LABEL_COLUMN]
    if len(found) > 1:
        names = " and ".join(repr(header[i]) for i in found)
        raise ValueError(
            f"data file {str(path)!r} has {len(found)} label columns ({names}): a column named "
            f"{LABEL_COLUMN!r} in any case holds the labels, so rename the others"
        )
    return found[0] if found else None


MAX_LABEL = 2**53
"""Whole numbers up to this size are exact in float64; larger labels could merge classes."""


def _as_labels(path: Path, column: np.ndarray) -> np.ndarray:
    """Integer labels (n,) renumbered 0, 1, ... in sorted order of the values in the column."""
    if not np.all(column == np.round(column)):
        raise ValueError(f"data file {str(path)!r}: the label column must hold whole numbers")
    if np.max(np.abs(column)) >= MAX_LABEL:
        raise ValueError(
            f"data file {str(path)!r}: label values must be whole numbers smaller than 2**53 "
            f"in size, got {np.max(np.abs(column)):.6g}; larger ones can merge in float64, so "
            "renumber the labels (0, 1, 2, ...)"
        )
    _, labels = np.unique(column, return_inverse=True)
    return labels.astype(np.int64)


def to_csv(dataset: Dataset) -> str:
    """The dataset as CSV text: header `label,NAME,...` (no label column when labels are unknown).

    The names are the dataset's, or x1, ..., xD for unnamed coordinates.
    """
    names = dataset.names or [f"x{j + 1}" for j in range(dataset.n_features)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if dataset.labels is None:
        writer.writerow(names)
        writer.writerows([[repr(float(v)) for v in row] for row in dataset.X])
    else:
        writer.writerow([LABEL_COLUMN, *names])
        for label, row in zip(dataset.labels, dataset.X, strict=True):
            writer.writerow([int(label), *(repr(float(v)) for v in row)])
    return out.getvalue()


CSV_LINE_LIMIT = 1 << 20
"""Characters a line of a file `data` may replace can hold: longer lines are not ours."""


def written_by_data(path: Path) -> bool:
    """Whether path holds a CSV of the form `data` writes, so that `data --out` may replace it.

    That is: UTF-8 text in lines ending with a newline, a first line of names, then at least
    one line with as many fields, every field a number (an integer under a `label` header).
    Read a line at a time, each at most CSV_LINE_LIMIT characters.
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            first = handle.readline(CSV_LINE_LIMIT + 1)
            header = next(csv.reader([first]), []) if first.endswith("\n") else []
            kinds = [int if name == LABEL_COLUMN else float for name in header]
            rows = 0
            while line := handle.readline(CSV_LINE_LIMIT + 1):
                fields = line.removesuffix("\n").split(",")
                if not line.endswith("\n") or len(fields) != len(kinds):
                    return False
                for kind, field in zip(kinds, fields, strict=True):
                    kind(field)
                rows += 1
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return bool(header) and rows > 0
