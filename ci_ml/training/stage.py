"""A ``dvc.yaml`` stage as the trainer (``model: {dvc_stage: train}``), and stages that make data.

ci-ml runs ``dvc repro --pull <stage>`` (DVC pulls what is cached in the remote, runs what is
out of date, and leaves an up-to-date stage alone), takes the model from the stage's outputs
(``model.output`` if set, else the ``dvc.yaml`` artifact of ``type: model``, else its one
``.skops``/``.onnx`` output, else its only output), and records the stage, its params and
dvc.lock's hashes in ``model.json``.

The stage reads its training data itself, so two things are checked before it runs: it
depends on ``data.path`` (the file the data gates judge) and not on ``data.holdout.file``
(the rows ci-ml judges the model on). See docs/data.md#dvc-pipelines.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_ml.config import DataConfig, ModelConfig
from ci_ml.errors import ConfigError, DataError, ModelFileError
from ci_ml.models import load_model
from ci_ml.models.onnx import check_own_onnx
from ci_ml.rundir import MODEL, ONNX
from ci_ml.training.card import feature_schema

STAGE_FILE = "dvc.yaml"
MODEL_SUFFIXES = (".skops", ".onnx")
STDERR_FD = 2


@dataclass(frozen=True)
class StageInfo:
    """A stage as dvc.yaml declares it; paths are absolute."""

    name: str
    dvc_file: Path
    target: str  # how DVC is told which stage (absolute dvc.yaml path and name)
    deps: tuple[Path, ...]
    outs: tuple[Path, ...]
    artifacts: tuple[Path, ...]  # paths of dvc.yaml's artifacts of type model


def stage_target(root: Path, name: str) -> tuple[Path, str]:
    """The dvc.yaml and stage name of ``name`` (``train``, or ``path/dvc.yaml:train``)."""
    file, sep, stage = name.rpartition(":")
    dvc_file = (root / file) if sep else root / STAGE_FILE
    return dvc_file.resolve(), stage if sep else name


@contextmanager
def dvc_repo(root: Path, rev: str | None = None) -> Iterator[Any]:
    """The DVC repository holding ``root`` (at commit ``rev``: files read from git)."""
    from dvc.repo import Repo

    logging.disable(logging.WARNING)  # DVC's warnings repeat what its error says
    try:
        with Repo(Repo.find_root(str(root)), rev=rev) as repo:
            yield repo
    finally:
        logging.disable(logging.NOTSET)


def repo_path(root: Path, path: Path) -> str:
    """``path`` relative to the root of the git + DVC repository holding ``root``."""
    from dvc.repo import Repo

    return os.path.relpath(path.resolve(), Path(Repo.find_root(str(root))).resolve())


def load_stage(root: Path, name: str) -> StageInfo:
    """The stage ``name`` of the project's dvc.yaml, or a ConfigError naming what is there."""
    from dvc.exceptions import DvcException

    dvc_file, stage_name = stage_target(root, name)
    if not dvc_file.is_file():
        raise ConfigError(
            f"model.dvc_stage '{name}': there is no {shown(dvc_file, root)}; write the "
            "pipeline there or name the stage as 'path/to/dvc.yaml:stage'."
        )
    target = f"{dvc_file}:{stage_name}"
    try:
        with dvc_repo(root) as repo:
            names = [s.name for s in repo.stage.collect(str(dvc_file))]
            if stage_name not in names:
                raise ConfigError(
                    f"model.dvc_stage '{name}': {shown(dvc_file, root)} has no stage "
                    f"'{stage_name}' (its stages: {', '.join(names) or 'none'})."
                )
            stage = repo.stage.collect(target)[0]
            artifacts = repo.artifacts.read()
    except DvcException as exc:
        raise ConfigError(
            f"model.dvc_stage '{name}': DVC cannot read {shown(dvc_file, root)} "
            f"({' '.join(str(exc).split())}); check it with 'dvc stage list'."
        ) from None
    models = [
        (dvc_file.parent / artifact.path).resolve()
        for file, found in artifacts.items()
        if (Path(repo.root_dir) / file).resolve() == dvc_file
        for artifact in found.values()
        if artifact.type == "model"
    ]
    return StageInfo(
        name=stage_name,
        dvc_file=dvc_file,
        target=target,
        deps=tuple(Path(dep.fs_path).resolve() for dep in stage.deps if not _is_params(dep)),
        outs=tuple(Path(out.fs_path).resolve() for out in stage.outs),
        artifacts=tuple(models),
    )


