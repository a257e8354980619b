"""DVC experiments of the ``model.dvc_stage`` pipeline: run the queued ones, list those of the
workspace's commit, and take each one's model out of its experiment ref without touching the
workspace (DVC reads the model from its cache at the experiment's commit).

``ci-ml experiments`` (:func:`ci_ml.api.experiments`) then judges each against production.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_ml.config import DataConfig, ModelConfig
from ci_ml.errors import BadInputError, ModelFileError
from ci_ml.rundir import MODEL, ONNX, atomic_path
from ci_ml.training import stage


@dataclass(frozen=True)
class Experiment:
    """A DVC experiment: its name and commit (under ``refs/exps/``)."""

    name: str
    rev: str


def run_queued(root: Path) -> None:
    """``dvc exp run --run-all``: the queued experiments, each in DVC's own temporary copy."""
    code = stage.run_dvc(root, "exp", "run", "--run-all")
    if code != 0:
        raise ModelFileError(
            f"'dvc exp run --run-all' exited with {code}; DVC's output above says "
            "why ('dvc queue logs <name>' shows a failed experiment's log)."
        )


def list_experiments(root: Path) -> list[Experiment]:
    """The experiments of the workspace's commit (HEAD), by name; a queued experiment that has
    not run yet has no commit and is not listed."""
    with stage.dvc_repo(root) as repo:
        found = repo.experiments.ls()
    return sorted(
        (Experiment(name, rev) for runs in found.values() for name, rev in runs if rev),
        key=lambda e: e.name,
    )


def take_model(
    root: Path, config: ModelConfig, experiment: Experiment, run_dir: Path
) -> tuple[Path, dict[str, Any]]:
    """The experiment's model, written to ``run_dir``, and its stage record (model.json's
    ``dvc``) as dvc.lock at the experiment's commit has it."""
    assert config.dvc_stage is not None
    workspace = stage.load_stage(root, config.dvc_stage)
    output = stage.model_output(workspace, root, config)
    found = stage.record(root, workspace, output, rev=experiment.rev)
    target = run_dir / (ONNX if output.suffix == ".onnx" else MODEL)
    inside = stage.repo_path(root, output)
    try:
        import dvc.api

        with (
            dvc.api.open(inside, repo=str(root), rev=experiment.rev, mode="rb") as source,
            atomic_path(target) as tmp,
        ):
            tmp.write_bytes(source.read())
    except Exception as exc:  # DVC's errors for a missing ref, out or cache entry vary
        raise ModelFileError(
            f"the model {found['model_path']} of experiment '{experiment.name}' "
            f"({experiment.rev[:7]}) cannot be read ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); run 'dvc exp pull' for it, or again."
        ) from None
    return target, found


def other_data(root: Path, data: DataConfig, dvc: dict[str, Any]) -> str | None:
    """Why an experiment was trained on other data than the workspace's ``data.path`` (its
    rows are not those the data gates judged; the holdout may overlap them), or None."""
    path = (root / data.path).resolve()
    key = stage.shown(path, root)
    if data.holdout.file is not None:  # its dvc.yaml may not be the workspace's
        holdout = (root / data.holdout.file).resolve()
        read = [
            d
            for d in dvc["deps"]
            if holdout == (root / d).resolve() or (root / d).resolve() in holdout.parents
        ]
        if read:
            return (
                f"its stage depends on {read[0]}, which holds data.holdout.file: a model must "
                "never see the rows it is judged on"
            )
    recorded = dvc["deps"].get(key)
    if recorded is None:
        return f"its stage does not record {key} among its dependencies"
    here = "md5:" + hashlib.md5(path.read_bytes()).hexdigest()  # DVC's hash of a file
    if recorded != here:
        return (
            f"it was trained on another {key} ({recorded[:12]}) than the one the data gates "
            f"judged ({here[:12]}); run it again on this commit's data"
        )
    return None


def params_changed(workspace: dict[str, Any], dvc: dict[str, Any]) -> dict[str, Any]:
    """The experiment's params that differ from the workspace's stage (what it tried)."""
    return {k: v for k, v in dvc["params"].items() if workspace.get(k, object()) != v}


def unknown_experiment(names: list[str]) -> BadInputError:
    return BadInputError(
        "there are no DVC experiments of this commit to gate; queue them with "
        "'dvc exp run --queue -S train.param=value' and pass --run-all, or run them with "
        "'dvc exp run' (in CI: fetch them with 'git fetch origin \"+refs/exps/*:refs/exps/*\"')"
        + (f"; found only: {', '.join(names)}" if names else "")
        + "."
    )
