"""A repository with its ``ci-ml.yaml``: the registry it uses, its run directories, its data.

Everything a step needs from the project comes through :class:`Project`: the one way to open
the registry (:meth:`Project.registry`), to resolve a run directory (:meth:`Project.run_dir`),
to load the data a run pulled (:func:`load_data`, cached so that one ``ci-ml run`` reads and
splits it once; on engines duckdb and spark :func:`load_training` reads only the rows the
model trains on) and the candidate it trained (:func:`load_candidate`).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_ml import gates, quality, rundir, training
from ci_ml.config import CONFIG_FILE, Config, DataConfig, ModelConfig, Task, load_config
from ci_ml.data import Dataset, data_version, load_dataset, read_table, with_holdout
from ci_ml.engines.rows import Found, read_rows
from ci_ml.engines.split import split_files
from ci_ml.errors import (
    BadInputError,
    ConfigError,
    DataError,
    MissingExtra,
    ModelFileError,
    RunDirError,
)
from ci_ml.export import boosters
from ci_ml.export.convert import SUPPORTED_ESTIMATORS, require_onnx
from ci_ml.models import load_model, sha256_file
from ci_ml.models.bundle import framework_of
from ci_ml.records import DataReport, ModelCard, PullRecord, read_record
from ci_ml.registry import Registry, open_registry


@dataclass(frozen=True)
class Project:
    """A repository with a ``ci-ml.yaml``: its root and validated config."""

    root: Path
    config: Config
    config_path: Path

    @property
    def runs_dir(self) -> Path:
        return self.root / self.config.runs_dir

    def registry(self, url: str | None = None) -> Registry:
        """The registry at ``url`` (``--registry``: a relative path is taken from the current
        directory, as a shell would), else the config's ``registry.url`` (relative to the
        project root; ``CI_ML_REGISTRY_URL`` replaces it when the config is loaded)."""
        if url:
            return open_registry(url, root=Path.cwd())
        return open_registry(self.config.registry.url, root=self.root)

    def check_metrics(self, task: str, classes: Sequence[str] = ()) -> None:
        """The metrics and gates can be computed for this task and these classes (the data's);
        ConfigError naming the config file and the field otherwise."""
        gates.check_gate_metrics(self.config, task, classes, source=_shown(self.config_path))

    def run_dir(self, given: Path | None, *, new: bool = False) -> Path:
        """The run directory a command works in: ``given``, else a new run (``new``: pull and
        run) or the latest one. Only a new run's directory is created; any other must exist,
        so a mistyped ``--run-dir`` leaves nothing behind."""
        if given is not None:
            if given.exists() and not given.is_dir():
                raise RunDirError(f"--run-dir {given} is a file, not a run directory.")
            if new:
                given.mkdir(parents=True, exist_ok=True)
            elif not given.is_dir():
                raise RunDirError(
                    f"--run-dir {given} does not exist; give the folder of a run that "
                    "'ci-ml pull' or 'ci-ml run' started."
                )
            return given.resolve()
        if new:
            return rundir.new_run_dir(self.runs_dir)
        return rundir.latest_run_dir(self.runs_dir)


def open_project(config_path: Path | str = CONFIG_FILE) -> Project:
    """Load the config; the project root is the config file's directory."""
    path = Path(config_path).resolve()
    return Project(root=path.parent, config=load_config(path), config_path=path)


def check_project(project: Project) -> None:
    """What ``ci-ml config check`` checks beyond the file's schema: everything that can be
    checked without the data. The metrics and gates (for ``data.task`` when it is set), the
    estimator (importable, a model, of the task, taking its params), the expectation suite,
    that an ONNX export can convert the estimator (or that ONNX Runtime is there to run your
    own ONNX model), and the registry URL. Raises ConfigError, BadInputError or MissingExtra."""
    config = project.config
    source = _shown(project.config_path)
    gates.check_gate_metrics(config, config.data.task, source=source)
    try:
        project.registry()  # the URL's scheme and its backend's extra; nothing is opened yet
    except MissingExtra:
        raise
    except BadInputError as exc:
        raise ConfigError(f"{source}: field 'registry.url': {exc}") from None
    estimator = None
    if config.model.estimator is not None:
        try:
            estimator = training.make_estimator(config.model, config.data.task)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if config.expectations is not None:
        quality.read_suite(project.root / config.expectations.suite)
    if config.model.writes_onnx:
        _require_onnxruntime()
    if config.export is not None:
        require_onnx()
        if estimator is not None:
            _check_exportable(estimator, config.model, source)


def _check_exportable(estimator: Any, model: ModelConfig, source: str) -> None:
    """ConfigError unless ONNX export converts the estimator (with these params)."""
    framework = framework_of(estimator)
    if framework is not None:
        boosters.require(framework.name)
        problem = boosters.unsupported(framework.name, model.params)
        if problem is not None:
            raise ConfigError(
                f"{source}: 'export' is set, but ONNX export cannot convert model.estimator "
                f"{model.estimator}: {problem} or remove 'export' (docs/frameworks.md)."
            )
    elif type(estimator).__name__ not in SUPPORTED_ESTIMATORS:
        raise ConfigError(
            f"{source}: 'export' is set, but ONNX export cannot convert model.estimator "
            f"{model.estimator} (it converts {', '.join(sorted(SUPPORTED_ESTIMATORS))}, and "
            "XGBoost, LightGBM and CatBoost estimators); choose one of them or remove 'export'."
        )


def _require_onnxruntime() -> None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise MissingExtra("running your own ONNX model (model.output)", "onnx") from None


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is inside it (as the user typed it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def now() -> str:
    """The current UTC time, to the second, as the run files record it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def actor() -> str:
    """Who is acting: the GitHub actor inside Actions, else the local user."""
    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


# The last dataset loaded, so that the steps of one `ci-ml run` read and split the data
# once: (project root, data settings, data version, the files' size and mtime) -> the
# dataset. No step changes it.
_loaded: dict[tuple[str, ...], Dataset] = {}


def _stamp(path: Path) -> str:
    try:
        found = path.stat()
    except OSError:
        return "missing"
    return f"{found.st_size}:{found.st_mtime_ns}"


def pulled_version(project: Project, run_dir: Path) -> str:
    """The data version, checked to be the one that ``pull`` recorded."""
    pulled = read_record(run_dir / rundir.PULL, PullRecord).data_version
    current = data_version(project.root, project.config.data)
    if current != pulled:
        raise RunDirError(
            f"the data changed since 'ci-ml pull' recorded {pulled} (now {current}); "
            "start a new run with 'ci-ml run' or 'ci-ml pull'."
        )
    return current


def load_data(project: Project, run_dir: Path) -> tuple[Dataset, str]:
    """The dataset, checked to be the version that ``pull`` recorded.

    On engines duckdb and spark: the training rows (:func:`load_training`) and the holdout
    in memory, refused when it has more than ``data.streaming_rows`` rows (evaluate streams
    such a holdout instead, :mod:`ci_ml.api.streamed`).
    """
    if project.config.data.engine != "pandas":
        return _out_of_core(project, run_dir, in_memory=True)
    pull = read_record(run_dir / rundir.PULL, PullRecord)
    current = pulled_version(project, run_dir)
    key = _key(project, current, pull.row_identity)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = load_dataset(project.root, project.config.data, pull.row_identity)
    return _loaded[key], current


def load_training(project: Project, run_dir: Path) -> tuple[Dataset, str]:
    """The rows the model trains on: the dataset (pandas engine); on engines duckdb and spark
    a seeded sample of ``data.train_rows`` rows of the train file and no holdout rows
    (:mod:`ci_ml.engines.rows`). A ``dvc.yaml`` stage reads the train file itself, so for
    it every row is read: model.json and training-ids.parquet name every row it trained on."""
    if project.config.data.engine == "pandas":
        return load_data(project, run_dir)
    return _out_of_core(project, run_dir, in_memory=False)


def holdout_rows(project: Project, run_dir: Path) -> int:
    """The holdout's row count, as the engine counted it (the pandas engine's rows)."""
    if project.config.data.engine == "pandas":
        return len(load_data(project, run_dir)[0].holdout)
    return _engine_rows(project, run_dir).holdout_rows


_found: dict[tuple[str, ...], Found] = {}  # out of core: the engine's rows, as _loaded


def _engine_rows(project: Project, run_dir: Path) -> Found:
    whole = project.config.model.dvc_stage is not None
    pull = read_record(run_dir / rundir.PULL, PullRecord)
    data = engine_data(project, run_dir)
    key = (*_key(project, pulled_version(project, run_dir), pull.row_identity, data), str(whole))
    if key not in _found:
        _found.clear()
        task = data_task(project, run_dir)
        _found[key] = read_rows(project.root, data, task, whole=whole)
    return _found[key]


def _out_of_core(project: Project, run_dir: Path, *, in_memory: bool) -> tuple[Dataset, str]:
    data = engine_data(project, run_dir)  # the configured files, or the run's split
    version = pulled_version(project, run_dir)
    found = _engine_rows(project, run_dir)
    holdout = None
    if in_memory:
        if found.holdout_rows > data.streaming_rows:
            raise DataError(
                f"the holdout {data.holdout.file} has {found.holdout_rows:,} rows, more than "
                f"data.streaming_rows ({data.streaming_rows:,}), too many to load into memory "
                "for this step; raise data.streaming_rows if the machine has the memory, or "
                "give a smaller data.holdout.file."
            )
        holdout = read_table(project.root / str(data.holdout.file))
    identity = read_record(run_dir / rundir.PULL, PullRecord).row_identity
    paths = (project.root / data.path, project.root / str(data.holdout.file))
    dataset = with_holdout(
        found.train.copy(),
        holdout,
        data,
        identity,
        paths,
        task=data_task(project, run_dir),
        counts=found.counts,
    )
    return replace(dataset, train_sample=found.sample), version


def data_task(project: Project, run_dir: Path) -> Task:
    """``data.task``, else the task the data gates found (data-report.json)."""
    if project.config.data.task is not None:
        return project.config.data.task
    return read_record(rundir.require(run_dir, rundir.DATA_REPORT), DataReport).task


def _key(
    project: Project, version: str, identity: list[str] | None, data: DataConfig | None = None
) -> tuple[str, ...]:
    """What a cached dataset depends on: the project, its data settings, the data version,
    the identity columns and the files' size and mtime (``data``'s files: the run's split)."""
    data = data or project.config.data
    files = [data.path, *([data.holdout.file] if data.holdout.file else [])]
    stamps = [_stamp(project.root / name) for name in files]
    return (str(project.root), data.model_dump_json(), version, str(identity), *stamps)


def split_data(project: Project, run_dir: Path) -> DataConfig:
    """The data the out-of-core engines read (see :func:`engine_data`), made first: with no
    ``data.holdout.file``, ``data.path`` split as the pandas engine splits it into the run's
    ``split/`` (:mod:`ci_ml.engines.split`). The validate step calls it."""
    data = project.config.data
    if data.engine != "pandas" and not data.holdout.file:
        identity = read_record(run_dir / rundir.PULL, PullRecord).row_identity
        split_files(project.root, data, run_dir / rundir.SPLIT, identity)
    return engine_data(project, run_dir)


def engine_data(project: Project, run_dir: Path) -> DataConfig:
    """``data`` as the out-of-core engines read it: as configured, or — with no
    ``data.holdout.file`` — ``data.path`` and ``data.holdout.file`` naming the two files of
    the run's split (absolute paths), which the validate step wrote."""
    data = project.config.data
    if data.engine == "pandas" or data.holdout.file:
        return data
    folder = run_dir / rundir.SPLIT
    train, holdout = folder / "train.parquet", folder / "holdout.parquet"
    if not (train.is_file() and holdout.is_file()):
        raise RunDirError(
            f"{folder} holds no split of {data.path}; run 'ci-ml validate' first (it splits "
            "the data when data.holdout.file is not set)."
        )
    files = {"path": str(train.resolve())}
    held = data.holdout.model_copy(update={"file": str(holdout.resolve())})
    return data.model_copy(update={**files, "holdout": held})


def load_candidate(project: Project, run_dir: Path) -> tuple[Any, ModelCard]:
    """The trained model and its card, after checking its digest against model.json."""
    card = read_record(run_dir / rundir.MODEL_CARD, ModelCard)
    path = rundir.require(run_dir, card.model_file)
    if sha256_file(path) != card.digest:
        raise ModelFileError(
            f"{path} does not match the digest in model.json; it was changed after "
            "training — run 'ci-ml train' again."
        )
    return load_model(path, project.config.model.trusted_types), card
