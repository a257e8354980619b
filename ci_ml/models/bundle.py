"""Boosters of XGBoost, LightGBM and CatBoost, stored without pickle: the model bundle.

skops cannot persist XGBoost or CatBoost estimators and LightGBM only by trusting its types,
and pickle runs code when loaded. So a booster is kept in its library's own data format, which
holds trees and numbers and nothing to execute, beside the scikit-learn preprocessing in skops:

    model.bundle  (a zip, byte for byte reproducible)
      bundle.json     framework, task, classes, the estimator's params, each member's sha256
      prepare.skops   the fitted ColumnTransformer (loaded under the skops trust list)
      booster.ubj     XGBoost's UBJSON model   | booster.txt  LightGBM's text model
                                               | booster.cbm  CatBoost's model file

The bundle file's sha256 is the model's digest (the decision record, the registry and deploy
check it as for any model file); each member's sha256 in ``bundle.json`` must match too. A
booster is built only when its type (``xgboost.core.Booster``, ``lightgbm.basic.Booster``,
``catboost.core.CatBoost``) is in the trust list, and only through its library's loader of
that format. Loaded, the model is a scikit-learn ``Pipeline`` of the ColumnTransformer and a
:class:`~ci_ml.models.booster.BoosterModel`, which answers ``predict_proba`` and ``predict``
from the booster.

Classifiers are fitted on the class's place in the sorted classes (XGBoost takes no other
labels), and the bundle records the classes themselves, so answers carry the data's labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_ml.errors import MissingExtra, ModelFileError
from ci_ml.models.booster import BoosterModel
from ci_ml.models.skops import ZIP_EPOCH, _reproducible, load_skops, sha256_file
from ci_ml.rundir import atomic_path

# CatBoost stamps each fit with its finishing time and a random id
UNREPRODUCIBLE_CATBOOST_METADATA = ("train_finish_time", "model_guid")
BUNDLE_FORMAT = "ci-ml-bundle"
BUNDLE_VERSION = 1
MANIFEST = "bundle.json"
PREPARE = "prepare.skops"


@dataclass(frozen=True)
class Framework:
    """A boosting library: its package, its extra, its booster type and file member."""

    name: str
    extra: str
    booster_type: str
    member: str


FRAMEWORKS = {
    f.name: f
    for f in [
        Framework("xgboost", "xgboost", "xgboost.core.Booster", "booster.ubj"),
        Framework("lightgbm", "lightgbm", "lightgbm.basic.Booster", "booster.txt"),
        Framework("catboost", "catboost", "catboost.core.CatBoost", "booster.cbm"),
    ]
}
# the booster types a bundle builds; a trust list without them refuses every bundle
BOOSTER_TYPES = frozenset(f.booster_type for f in FRAMEWORKS.values())


def framework_of(estimator: Any) -> Framework | None:
    """The boosting library an estimator comes from, or None (scikit-learn and the rest)."""
    return FRAMEWORKS.get(type(estimator).__module__.split(".")[0])


def framework_named(path: str) -> Framework | None:
    """The boosting library of an estimator's import path (``xgboost.XGBClassifier``)."""
    return FRAMEWORKS.get(path.split(".")[0])


# ------------------------------------------------------------------ saving


def booster_bytes(framework: Framework, estimator: Any) -> bytes:
    """The fitted estimator's booster in its library's own format."""
    if framework.name == "xgboost":
        return bytes(estimator.get_booster().save_raw("ubj"))
    if framework.name == "lightgbm":
        return str(estimator.booster_.model_to_string()).encode("utf-8")
    metadata = estimator.get_metadata()
    for stamp in UNREPRODUCIBLE_CATBOOST_METADATA:  # the same fit, the same bytes
        if stamp in metadata:
            del metadata[stamp]
    with tempfile.TemporaryDirectory(prefix="ci-ml-cbm-") as scratch:
        path = Path(scratch) / framework.member
        estimator.save_model(str(path), format="cbm")
        return path.read_bytes()


