"""Named datasets and reading and writing a user's CSV."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.datasets import Dataset, load_dataset, read_csv, to_csv
from em_reference import GaussianMixtureEM, seed7907


def test_seed7907_is_the_seed_programs_data_and_constants(seed_data):
    dataset = load_dataset("seed-7907")
    X, labels = seed_data
    assert dataset.name == "seed7907"
    assert np.array_equal(dataset.X, X)
    assert np.array_equal(dataset.labels, labels)
    assert dataset.true is seed7907.TRUE
    assert dataset.initial is seed7907.INITIAL
    assert dataset.published is seed7907.PUBLISHED
    assert dataset.published_accuracy == seed7907.PUBLISHED_ACCURACY
    assert dataset.default_components == 3


def test_seed42_is_numpys_legacy_stream_stacked_by_component():
    dataset = load_dataset("seed42")
    assert dataset.X.shape == (300, 2)
    # np.random.seed(42); np.random.randn(2) is the well-known (0.4967..., -0.1383...).
    assert dataset.X[0] == pytest.approx([0.4967141530112327, -0.13826430117118466], abs=1e-15)
    assert np.array_equal(np.bincount(dataset.labels), [100, 100, 100])
    assert np.all(np.diff(dataset.labels) >= 0)
    means = [dataset.X[dataset.labels == k].mean(axis=0) for k in range(3)]
    assert np.allclose(means, dataset.true.means, atol=0.3)


def test_seed1000_reproduces_the_notebooks_printed_em_estimates():
    dataset = load_dataset("seed1000")
    assert dataset.X.shape == (1000, 2)
    # The notebook runs 50 plain EM iterations (no regularisation) from its initial values and
    # prints these estimates (components in the order 0, 2, 1 of the truth).
    fit = GaussianMixtureEM(3, init=dataset.initial, max_iter=50, tol=0.0, reg_covar=0.0)
    fit.fit(dataset.X)
    assert fit.weights_ == pytest.approx([0.18002701, 0.48102331, 0.33894968], abs=1e-7)
    assert fit.means_[0] == pytest.approx([-3.09167579, 1.78903996], abs=1e-7)
    assert fit.covariances_[2, 0] == pytest.approx([0.81293522, -1.00445293], abs=1e-7)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown dataset 'iris'.*seed7907"):
        load_dataset("iris")


def test_csv_round_trip_keeps_points_and_labels(tmp_path):
    dataset = load_dataset("seed7907")
    path = tmp_path / "points.csv"
    path.write_text(to_csv(dataset))
    back = read_csv(path)
    assert back.name == "points"
    assert np.array_equal(back.X, dataset.X)  # repr of a float round-trips exactly
    assert np.array_equal(back.labels, dataset.labels)
    assert path.read_text().splitlines()[0] == "label,x1,x2"


def test_csv_without_header_or_labels(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("1,2,3\n4,5,6.5\n\n7,8,9\n")
    dataset = read_csv(path)
    assert dataset.X.tolist() == [[1, 2, 3], [4, 5, 6.5], [7, 8, 9]]
    assert dataset.labels is None
    assert dataset.true is None
    assert dataset.default_components == 3


def test_csv_header_without_label_column_is_all_coordinates(tmp_path):
    path = tmp_path / "named.csv"
    path.write_text("height, weight\n1.5,60\n1.8,80\n")
    dataset = read_csv(path)
    assert dataset.X.shape == (2, 2)
    assert dataset.labels is None


def test_csv_label_column_anywhere_is_renumbered(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("x,Label,y\n0.5,7,1\n0.1,3,2\n0.2,7,3\n")
    dataset = read_csv(path)
    assert dataset.X.tolist() == [[0.5, 1], [0.1, 2], [0.2, 3]]
    assert dataset.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2\n3\n", "line 2 has 1 columns, expected 2"),
        ("a,b\n1,2\n3,x\n", r"line 3, column 2: 'x' is not a number"),
        ("1,2\nnan,3\n", "line 2 has a NaN or infinite value"),
        ("1,2\n3,-inf\n", "line 2 has a NaN or infinite value"),
        ("a,b\n", "has no data rows"),
        ("", "has no data rows"),
        ("label\n1\n2\n", "has no coordinate columns"),
        ("label,x\n0.5,1\n1,2\n", "label column must hold whole numbers"),
    ],
)
def test_bad_csv_is_a_value_error_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_csv(path)


def test_missing_file_and_folder_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_csv(tmp_path / "nothing.csv")
    with pytest.raises(ValueError, match="is a folder"):
        read_csv(tmp_path)


def test_binary_file_is_a_value_error(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError, match="not a text CSV"):
        read_csv(path)


def test_labels_are_kept_apart_exactly_or_refused(tmp_path):
    # Before: 1e19 and 2e19 both became int64's minimum, one class; now refused, while large
    # labels that float64 holds exactly stay distinct.
    path = tmp_path / "big.csv"
    path.write_text("label,x\n1e19,0.5\n2e19,1.5\n")
    with pytest.raises(ValueError, match=r"smaller than 2\*\*53"):
        read_csv(path)
    path.write_text(f"label,x\n{2**52},0.5\n{2**52 + 1},1.5\n{2**52},2.5\n")
    assert read_csv(path).labels.tolist() == [0, 1, 0]


def test_a_second_label_column_in_another_case_is_refused(tmp_path):
    # Before: the column named 'Label' silently became a coordinate.
    path = tmp_path / "two.csv"
    path.write_text("Label,x,label\n0,0.5,1\n1,1.5,0\n")
    with pytest.raises(ValueError, match=r"2 label columns \('Label' and 'label'\)"):
        read_csv(path)


def test_a_csv_header_names_the_coordinates_and_survives_a_round_trip(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("petal length,Label,petal_width\n1.4,0,0.2\n4.7,1,1.4\n5.1,1,1.9\n")
    dataset = read_csv(path)
    assert dataset.names == ("petal length", "petal_width")
    assert dataset.dim_coords == ["petal length", "petal_width"]
    again = tmp_path / "again.csv"
    again.write_text(to_csv(dataset))
    assert again.read_text().splitlines()[0] == "label,petal length,petal_width"
    assert read_csv(again).names == dataset.names


def test_unnamed_coordinates_are_numbered():
    dataset = load_dataset("seed7907")
    assert dataset.names is None
    assert dataset.dim_coords == [0, 1]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("a,b,a", r"column 3 of the header repeats the name 'a' of column 1"),
        ("a,,c", r"column 2 of the header, '', is empty"),
        ('a,"b,c",d', r"column 2 of the header, 'b,c', holds one of , \[ \]"),
        ("label,x,x", r"column 3 of the header repeats the name 'x' of column 2"),
    ],
)
def test_empty_repeated_or_unusable_header_names_are_refused(tmp_path, header, message):
    path = tmp_path / "names.csv"
    path.write_text(f"{header}\n0,1,2\n1,2,3\n")
    with pytest.raises(ValueError, match=message):
        read_csv(path)


def test_names_given_in_python_are_checked():
    X = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"names\[1\] = 'x' repeats names\[0\]"):
        Dataset("d", X, None, "two points", names=("x", "x"))
    with pytest.raises(ValueError, match="must hold 2 names, one per column, got 3"):
        Dataset("d", X, None, "two points", names=("x", "y", "z"))
    with pytest.raises(TypeError, match="names must be a sequence of 2 strings"):
        Dataset("d", X, None, "two points", names="xy")
    with pytest.raises(ValueError, match=r"names\[0\] = 'Label' is the name of the labels'"):
        Dataset("d", X, None, "two points", names=("Label", "y"))
