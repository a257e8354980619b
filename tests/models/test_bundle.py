"""Booster bundles (XGBoost, LightGBM, CatBoost): what is stored, that loading answers like
the fitted estimator, reproducibility, and refusal of tampered bundles and untrusted types."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ci_ml.config import ModelConfig, Task
from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.models import BOOSTER_TYPES, TRUSTED_TYPES, load_model
from ci_ml.models.bundle import FRAMEWORKS, MANIFEST, PREPARE
from ci_ml.training import build_pipeline, feature_schema, model_file_name, train_builtin
from tests.models.test_skops import small_dataset

BOOSTERS: dict[str, tuple[Task, dict[str, Any]]] = {
    "xgboost.XGBClassifier": ("classification", {"n_estimators": 15, "max_depth": 3}),
    "xgboost.XGBRegressor": ("regression", {"n_estimators": 15, "max_depth": 3}),
    "lightgbm.LGBMClassifier": ("classification", {"n_estimators": 15, "min_child_samples": 5}),
    "lightgbm.LGBMRegressor": ("regression", {"n_estimators": 15, "min_child_samples": 5}),
    "catboost.CatBoostClassifier": ("classification", {"iterations": 15, "depth": 3}),
    "catboost.CatBoostRegressor": ("regression", {"iterations": 15, "depth": 3}),
}


def saved(estimator: str, folder: Path, multiclass: bool = False) -> tuple[Path, Any, Any]:
    """Train ``estimator`` the way 'ci-ml train' does; (bundle path, loaded model, dataset)."""
    task, params = BOOSTERS[estimator]
    dataset = small_dataset(task)
    if multiclass:
        for part in (dataset.train, dataset.holdout):
            part["y"] = np.where(part["income"].fillna(50) > 55, "high", part["y"])
        dataset = type(dataset)(**{**dataset.__dict__, "classes": ("bad", "good", "high")})
    config = ModelConfig(estimator=estimator, params=params)
    path = folder / model_file_name(config)
    model, _ = train_builtin(config, dataset, path)
    return path, model, dataset


@pytest.mark.parametrize("estimator", sorted(BOOSTERS))
def test_a_booster_is_stored_in_its_own_format_and_answers_like_the_fitted_estimator(
    estimator: str, tmp_path: Path
) -> None:
    path, loaded, dataset = saved(estimator, tmp_path)
    framework = FRAMEWORKS[estimator.split(".")[0]]
    assert path.name == "model.bundle"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted([MANIFEST, PREPARE, framework.member])
        manifest = json.loads(archive.read(MANIFEST))
    assert manifest["framework"] == framework.name and manifest["task"] == BOOSTERS[estimator][0]

    # the same pipeline fitted again in memory (same seed): the bundle answers as it does
    config = ModelConfig(estimator=estimator, params=BOOSTERS[estimator][1])
    again = build_pipeline(config, feature_schema(dataset.train, dataset.features), dataset.task)
    x = dataset.x("holdout")
    if dataset.task == "classification":
        classes = np.unique(dataset.y("train"))
        again.fit(dataset.x("train"), np.searchsorted(classes, dataset.y("train")))
        assert list(loaded.classes_) == list(classes) == manifest["classes"]
        np.testing.assert_allclose(loaded.predict_proba(x), again.predict_proba(x), atol=1e-6)
        assert set(loaded.predict(x)) <= set(classes)
    else:
        again.fit(dataset.x("train"), dataset.y("train"))
        np.testing.assert_allclose(loaded.predict(x), again.predict(x), rtol=1e-6)


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier"])
def test_a_multiclass_booster_answers_every_class(estimator: str, tmp_path: Path) -> None:
    _, loaded, dataset = saved(estimator, tmp_path, multiclass=True)
    proba = loaded.predict_proba(dataset.x("holdout"))
    assert list(loaded.classes_) == ["bad", "good", "high"]
    assert proba.shape == (len(dataset.holdout), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "catboost.CatBoostClassifier"])
def test_training_the_same_booster_twice_gives_the_same_bundle(
    estimator: str, tmp_path: Path
) -> None:
    first, _, _ = saved(estimator, tmp_path / "a")
    second, _, _ = saved(estimator, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def rewritten(path: Path, change: dict[str, bytes]) -> None:
    """Rewrite the bundle with some members' bytes replaced (the manifest left as it was)."""
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members.update(change)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    path.write_bytes(out.getvalue())