def save_bundle(
    prepare: Any,
    estimator: Any,
    task: str,
    classes: list[Any] | None,
    params: dict[str, Any],
    path: Path,
) -> str:
    """Write the bundle of a fitted ColumnTransformer and booster atomically; its sha256."""
    import skops.io as sio

    framework = framework_of(estimator)
    assert framework is not None
    members = {PREPARE: _reproducible(sio.dumps(prepare))}
    members[framework.member] = booster_bytes(framework, estimator)
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "framework": framework.name,
        "booster": framework.member,
        "task": task,
        "classes": classes,
        "params": params,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    entries = {MANIFEST: json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8")}
    entries.update(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    with atomic_path(path) as tmp:
        tmp.write_bytes(out.getvalue())
    return sha256_file(path)


# ------------------------------------------------------------------ loading


def load_bundle(path: Path, allowed: Iterable[str]) -> Any:
    """The bundle's Pipeline (ColumnTransformer + ``BoosterModel``); ModelFileError for
    a damaged or tampered bundle, or a booster type outside ``allowed``."""
    allowed = set(allowed)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found; run 'ci-ml train' first.")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a ci-ml model bundle (not a zip archive).")
    with zipfile.ZipFile(path) as archive:
        manifest = _manifest(path, archive)
        framework = FRAMEWORKS[manifest["framework"]]
        if framework.booster_type not in allowed:
            raise ModelFileError(
                f"{path}: refuses to load untrusted type(s) {framework.booster_type}; list it "
                "under model.trusted_types in ci-ml.yaml only if you trust whoever wrote "
                "this file."
            )
        data = {name: _member(path, archive, name, manifest) for name in manifest["sha256"]}
    with tempfile.TemporaryDirectory(prefix="ci-ml-bundle-") as scratch:
        prepare_path = Path(scratch) / PREPARE
        prepare_path.write_bytes(data[PREPARE])
        try:
            prepare = load_skops(prepare_path, allowed)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {PREPARE} {str(exc).split(': ', 1)[-1]}") from None
    booster = _booster(path, framework, data[framework.member])
    from sklearn.pipeline import Pipeline

    model = BoosterModel(
        framework.name, booster, manifest["task"], manifest["classes"], manifest["params"]
    )
    return Pipeline([("prepare", prepare), ("model", model)])


def _manifest(path: Path, archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (KeyError, ValueError, zipfile.BadZipFile):
        raise ModelFileError(
            f"{path}: not a ci-ml model bundle (no readable {MANIFEST})."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ModelFileError(f"{path}: {MANIFEST} does not describe a ci-ml model bundle.")
    if manifest.get("version") != BUNDLE_VERSION:
        raise ModelFileError(
            f"{path}: bundle version {manifest.get('version')!r}; this ci-ml reads version "
            f"{BUNDLE_VERSION} — train the model again with it."
        )
    framework = manifest.get("framework")
    digests = manifest.get("sha256")
    if framework not in FRAMEWORKS or not isinstance(digests, dict):
        raise ModelFileError(f"{path}: {MANIFEST} names an unknown framework {framework!r}.")
    expected = {PREPARE, FRAMEWORKS[framework].member}
    if set(digests) != expected or manifest.get("task") not in ("classification", "regression"):
        raise ModelFileError(
            f"{path}: {MANIFEST} must list exactly {', '.join(sorted(expected))} and a task."
        )
    return manifest


def _member(path: Path, archive: zipfile.ZipFile, name: str, manifest: dict[str, Any]) -> bytes:
    try:
        data = archive.read(name)
    except (KeyError, zipfile.BadZipFile, OSError):
        raise ModelFileError(f"{path}: the bundle lacks {name}, or it is damaged.") from None
    if hashlib.sha256(data).hexdigest() != manifest["sha256"][name]:
        raise ModelFileError(
            f"{path}: {name} does not match its sha256 in {MANIFEST}; the bundle was changed "
            "after it was written — train the model again."
        )
    return data


def _booster(path: Path, framework: Framework, data: bytes) -> Any:
    """The booster, built by its library's loader of its own format (no pickle)."""
    try:
        if framework.name == "xgboost":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(bytearray(data))
            return booster
        if framework.name == "lightgbm":
            import lightgbm

            return lightgbm.Booster(model_str=data.decode("utf-8"))
        import catboost

        return catboost.CatBoost().load_model(blob=data)
    except ImportError:
        raise MissingExtra(f"loading a {framework.name} model", framework.extra) from None
    except Exception as exc:  # each library raises its own error types for a broken model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{path}: {framework.member} is not a readable {framework.name} model ({first})."
        ) from None
