"""Tests for ci_ml.evaluation.changes: production's model.json against the candidate's, whatever
ci-ml or training mode wrote production's."""

from __future__ import annotations

from typing import Any

from ci_ml.evaluation.changes import changes, diff
from ci_ml.records import Aspect, Difference, ModelCard

FEATURES = [
    {"name": "Age", "kind": "numeric", "dtype": "int64"},
    {"name": "Home", "kind": "categorical", "dtype": "object", "categories": ["owner", "rent"]},
]
STAGE = {
    "stage": "train",
    "dvc_file": "dvc.yaml",
    "params": {"train.max_iter": 200, "train.lr": 0.05},
    "deps": {"data/credit.csv": "md5:" + "1" * 32, "train.py": "md5:" + "2" * 32},
    "outs": {"model.skops": "md5:" + "3" * 32},
    "model_path": "model.skops",
}


def card(**fields: Any) -> dict[str, Any]:
    """A model.json as ci-ml's trainer writes it, with ``fields`` changed."""
    found = {
        "schema_version": 1,
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 200, "learning_rate": 0.05, "max_depth": None},
        "configured_params": {"max_iter": 200, "learning_rate": 0.05},
        "command": None,
        "seed": 0,
        "threshold": 0.5,
        "task": "classification",
        "target": "Status",
        "positive_class": "bad",
        "classes": ["bad", "good"],
        "feature_schema": FEATURES,
        "training_rows": 3562,
        "digest": "a" * 64,
        "created_at": "2026-12-01T00:00:00+00:00",
        "ci_ml_version": "0.1.0",
        "data_version": "md5:" + "0" * 32 + ".dir",
        "git_sha": None,
        "size_bytes": 1000,
        "row_identity": ["Age", "Home"],
    }
    return {**found, **fields}


def candidate(**fields: Any) -> ModelCard:
    return ModelCard.model_validate(card(**fields))


def nothing(unchanged: int) -> Aspect:
    return Aspect(problem=None, changed=[], unchanged=unchanged)


def test_the_same_records_list_nothing_and_count_everything() -> None:
    found = changes(candidate(), card(), "0123456789ab")
    assert found.production == "0123456789ab"
    assert found.params_source == "config"
    assert found.params == nothing(2)
    assert found.model == nothing(2)  # the estimator and what trained it
    assert found.data_version == nothing(1)
    assert found.training_rows == nothing(1)
    assert found.features == nothing(2)
    assert found.dvc_deps is None  # neither was trained by a dvc stage


def test_configured_params_added_removed_and_changed() -> None:
    ours = candidate(configured_params={"max_iter": 3, "max_depth": 1})
    found = changes(ours, card(), "v1")
    assert found.params.changed == [
        Difference(key="learning_rate", change="removed", production=0.05, candidate=None),
        Difference(key="max_depth", change="added", production=None, candidate=1),
        Difference(key="max_iter", change="changed", production=200, candidate=3),
    ]
    assert found.params.unchanged == 0
    # the estimator's full get_params is not what is compared: its defaults are noise
    assert found.model == nothing(2)


def test_a_param_set_to_null_differs_from_one_not_set_and_true_from_one() -> None:
    found = diff({"a": None, "b": 1, "c": 2}, {"b": True, "c": 2.0, "d": None})
    assert [(d.key, d.change) for d in found.changed] == [
        ("a", "removed"),
        ("b", "changed"),
        ("d", "added"),
    ]
    assert found.unchanged == 1  # 2 == 2.0


def test_the_estimator_and_the_data() -> None:
    features = [FEATURES[0], {"name": "Income", "kind": "numeric", "dtype": "float64"}]
    ours = candidate(
        estimator="sklearn.ensemble.RandomForestClassifier",
        data_version="md5:" + "f" * 32 + ".dir",
        training_rows=3600,
        feature_schema=features,
    )
    found = changes(
        ours, card(feature_schema=[{**FEATURES[0], "dtype": "float64"}, FEATURES[1]]), "v1"
    )
    assert [(d.key, d.production, d.candidate) for d in found.model.changed] == [
        (
            "estimator",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "sklearn.ensemble.RandomForestClassifier",
        )
    ]
    assert found.data_version.changed[0].candidate == "md5:" + "f" * 32 + ".dir"
    assert found.training_rows.changed == [
        Difference(key="training_rows", change="changed", production=3562, candidate=3600)
    ]
    assert [(d.key, d.change, d.production, d.candidate) for d in found.features.changed] == [
        ("Age", "changed", "numeric float64", "numeric int64"),
        ("Home", "removed", "categorical object", None),
        ("Income", "added", None, "numeric float64"),
    ]


