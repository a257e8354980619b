"""Tests for ci_ml.data: the seeded, stratified, duplicate-aware split; task inference; every
way a data file can be unusable; the holdout file; the data version."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ci_ml.config import DataConfig, HoldoutConfig
from ci_ml.data import (
    Dataset,
    data_version,
    dvc_pull,
    find_dvc_file,
    infer_task,
    load_dataset,
    read_table,
)
from ci_ml.data import _prepared as prepared
from ci_ml.errors import DataError
from ci_ml.project import open_project
from tests.conftest import make_example_repo


def labelled_frame(n: int = 1000, positive_share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Numeric and categorical features with a rare 'yes' class."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50, 10, n).round(3),
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["north", "south", "east"], n),
            "label": np.where(rng.random(n) < positive_share, "yes", "no"),
        }
    )


def save(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def feature_rows(frame: pd.DataFrame) -> set[tuple[object, ...]]:
    return set(frame[["income", "age", "city"]].itertuples(index=False, name=None))


def load(tmp_path: Path, frame: pd.DataFrame, **options: Any) -> Dataset:
    save(frame, tmp_path / "data.csv")
    return load_dataset(tmp_path, DataConfig(path="data.csv", target="label", **options))


# --- the split -----------------------------------------------------------------------


def test_same_seed_gives_the_same_rows(tmp_path: Path) -> None:
    first = load(tmp_path, labelled_frame())
    second = load(tmp_path, labelled_frame())
    pd.testing.assert_frame_equal(first.train, second.train)
    pd.testing.assert_frame_equal(first.holdout, second.holdout)


def test_every_row_lands_on_exactly_one_side(tmp_path: Path) -> None:
    frame = labelled_frame()
    dataset = load(tmp_path, frame)
    assert len(dataset.train) + len(dataset.holdout) == len(frame)
    assert len(dataset.holdout) == pytest.approx(0.2 * len(frame), abs=2)
    assert feature_rows(dataset.train) | feature_rows(dataset.holdout) == feature_rows(frame)


def test_the_seed_changes_the_holdout(tmp_path: Path) -> None:
    frame = labelled_frame()
    one = load(tmp_path, frame, holdout=HoldoutConfig(seed=1))
    two = load(tmp_path, frame, holdout=HoldoutConfig(seed=2))
    shared = feature_rows(one.holdout) & feature_rows(two.holdout)
    # independent 20% samples share about 20% of their rows, not all of them
    assert len(shared) < 0.5 * len(one.holdout)


def test_the_fraction_is_respected(tmp_path: Path) -> None:
    frame = labelled_frame()
    dataset = load(tmp_path, frame, holdout=HoldoutConfig(fraction=0.35))
    assert len(dataset.holdout) == pytest.approx(0.35 * len(frame), abs=2)


@pytest.mark.parametrize("seed", range(10))
def test_the_split_is_stratified(tmp_path: Path, seed: int) -> None:
    # 10% positives: a plain random 20% holdout of 1000 rows misses that share by more
    # than 2 points in about a third of the seeds
    frame = labelled_frame(positive_share=0.1, seed=seed)
    dataset = load(tmp_path, frame, holdout=HoldoutConfig(seed=seed))
    overall = (frame["label"] == "yes").mean()
    assert abs((dataset.holdout["label"] == "yes").mean() - overall) < 0.02
    assert abs((dataset.train["label"] == "yes").mean() - overall) < 0.02


def test_identical_feature_rows_stay_on_one_side(tmp_path: Path) -> None:
    frame = labelled_frame(n=600)
    rng = np.random.default_rng(7)
    copies = frame.iloc[rng.choice(len(frame), 150, replace=False)].copy()
    # some copies disagree on the label: still the same features, so still one side
    copies.loc[copies.index[:30], "label"] = np.where(
        copies["label"].iloc[:30] == "yes", "no", "yes"
    )
    with_duplicates = pd.concat([frame, copies, copies.head(20)], ignore_index=True)
    assert with_duplicates.duplicated(["income", "age", "city"]).sum() == 170
    for seed in range(5):
        dataset = load(tmp_path, with_duplicates, holdout=HoldoutConfig(seed=seed))
        assert feature_rows(dataset.train) & feature_rows(dataset.holdout) == set()
        assert len(dataset.train) + len(dataset.holdout) == len(with_duplicates)


def test_rows_keep_their_side_when_rows_are_added(tmp_path: Path) -> None:
    # the production model trained on the old training rows; a new data version must not
    # move them into the holdout both models are compared on
    frame = labelled_frame(n=1000, seed=1)
    old = load(tmp_path, frame)
    grown = load(tmp_path, pd.concat([frame, labelled_frame(n=60, seed=2)], ignore_index=True))
    leaked = feature_rows(old.train) & feature_rows(grown.holdout)
    assert len(leaked) <= 0.05 * len(old.holdout)  # a reshuffle would move about 80%
    assert len(feature_rows(old.holdout) & feature_rows(grown.holdout)) >= 0.9 * len(old.holdout)


def test_regression_split_is_seeded_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=300), "label": rng.normal(100, 20, 300)})
    first = load(tmp_path, frame)
    second = load(tmp_path, frame)
    assert first.task == "regression"
    assert first.positive_class is None
    pd.testing.assert_frame_equal(first.holdout, second.holdout)
    assert len(first.holdout) == pytest.approx(60, abs=1)


# --- task, target, features ----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["good", "bad", "good"], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([0.0, 1.0, 1.0, np.nan], "classification"),
        ([True, False, True], "classification"),
        ([1.5, 2.25, 3.0], "regression"),
        (list(range(50)), "regression"),
    ],
)
def test_task_inference(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values)) == task


def test_features_exclude_target_and_dropped_columns(tmp_path: Path) -> None:
    dataset = load(tmp_path, labelled_frame(n=200), drop=["age"])
    assert dataset.features == ["income", "city"]
    assert "age" not in dataset.x("train").columns  # the model never sees it
    assert "age" in dataset.train.columns  # the data gates check the file as it is
    assert dataset.task == "classification"
    assert dataset.positive_class == "yes"  # the rarer class by default


def test_positive_class_from_the_config(tmp_path: Path) -> None:
    dataset = load(tmp_path, labelled_frame(n=200), positive_class="no")
    assert dataset.positive_class == "no"


def test_numeric_positive_class_matches_integer_labels(tmp_path: Path) -> None:
    frame = labelled_frame(n=200).assign(label=lambda f: (f["label"] == "yes").astype(int))
    dataset = load(tmp_path, frame, positive_class="1")
    assert dataset.positive_class == 1


def test_unknown_positive_class_lists_the_labels(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load(tmp_path, labelled_frame(n=200), positive_class="maybe")
    message = str(info.value)
    assert "data.positive_class 'maybe'" in message
    assert "'no'" in message and "'yes'" in message


def test_missing_target_lists_the_columns(tmp_path: Path) -> None:
    save(labelled_frame(n=50), tmp_path / "data.csv")
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path, DataConfig(path="data.csv", target="Label"))
    message = str(info.value)
    assert "target column 'Label' not found" in message
    assert "income, age, city, label" in message
    assert "data.target" in message


def test_an_all_empty_column_is_named(tmp_path: Path) -> None:
    frame = labelled_frame(n=50).assign(notes=np.nan)
    with pytest.raises(DataError, match=r"column\(s\) notes have no values at all"):
        load(tmp_path, frame)


def test_dropping_the_empty_column_fixes_it(tmp_path: Path) -> None:
    frame = labelled_frame(n=50).assign(notes=np.nan)
    assert "notes" not in load(tmp_path, frame, drop=["notes"]).features


def test_drop_of_an_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.drop .*\['nope'\]"):
        load(tmp_path, labelled_frame(n=50), drop=["nope"])


def test_a_single_class_target(tmp_path: Path) -> None:
    frame = labelled_frame(n=50).assign(label="no")
    with pytest.raises(DataError, match=r"'label' has a single class \('no'\)"):
        load(tmp_path, frame)


def test_three_classes_are_every_class_in_sorted_order(tmp_path: Path) -> None:
    frame = labelled_frame(n=90)
    frame["label"] = ["c", "a", "b"] * 30
    dataset = load(tmp_path, frame)
    assert dataset.multiclass and dataset.classes == ("a", "b", "c")
    assert dataset.positive_class is None
    assert sorted(dataset.y("holdout").value_counts().tolist()) == [6, 6, 6]  # stratified


def test_integer_classes_keep_their_numeric_order(tmp_path: Path) -> None:
    frame = labelled_frame(n=90)
    frame["label"] = [10, 2, 1] * 30
    assert load(tmp_path, frame).classes == ("1", "2", "10")


# --- unreadable files ----------------------------------------------------------------


def test_an_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv is empty; it needs a header row"):
        read_table(path)


def test_a_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("income,age,city,label\n")
    with pytest.raises(DataError, match=r"header\.csv has a header but no data rows"):
        read_table(path)


def test_gzip_bytes_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "packed.csv"
    path.write_bytes(gzip.compress(labelled_frame(n=100).to_csv(index=False).encode()))
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a readable CSV file (")
    assert "\n" not in message


def test_not_parquet_named_parquet(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    path.write_text("income,label\n1,yes\n")
    with pytest.raises(DataError, match=r"table\.parquet is not a readable Parquet file"):
        read_table(path)


def test_an_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as info:
        read_table(path)
    assert str(info.value) == (
        f"{path}: unsupported file type '.xlsx'; use one of .csv, .parquet, .pq."
    )


def test_a_missing_file_says_to_pull(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; run 'ci-ml pull'"):
        read_table(tmp_path / "nowhere.csv")


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    frame = labelled_frame(n=100)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    from_parquet = load_dataset(tmp_path, DataConfig(path="data.parquet", target="label"))
    from_csv = load(tmp_path, frame)
    pd.testing.assert_frame_equal(from_parquet.holdout, from_csv.holdout)


# --- columns that cannot be used as they are ---------------------------------------


def test_a_repeated_csv_column_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("Income,age,Income,label\n10,30,11,no\n20,40,21,yes\n")
    with pytest.raises(DataError) as info:
        read_table(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the column name 'Income' appears 2 times")
    assert "(columns 1, 3)" in message and "'Income.1'" in message
    assert "rename or remove" in message


def test_a_column_really_named_like_a_pandas_rename_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("Income,Income.1,label\n10,11,no\n20,21,yes\n")
    assert list(read_table(path).columns) == ["Income", "Income.1", "label"]


def test_a_repeated_parquet_column_name_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    columns = [pa.array([1, 2]), pa.array([3, 4]), pa.array(["no", "yes"])]
    pq.write_table(pa.table(columns, names=["Income", "Income", "label"]), path)
    with pytest.raises(DataError, match=r"the column name 'Income' appears 2 times"):
        read_table(path)


def test_text_mixed_with_numbers_is_named(tmp_path: Path) -> None:
    # what pandas' chunked CSV reading gives (read_table types whole columns instead)
    table = labelled_frame(n=50).astype({"income": object})
    table.loc[7, "income"] = "n/a"
    with pytest.raises(DataError) as info:
        prepared(table, DataConfig(path="data.csv", target="label"), tmp_path / "data.csv")
    message = str(info.value)
    assert "column 'income' mixes text and other values" in message
    assert "'n/a' (str)" in message and "(float)" in message and "all numbers" in message


def test_a_large_csv_is_typed_a_whole_column_at_a_time(tmp_path: Path) -> None:
    # pandas' chunked reading would type the first rows as numbers and the rest as text
    rows = 300_000
    frame = pd.DataFrame(
        {"code": np.arange(rows).astype(object), "label": ["no", "yes"] * (rows // 2)}
    )
    frame.loc[rows - 3, "code"] = "X9"
    save(frame, tmp_path / "data.csv")
    read = read_table(tmp_path / "data.csv")
    assert pd.api.types.infer_dtype(read["code"], skipna=True) == "string"


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_an_infinite_feature_is_named(tmp_path: Path, value: float) -> None:
    frame = labelled_frame(n=50)
    frame.loc[[4, 9], "income"] = value
    with pytest.raises(DataError) as info:
        load(tmp_path, frame)
    message = str(info.value)
    assert "column 'income' has 2 infinite value(s)" in message
    assert "data row 5" in message
    assert "model.params" not in message


def test_a_dropped_column_is_not_checked_as_a_feature(tmp_path: Path) -> None:
    frame = labelled_frame(n=50).assign(score=1.5)
    frame.loc[4, "score"] = np.inf
    dataset = load(tmp_path, frame, drop=["score"])
    assert "score" not in dataset.features


# --- explicit holdout file -----------------------------------------------------------


def test_holdout_file_is_used_as_is(tmp_path: Path) -> None:
    train, holdout = labelled_frame(n=300, seed=1), labelled_frame(n=80, seed=2)
    save(train, tmp_path / "data" / "train.csv")
    save(holdout, tmp_path / "data" / "holdout.csv")
    config = DataConfig(
        path="data/train.csv", target="label", holdout=HoldoutConfig(file="data/holdout.csv")
    )
    dataset = load_dataset(tmp_path, config)
    assert len(dataset.train) == 300
    assert len(dataset.holdout) == 80
    assert feature_rows(dataset.holdout) == feature_rows(holdout)


def test_holdout_file_missing_a_column(tmp_path: Path) -> None:
    save(labelled_frame(n=100), tmp_path / "train.csv")
    save(labelled_frame(n=30).drop(columns=["city"]), tmp_path / "holdout.csv")
    config = DataConfig(path="train.csv", target="label", holdout=HoldoutConfig(file="holdout.csv"))
    with pytest.raises(DataError, match=r"holdout\.csv: the holdout file lacks column\(s\) city"):
        load_dataset(tmp_path, config)


# --- data version --------------------------------------------------------------------


def dvc(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tracked(tmp_path: Path) -> tuple[Path, DataConfig]:
    """A DVC project (no git) whose folder data/ is tracked by data.dvc."""
    save(labelled_frame(n=40), tmp_path / "data" / "table.csv")
    dvc(tmp_path, "init", "--no-scm", "-q")
    dvc(tmp_path, "add", "-q", "data")
    return tmp_path, DataConfig(path="data/table.csv", target="label")


def test_data_version_comes_from_the_dvc_file(tracked: tuple[Path, DataConfig]) -> None:
    root, config = tracked
    assert find_dvc_file(root, Path(config.path)) == Path("data.dvc")
    md5 = yaml.safe_load((root / "data.dvc").read_text())["outs"][0]["md5"]
    assert md5.endswith(".dir")
    assert data_version(root, config) == f"md5:{md5}"


def append_row(path: Path) -> None:
    with path.open("a") as table:
        table.write("1.0,20,north,no\n")


@pytest.mark.parametrize(
    "edit",
    [
        lambda root: append_row(root / "data" / "table.csv"),
        lambda root: (root / "data" / "table.csv").unlink(),
        lambda root: save(labelled_frame(n=5), root / "data" / "extra.csv"),
    ],
    ids=["a row appended", "the file deleted", "a file added next to it"],
)
def test_tracked_data_changed_after_pull_is_refused(
    tracked: tuple[Path, DataConfig], edit: Any
) -> None:
    root, config = tracked
    edit(root)
    with pytest.raises(DataError) as info:
        data_version(root, config)
    message = str(info.value)
    assert message.startswith("the tracked data 'data' is modified")
    assert "differs from the version data.dvc records" in message
    assert "'dvc add data'" in message and "'dvc checkout data.dvc'" in message


def test_recording_the_change_gives_a_new_version(tracked: tuple[Path, DataConfig]) -> None:
    root, config = tracked
    before = data_version(root, config)
    append_row(root / "data" / "table.csv")
    dvc(root, "add", "-q", "data")
    after = data_version(root, config)
    assert after != before and after.startswith("md5:")


def test_a_dvc_file_that_dvc_does_not_see_is_refused(tracked: tuple[Path, DataConfig]) -> None:
    # found next to the data, but ignored by DVC: nothing can confirm the file is that version
    root, config = tracked
    (root / ".dvcignore").write_text("data.dvc\n")
    with pytest.raises(DataError) as info:
        data_version(root, config)
    message = str(info.value)
    assert "cannot check that data/table.csv is the version DVC records" in message
    assert "no DVC output" in message


def test_a_dvc_file_outside_a_dvc_project_is_refused(tmp_path: Path) -> None:
    save(labelled_frame(n=20), tmp_path / "data" / "table.csv")
    outs = [{"md5": "0123456789abcdef0123456789abcdef.dir", "hash": "md5", "path": "data"}]
    (tmp_path / "data.dvc").write_text(yaml.safe_dump({"outs": outs}))
    with pytest.raises(DataError) as info:
        data_version(tmp_path, DataConfig(path="data/table.csv", target="label"))
    message = str(info.value)
    assert "cannot check that the data" in message and "'ci-ml pull'" in message


def test_data_version_of_the_example_project_matches_data_dvc(pulled_example: Path) -> None:
    md5 = yaml.safe_load((pulled_example / "data.dvc").read_text())["outs"][0]["md5"]
    config = DataConfig(path="data/credit_data.csv", target="Status")
    assert data_version(pulled_example, config) == f"md5:{md5}"


def test_untracked_data_falls_back_to_sha256(tmp_path: Path) -> None:
    path = save(labelled_frame(n=20), tmp_path / "table.csv")
    config = DataConfig(path="table.csv", target="label")
    before = data_version(tmp_path, config)
    assert before == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text() + "1.0,20,north,no\n")
    after = data_version(tmp_path, config)
    assert after != before
    assert after == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_untracked_and_missing_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist; run 'ci-ml pull'"):
        data_version(tmp_path, DataConfig(path="gone.csv", target="label"))


def test_one_run_reads_and_splits_the_data_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ci_ml.project
    from ci_ml import api, rundir

    loads = []
    real = ci_ml.project.load_dataset
    monkeypatch.setattr(ci_ml.project, "load_dataset", lambda *a: loads.append(a) or real(*a))
    proj = open_project(project / "ci-ml.yaml")

    results = api.run(proj, rundir.new_run_dir(proj.runs_dir))

    assert results["gate"].verdict == "pass"
    assert len(loads) == 1  # validate, train and evaluate share it


def test_pull_finds_the_dvc_files_from_the_project_root_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ci-ml pull --config examples/hpc/ci-ml.yaml` from the repo root: DVC reads a relative
    # target from the current directory, where 'data.dvc' is another project's file (or none)
    repo = make_example_repo(tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    dvc_pull(repo, ["data.dvc"])
    assert (repo / "data" / "credit_data.csv").is_file()
