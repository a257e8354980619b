"""What changed between production and the candidate, from their own records.

Production's side is its ``model.json`` as the registry keeps it (``Baseline.card``), never a
git branch, so the diff works on a shallow clone. The params compared are a dvc.yaml stage's
(``dvc.params``, by dotted key) when both models were trained by a stage, else what ci-ml.yaml
set (``configured_params``); the data, its version, the stage's dependencies (``dvc.deps``,
from dvc.lock), the training rows and the feature columns. Production's card may come from an
older ci-ml or another training mode: a part it does not record is not compared, and its
:class:`~ci_ml.records.Aspect` says so (``problem``) instead of showing a diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ci_ml.records import Aspect, Changes, Difference, DvcStage, ModelCard


def changes(candidate: ModelCard, production: Mapping[str, Any], version: str) -> Changes:
    """The candidate's ``model.json`` against production's (a dict, maybe old or partial)."""
    missing = _missing(production, version)
    theirs = _stage(production)
    ours = candidate.dvc
    return Changes(
        production=version,
        model=_model(candidate, production, missing),
        params_source="dvc_stage" if ours is not None else "config",
        params=_params(candidate, production, theirs, version),
        data_version=_value("data_version", candidate.data_version, production, missing),
        training_rows=_value("training_rows", candidate.training_rows, production, missing),
        features=_features(candidate, production, missing),
        dvc_deps=_deps(ours, theirs, production, version),
    )


def diff(production: Mapping[str, Any], candidate: Mapping[str, Any]) -> Aspect:
    """The keys added, removed or changed from ``production`` to ``candidate``, sorted, and
    how many are the same in both."""
    changed = []
    for key in sorted(set(production) | set(candidate)):
        if key not in production:
            changed.append(
                Difference(key=key, change="added", production=None, candidate=candidate[key])
            )
        elif key not in candidate:
            changed.append(
                Difference(key=key, change="removed", production=production[key], candidate=None)
            )
        elif not _same(production[key], candidate[key]):
            changed.append(
                Difference(
                    key=key, change="changed", production=production[key], candidate=candidate[key]
                )
            )
    unchanged = len(set(production) & set(candidate)) - sum(d.change == "changed" for d in changed)
    return Aspect(problem=None, changed=changed, unchanged=unchanged)


def _same(a: Any, b: Any) -> bool:
    # JSON's true is not 1, though Python says so
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _missing(production: Mapping[str, Any], version: str) -> str:
    """What to say of a part that production's card lacks."""
    if not production:
        return f"production {version}'s model.json could not be read"
    return f"not recorded for production {version}"


def _unknown(problem: str) -> Aspect:
    return Aspect(problem=problem, changed=[], unchanged=0)


def _value(key: str, ours: Any, production: Mapping[str, Any], missing: str) -> Aspect:
    """One key of both cards compared; not compared if production lacks it."""
    if production.get(key) is None:
        return _unknown(missing)
    return diff({key: production[key]}, {key: ours})


def _model(candidate: ModelCard, production: Mapping[str, Any], missing: str) -> Aspect:
    """The estimator and what trained it (ci-ml's trainer, a command, a dvc.yaml stage)."""
    ours = {"estimator": candidate.estimator, "trained by": trainer(candidate.model_dump())}
    if production.get("estimator") is None:
        return _unknown(missing)
    return diff({"estimator": production["estimator"], "trained by": trainer(production)}, ours)


def trainer(card: Mapping[str, Any]) -> str:
    """How the card's model was trained, in words."""
    dvc = card.get("dvc")
    if isinstance(dvc, dict):
        return f"dvc stage {dvc.get('stage')} ({dvc.get('dvc_file')})"
    if card.get("command"):
        return f"command {card['command']}"
    return "ci-ml's trainer"


def _params(
    candidate: ModelCard,
    production: Mapping[str, Any],
    theirs: DvcStage | None,
    version: str,
) -> Aspect:
    """The stage's params (both trained by a dvc stage) or ci-ml.yaml's (neither was)."""
    ours = candidate.dvc
    if ours is not None and theirs is not None:
        return diff(theirs.params, ours.params)
    if ours is None and not _has_stage(production):
        configured = production.get("configured_params")
        if not isinstance(configured, dict):
            return _unknown(_missing(production, version))
        return diff(configured, candidate.configured_params)
    if not production:
        return _unknown(_missing(production, version))
    return _unknown(
        f"production {version} {production_trainer(production)}, the candidate by "
        f"{trainer(candidate.model_dump())}: their params are not the same kind"
    )


def _has_stage(production: Mapping[str, Any]) -> bool:
    return production.get("dvc") is not None


def production_trainer(production: Mapping[str, Any]) -> str:
    """``was trained by ...`` of production's card."""
    if _has_stage(production) and _stage(production) is None:
        return "was trained by a dvc stage whose record this ci-ml cannot read"
    return f"was trained by {trainer(production)}"


def _stage(production: Mapping[str, Any]) -> DvcStage | None:
    """Production's dvc stage record, if it has one this ci-ml can read."""
    try:
        return DvcStage.model_validate(production.get("dvc"))
    except ValidationError:
        return None


def _deps(
    ours: DvcStage | None, theirs: DvcStage | None, production: Mapping[str, Any], version: str
) -> Aspect | None:
    """dvc.lock's dependency hashes, when either model was trained by a stage."""
    if ours is None and not _has_stage(production):
        return None
    if ours is not None and theirs is not None:
        return diff(theirs.deps, ours.deps)
    if ours is None:
        return _unknown("the candidate was not trained by a dvc.yaml stage")
    if not production or _has_stage(production):
        return _unknown(_missing(production, version))
    return _unknown(f"production {version} was not trained by a dvc.yaml stage")


def _features(candidate: ModelCard, production: Mapping[str, Any], missing: str) -> Aspect:
    """Feature columns added or removed, or whose kind or dtype changed."""
    schema = production.get("feature_schema")
    if not isinstance(schema, list) or not all(
        isinstance(f, dict) and isinstance(f.get("name"), str) for f in schema
    ):
        return _unknown(missing)
    ours = {f.name: _feature(f.model_dump()) for f in candidate.feature_schema}
    return diff({f["name"]: _feature(f) for f in schema}, ours)


def _feature(feature: Mapping[str, Any]) -> str:
    return " ".join(str(feature[key]) for key in ("kind", "dtype") if feature.get(key))
