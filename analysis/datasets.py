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
a header, and for the named datasets, the coordinates are 0..D-1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from em_reference import MixtureParameters, seed7907
from em_reference.variational import SEED1000_PRIORS

LABEL_COLUMN = "label"


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


def load_dataset(name: str) -> Dataset:
    """The named dataset; 'seed-7907' and 'seed7907' are the same name."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key]()


# ---------------------------------------------------------------------------------------------
# CSV


def read_csv(path: str | Path) -> Dataset:
    """Read a CSV of numeric columns (optional header; a `label` column holds true labels)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"data file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"data file {str(path)!r} is a folder, not a CSV file") from None
    except UnicodeDecodeError:
        raise ValueError(f"data file {str(path)!r} is not a text CSV file") from None
    rows = [
        (number, row)
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1)
        if row and not (len(row) == 1 and not row[0].strip())
    ]
    header, rows = _split_header(rows)
    if not rows:
        raise ValueError(f"data file {str(path)!r} has no data rows")
    values = _parse_rows(path, rows, header)
    label_index = _label_index(path, header)
    X = np.delete(values, label_index, axis=1) if label_index is not None else values
    if X.shape[1] < 1:
        raise ValueError(f"data file {str(path)!r} has no coordinate columns")
    labels = None if label_index is None else _as_labels(path, values[:, label_index])
    names = None
    if header is not None:
        names = tuple(name for i, name in enumerate(header) if i != label_index)
        _check_header(path, header, label_index)
    return Dataset(
        name=path.stem,
        X=X,
        labels=labels,
        description=f"{X.shape[0]} points in {X.shape[1]} dimensions from {path.name}",
        names=names,
    )


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


def _split_header(rows: list[tuple[int, list[str]]]) -> tuple[list[str] | None, list]:
    """The header's names (or None when the first row is numeric) and the remaining rows."""
    if not rows:
        return None, rows
    first = rows[0][1]
    if all(_is_number(field) for field in first):
        return None, rows
    return [field.strip() for field in first], rows[1:]


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