def check_data(stage: StageInfo, root: Path, data: DataConfig) -> None:
    """The stage trains on ``data.path`` and never reads ``data.holdout.file``."""
    path = (root / data.path).resolve()
    if not any(_inside(path, dep) for dep in stage.deps):
        raise ConfigError(
            f"model.dvc_stage '{stage.name}' does not depend on data.path '{data.path}', so "
            "the data gates would judge rows it may not train on; add the file to the "
            "stage's deps in dvc.yaml, or set data.path to the file the stage trains on."
        )
    holdout = (root / str(data.holdout.file)).resolve()
    read = [dep for dep in stage.deps if _inside(holdout, dep)]
    if read:
        raise ConfigError(
            f"model.dvc_stage '{stage.name}' depends on {shown(read[0], root)}, which holds "
            f"data.holdout.file '{data.holdout.file}': a model must never see the rows it is "
            "judged on; remove it from the stage's deps, or hold out rows the stage does not read."
        )


def model_output(stage: StageInfo, root: Path, config: ModelConfig) -> Path:
    """Which of the stage's outputs is the model (see the module docstring)."""
    if config.output_given:
        path = (root / config.output).resolve()
        if not any(_inside(path, out) for out in stage.outs):
            raise ConfigError(
                f"model.output '{config.output}' is not an output of the stage "
                f"'{stage.name}' (its outs: {_listed(stage.outs, root)}); name one of them."
            )
        return _model_kind(path, root)
    for found in (
        [p for p in stage.artifacts if any(_inside(p, out) for out in stage.outs)],
        [p for p in stage.outs if p.suffix in MODEL_SUFFIXES],
        list(stage.outs),  # a stage's one output is its model (refused if not a safe format)
    ):
        if len(found) == 1:
            return _model_kind(found[0], root)
    raise ConfigError(
        f"cannot tell which output of the stage '{stage.name}' is the model (its outs: "
        f"{_listed(stage.outs, root)}); declare it in dvc.yaml's artifacts with 'type: model' "
        "or set model.output to it."
    )


def _model_kind(path: Path, root: Path) -> Path:
    if path.suffix not in MODEL_SUFFIXES:
        raise ConfigError(
            f"the stage's model {shown(path, root)} is neither a skops file (.skops) nor an "
            "ONNX model (.onnx), the formats ci-ml loads without pickle; save it with "
            "skops.io.dump or export it to ONNX (docs/frameworks.md)."
        )
    return path


def run_dvc(root: Path, *args: str) -> int:
    """``dvc <args>`` in ``root``, its output on stderr (stdout carries ``--json`` output);
    the Python ci-ml runs on is first on PATH, so a stage's ``python`` has the same packages.
    Returns DVC's exit code."""
    python_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": python_dir + os.pathsep + os.environ.get("PATH", "")}
    command = [sys.executable, "-m", "dvc", *args]
    return subprocess.run(command, cwd=root, env=env, check=False, stdout=STDERR_FD).returncode


def reproduce(root: Path, target: str, error: type[Exception] = ModelFileError) -> None:
    """``dvc repro --pull`` the stage (:func:`run_dvc`)."""
    code = run_dvc(root, "repro", "--pull", target)
    if code != 0:
        raise error(
            f"'dvc repro --pull {shown_target(target, root)}' exited with {code}; "
            "DVC's output above says why (a failing stage command, or data missing from the "
            "remote)."
        )


def shown_target(target: str, root: Path) -> str:
    """A stage target as a person types it in the project root (``dvc.yaml:train``)."""
    file, _, name = target.rpartition(":")
    return f"{shown(Path(file), root)}:{name}"