def test_an_old_production_card_without_the_fields_is_not_recorded_not_a_diff() -> None:
    old = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 1.0}}
    found = changes(candidate(), old, "0123456789ab")
    said = "not recorded for production 0123456789ab"
    for aspect in (found.params, found.data_version, found.training_rows, found.features):
        assert aspect == Aspect(problem=said, changed=[], unchanged=0)
    assert found.model.changed[0].key == "estimator"  # that one it did record


def test_an_unread_production_card_says_so() -> None:
    found = changes(candidate(), {}, "unknown (not readable from a fork)")
    said = "production unknown (not readable from a fork)'s model.json could not be read"
    assert found.params.problem == found.model.problem == found.features.problem == said
    assert found.dvc_deps is None


def test_two_dvc_stages_compare_the_stage_params_and_the_lock_hashes() -> None:
    theirs = card(configured_params={}, dvc=STAGE)
    deps = {**STAGE["deps"], "data/credit.csv": "md5:" + "9" * 32, "features.py": "md5:" + "4" * 32}
    params = {**STAGE["params"], "train.max_iter": 3}
    ours = candidate(configured_params={}, dvc={**STAGE, "params": params, "deps": deps})
    found = changes(ours, theirs, "v1")
    assert found.params_source == "dvc_stage"
    assert [(d.key, d.production, d.candidate) for d in found.params.changed] == [
        ("train.max_iter", 200, 3)
    ]
    assert found.params.unchanged == 1
    assert found.dvc_deps is not None
    assert [(d.key, d.change) for d in found.dvc_deps.changed] == [
        ("data/credit.csv", "changed"),
        ("features.py", "added"),
    ]
    assert found.dvc_deps.unchanged == 1
    assert found.model == nothing(2)


def test_a_dvc_candidate_against_a_built_in_production_compares_no_params() -> None:
    ours = candidate(configured_params={}, dvc=STAGE)
    found = changes(ours, card(), "v1")
    assert found.params.problem == (
        "production v1 was trained by ci-ml's trainer, the candidate by dvc stage train "
        "(dvc.yaml): their params are not the same kind"
    )
    assert found.dvc_deps is not None
    assert found.dvc_deps.problem == ("production v1 was not trained by a dvc.yaml stage")
    assert [d.candidate for d in found.model.changed] == ["dvc stage train (dvc.yaml)"]
    assert found.data_version == nothing(1)  # the data is compared all the same


def test_a_built_in_candidate_against_a_dvc_production() -> None:
    found = changes(candidate(), card(dvc=STAGE), "v1")
    assert found.params.problem is not None and "dvc stage train" in found.params.problem
    assert found.dvc_deps is not None
    assert found.dvc_deps.problem == "the candidate was not trained by a dvc.yaml stage"


def test_a_dvc_record_this_ci_ml_cannot_read_is_not_recorded() -> None:
    ours = candidate(configured_params={}, dvc=STAGE)
    found = changes(ours, card(dvc={"stage": "train", "deps": "?"}), "v1")
    assert found.dvc_deps is not None
    assert found.dvc_deps.problem == "not recorded for production v1"
    assert found.params.problem is not None
    assert "whose record this ci-ml cannot read" in found.params.problem


def test_a_command_production_and_a_built_in_candidate() -> None:
    found = changes(candidate(), card(command="python train.py"), "v1")
    assert [(d.key, d.production, d.candidate) for d in found.model.changed] == [
        ("trained by", "command python train.py", "ci-ml's trainer")
    ]
    assert found.params == nothing(2)  # both from ci-ml.yaml's model.params