@pytest.fixture(scope="module")
def xgb_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved("xgboost.XGBClassifier", tmp_path_factory.mktemp("xgb"))[0]


def test_a_tampered_booster_is_refused(xgb_bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.bundle"
    path.write_bytes(xgb_bundle.read_bytes())
    with zipfile.ZipFile(path) as archive:
        booster = bytearray(archive.read("booster.ubj"))
    booster[-20] ^= 0x01  # one bit of one split value
    rewritten(path, {"booster.ubj": bytes(booster)})
    with pytest.raises(ModelFileError, match=r"booster.ubj does not match its sha256"):
        load_model(path)


def test_a_manifest_edited_to_match_a_foreign_booster_is_still_only_data(
    xgb_bundle: Path, tmp_path: Path
) -> None:
    # whoever rewrites the manifest too gets a booster loaded by XGBoost's own format reader:
    # a file that is not an XGBoost model is refused, nothing of it runs
    path = tmp_path / "model.bundle"
    path.write_bytes(xgb_bundle.read_bytes())
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    junk = b"\x80\x04cos\nsystem\n(S'echo owned'\ntR."  # a pickle calling os.system
    import hashlib

    manifest["sha256"]["booster.ubj"] = hashlib.sha256(junk).hexdigest()
    rewritten(path, {"booster.ubj": junk, MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(ModelFileError, match=r"booster.ubj is not a readable xgboost model"):
        load_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({MANIFEST: b"not json"}, r"not a ci-ml model bundle \(no readable bundle.json\)"),
        ({MANIFEST: b'{"format": "other"}'}, r"does not describe a ci-ml model bundle"),
        ({MANIFEST: b'{"format": "ci-ml-bundle", "version": 9}'}, r"bundle version 9"),
    ],
)
def test_a_damaged_manifest_is_refused(
    xgb_bundle: Path, tmp_path: Path, change: dict[str, bytes], message: str
) -> None:
    path = tmp_path / "model.bundle"
    path.write_bytes(xgb_bundle.read_bytes())
    rewritten(path, change)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.bundle"
    path.write_bytes(b"\x80\x04\x95")
    with pytest.raises(ModelFileError, match=r"not a ci-ml model bundle \(not a zip archive\)"):
        load_model(path)


@pytest.mark.parametrize(
    "estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier", "catboost.CatBoostClassifier"]
)
def test_a_trust_list_without_the_booster_type_refuses_the_bundle(
    estimator: str, tmp_path: Path
) -> None:
    path, _, _ = saved(estimator, tmp_path)
    booster_type = FRAMEWORKS[estimator.split(".")[0]].booster_type
    with pytest.raises(ModelFileError, match=rf"untrusted type\(s\) {booster_type}"):
        load_model(path, allowed=TRUSTED_TYPES)
    assert load_model(path, allowed=TRUSTED_TYPES | {booster_type}) is not None
    assert booster_type in BOOSTER_TYPES


def test_the_skops_part_is_held_to_the_same_trust_list(xgb_bundle: Path) -> None:
    with pytest.raises(ModelFileError, match=r"prepare.skops refuses to load untrusted type"):
        load_model(xgb_bundle, allowed=BOOSTER_TYPES)  # without numpy.dtype


def test_a_missing_boosting_library_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost raises ImportError
    from ci_ml.training import make_estimator

    with pytest.raises(MissingExtra, match=r"pip install 'ci-ml\[xgboost\]'"):
        make_estimator(ModelConfig(estimator="xgboost.XGBClassifier"))


def test_catboost_writes_no_files_and_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    saved("catboost.CatBoostClassifier", tmp_path / "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no catboost_info/
    assert capfd.readouterr().out == ""