def data_stages(root: Path, data: DataConfig) -> list[str]:
    """The stages of the project's dvc.yaml whose outputs are the data files (none when the
    files are tracked by ``.dvc`` files or there is no dvc.yaml)."""
    from dvc.exceptions import DvcException

    dvc_file = root / STAGE_FILE
    if not dvc_file.is_file():
        return []
    files = [(root / p).resolve() for p in [data.path, data.holdout.file] if p]
    try:
        with dvc_repo(root) as repo:
            stages = repo.stage.collect(str(dvc_file.resolve()))
    except DvcException as exc:
        raise DataError(
            f"DVC cannot read {dvc_file} ({' '.join(str(exc).split())}); check it with "
            "'dvc stage list'."
        ) from None
    return [
        f"{dvc_file.resolve()}:{stage.name}"
        for stage in stages
        if any(_inside(f, Path(out.fs_path)) for f in files for out in stage.outs)
    ]


def record(root: Path, stage: StageInfo, model: Path, rev: str | None = None) -> dict[str, Any]:
    """What DVC recorded of the stage after ``dvc repro`` (in the workspace, or at commit
    ``rev``, e.g. an experiment's): ``model.json``'s ``dvc``."""
    with dvc_repo(root, rev) as repo:
        target = stage.target
        if rev is not None:  # read from git: paths are the repository's, from its top
            target = f"{repo_path(root, stage.dvc_file)}:{stage.name}"
        found = repo.stage.collect(target)[0]

        def where(output: Any) -> str:
            path = Path(output.fs_path)
            if rev is not None:
                path = Path(repo.scm.root_dir) / str(output.fs_path).lstrip("/")
            return shown(path, root)

        params: dict[str, Any] = {}
        deps: dict[str, str] = {}
        for dep in found.deps:
            if _is_params(dep):
                params.update(_flat(dep.hash_info.value or {}, _params_prefix(where(dep))))
            else:
                deps[where(dep)] = _hash(dep)
        outs = {where(out): _hash(out) for out in found.outs}
    return {
        "stage": stage.name,
        "dvc_file": shown(stage.dvc_file, root),
        "params": params,
        "deps": deps,
        "outs": outs,
        "model_path": shown(model, root),
    }


def _is_params(dep: Any) -> bool:
    return type(dep).__name__ == "ParamsDependency"


def _params_prefix(path: str) -> str:
    return "" if Path(path).name == "params.yaml" else f"{path}:"


def _flat(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _hash(output: Any) -> str:
    info = output.hash_info
    return f"{info.name}:{info.value}" if info and info.value else "unknown"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def shown(path: Path, root: Path) -> str:
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(root.resolve()))
    except ValueError:
        return os.path.relpath(resolved, root.resolve())


def _listed(paths: tuple[Path, ...], root: Path) -> str:
    return ", ".join(shown(p, root) for p in paths) or "none"


def train_stage(
    config: ModelConfig, data: DataConfig, dataset: Any, root: Path, run_dir: Path
) -> tuple[Any, Path, dict[str, Any]]:
    """Reproduce the stage and take its model into the run directory as ``model.skops`` (or
    ``model.onnx``); returns the model, its path in the run, and model.json's ``dvc``."""
    assert config.dvc_stage is not None
    stage = load_stage(root, config.dvc_stage)
    check_data(stage, root, data)
    output = model_output(stage, root, config)
    reproduce(root, stage.target)
    if not output.is_file():
        raise ModelFileError(
            f"the stage '{stage.name}' finished but {shown(output, root)} (its model) is "
            "not a file; the stage must write the model there."
        )
    if output.suffix == ".onnx":
        model = check_own_onnx(output, dataset, feature_schema(dataset.train, dataset.features))
    else:
        model = load_model(output, config.trusted_types)
    model_path = run_dir / (ONNX if output.suffix == ".onnx" else MODEL)
    shutil.copyfile(output, model_path)
    return model, model_path, record(root, stage, output)
