"""The library API: one function per pipeline step, each reading and writing run files.

Every step takes a :class:`Project` and a run directory, so the steps can run
in separate CI jobs. Nothing here prints; callers pass ``on_step`` to hear
about progress. See DESIGN.md for the files and their writers.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ci_ml import rundir
from ci_ml.config import CONFIG_FILE, Config, load_config
from ci_ml.data import Dataset
from ci_ml.errors import RunDirError

StepHook = Callable[[str], None]


@dataclass(frozen=True)
class Project:
    """A repository with a ``ci-ml.yaml``: its root and validated config."""

    root: Path
    config: Config
    config_path: Path

    @property
    def runs_dir(self) -> Path:
        return self.root / self.config.runs_dir


def open_project(config_path: Path | str = CONFIG_FILE) -> Project:
    """Load the config; the project root is the config file's directory."""
    path = Path(config_path).resolve()
    return Project(root=path.parent, config=load_config(path), config_path=path)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def actor() -> str:
    """Who is acting: the GitHub actor inside Actions, else the local user."""
    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


# --- steps --------------------------------------------------------------------------


def pull(project: Project) -> dict[str, Any]:
    """``dvc pull`` the configured data and record its version; returns pull.json."""
    from ci_ml.data import data_version, dvc_pull, dvc_targets

    targets = dvc_targets(project.config.data, project.root)
    if targets:
        dvc_pull(project.root, targets)
    return {
        "data_path": project.config.data.path,
        "dvc_targets": targets,
        "data_version": data_version(project.root, project.config.data),
        "pulled_at": now(),
    }


def write_pull(project: Project, run_dir: Path) -> dict[str, Any]:
    record = pull(project)
    rundir.write_json(run_dir, rundir.PULL, record)
    return record


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


def load_data(project: Project, run_dir: Path) -> tuple[Dataset, str]:
    """The dataset, checked to be the version that ``pull`` recorded."""
    from ci_ml.data import data_version, load_dataset

    pulled = rundir.read_json(run_dir, rundir.PULL)["data_version"]
    current = data_version(project.root, project.config.data)
    if current != pulled:
        raise RunDirError(
            f"the data changed since 'ci-ml pull' recorded {pulled} (now {current}); "
            "start a new run with 'ci-ml run' or 'ci-ml pull'."
        )
    data = project.config.data
    files = [data.path, *([data.holdout.file] if data.holdout.file else [])]
    stamps = [_stamp(project.root / name) for name in files]
    key = (str(project.root), data.model_dump_json(), current, *stamps)
    if key not in _loaded:
        _loaded.clear()
        _loaded[key] = load_dataset(project.root, project.config.data)
    return _loaded[key], current


def validate(project: Project, run_dir: Path) -> dict[str, Any]:
    """Built-in checks and the GX suite; writes data-report.json."""
    import pandas as pd

    from ci_ml import quality

    dataset, version = load_data(project, run_dir)
    checks = quality.builtin_checks(dataset, project.config.data)
    suite = project.config.expectations
    if suite is not None:
        frame = pd.concat([dataset.train, dataset.holdout], ignore_index=True)
        checks += quality.run_suite(frame, project.root / suite.suite, suite.suite)
    extra = {
        "data_version": version,
        "task": dataset.task,
        "rows": {"train": len(dataset.train), "holdout": len(dataset.holdout)},
        "suite": suite.suite if suite else None,
        "created_at": now(),
    }
    record = quality.report(checks, extra)
    rundir.write_json(run_dir, rundir.DATA_REPORT, record)
    return record


def train(project: Project, run_dir: Path) -> dict[str, Any]:
    """Fit the candidate (built-in or user command); writes model.skops + model.json."""
    from ci_ml import training
    from ci_ml.errors import GateBlocked

    data_report = rundir.read_json(run_dir, rundir.DATA_REPORT)
    if not data_report["success"]:
        raise GateBlocked(
            f"data gates failed ({', '.join(data_report['blocking'])}); "
            f"not training — see {run_dir / rundir.DATA_REPORT}."
        )
    dataset, version = load_data(project, run_dir)
    model_cfg = project.config.model
    model_path = run_dir / rundir.MODEL
    if model_cfg.command:
        model, digest = training.train_command(
            model_cfg, dataset, project.root, run_dir, model_path
        )
    else:
        model, digest = training.train_builtin(model_cfg, dataset, model_path)
    extra = {
        "data_version": version,
        "git_sha": training.git_sha(project.root),
        "size_bytes": model_path.stat().st_size,
    }
    card = training.model_card(model_cfg, dataset, model, digest, extra)
    rundir.write_json(run_dir, rundir.MODEL_CARD, card)
    return card


def load_candidate(project: Project, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The trained model, after checking its digest against model.json."""
    from ci_ml.errors import ModelFileError
    from ci_ml.modelio import load_model, sha256_file

    card = rundir.read_json(run_dir, rundir.MODEL_CARD)
    path = rundir.require(run_dir, rundir.MODEL)
    if sha256_file(path) != card["digest"]:
        raise ModelFileError(
            f"{path} does not match the digest in model.json; it was changed after "
            "training — run 'ci-ml train' again."
        )
    return load_model(path, project.config.model.trusted_types), card


def evaluate(project: Project, run_dir: Path) -> dict[str, Any]:
    """Candidate and production on the same holdout rows; writes metrics.json, evaluation.json."""
    from ci_ml import comparison, evaluation
    from ci_ml.baseline import fetch_production, predict_baseline, unread_in_fork
    from ci_ml.errors import CredentialsMissing
    from ci_ml.gates import check_gate_metrics
    from ci_ml.registry import open_registry

    config = project.config
    model, card = load_candidate(project, run_dir)
    dataset, version = load_data(project, run_dir)
    check_gate_metrics(config, dataset.task)
    names = evaluation.metric_names(config, dataset.task)
    cand = evaluation.predict(model, dataset)
    metrics = evaluation.candidate_metrics(config, dataset, cand)
    ops: dict[str, Any] = comparison.latency_ms(model, dataset.x("holdout"), dataset.task)
    ops["size_mb"] = card["size_bytes"] / 1e6
    registry = open_registry(config.registry.url, root=project.root)
    try:
        baseline = fetch_production(registry, run_dir, config.model.trusted_types)
    except CredentialsMissing as exc:
        baseline = unread_in_fork(exc)
    prod, compared = None, {}
    if baseline is not None:
        prod, baseline = predict_baseline(baseline, dataset)
    if prod is not None:
        compared = comparison.compare_overall(config, dataset, names, cand, prod)
        ops["churn"] = comparison.churn(cand, prod, dataset.task, config.model.threshold)
    record = {
        "task": dataset.task,
        "data_version": version,
        "rows": {"train": len(dataset.train), "holdout": len(dataset.holdout)},
        "positive_class": card.get("positive_class"),
        "candidate": {"digest": card["digest"], "metrics": metrics, "operational": ops},
        "baseline": _baseline_summary(baseline, compared),
        "comparisons": compared,
        "slices": comparison.compare_slices(config, dataset, names, cand, prod),
        "model": {k: card.get(k) for k in ("estimator", "params", "size_bytes")},
        "created_at": now(),
    }
    rundir.write_json(run_dir, rundir.SMOKE, smoke_sample(config, dataset, cand))
    write_reference(dataset, run_dir)
    rundir.write_json(run_dir, rundir.METRICS, {**metrics, **_present(ops)})
    rundir.write_json(run_dir, rundir.EVALUATION, record)
    return record


def smoke_sample(config: Config, dataset: Dataset, cand: Any) -> dict[str, Any]:
    """Holdout rows and the candidate's own answers: deploy checks the service gives them."""
    from ci_ml.quality import jsonable

    n = min(config.deploy.smoke_rows, len(dataset.holdout))
    rows = dataset.x("holdout").head(n).to_dict(orient="records")
    return {
        "task": dataset.task,
        "records": jsonable(rows),
        "expected": [float(v) for v in cand.score[:n]],
    }


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _baseline_summary(baseline: Any, compared: dict[str, Any]) -> dict[str, Any] | None:
    if baseline is None:
        return None
    return {
        "version": baseline.version,
        "digest": baseline.digest,
        "problem": baseline.problem,
        "unread": baseline.unread,
        "metrics": {name: c["production"] for name, c in compared.items()},
        "params": baseline.card.get("params"),
        "data_version": baseline.card.get("data_version"),
    }


def gate(project: Project, run_dir: Path) -> dict[str, Any]:
    """Apply the gates; writes gate-report.json (the decision record)."""
    from ci_ml import decide, gates

    data_report = rundir.read_json(run_dir, rundir.DATA_REPORT)
    results = [gates.data_gate(data_report)]
    evaluation = None
    if data_report["success"] or (run_dir / rundir.EVALUATION).is_file():
        evaluation = rundir.read_json(run_dir, rundir.EVALUATION)
        gates.check_gate_metrics(project.config, evaluation["task"])
        results += decide.model_gates(project, evaluation)
        if project.config.export is not None:
            results.append(decide.parity_gate_for(run_dir, evaluation))
    verdict = gates.verdict(results)
    baseline = (evaluation or {}).get("baseline")
    record = {
        "verdict": verdict,
        "reasons": [r.reason for r in results if r.verdict != gates.PASS],
        "gates": gates.as_dicts(results),
        "candidate": {"digest": (evaluation or {}).get("candidate", {}).get("digest")},
        "baseline": {k: baseline.get(k) for k in ("version", "digest", "problem", "unread")}
        if baseline
        else None,
        "data_version": data_report.get("data_version"),
        "config": str(project.config_path.name),
        "comparison": project.config.comparison.model_dump(),
        "created_at": now(),
    }
    rundir.write_json(run_dir, rundir.GATE_REPORT, record)
    return record


def export(project: Project, run_dir: Path) -> dict[str, Any]:
    """Export the candidate to ONNX and check parity on the holdout (model.onnx, parity.json)."""
    from ci_ml.export import export_run

    settings = project.config.export
    if settings is None:
        raise RunDirError("ci-ml.yaml has no 'export' section; nothing to export.")
    result: dict[str, Any] = export_run(
        project, run_dir, settings.tolerance, settings.numeric_dtype
    )
    return result


def report(project: Project, run_dir: Path, links: dict[str, str] | None = None) -> str:
    """Render report.md from the run files; returns the Markdown."""
    from ci_ml import report as render

    gate_report = rundir.read_json(run_dir, rundir.GATE_REPORT)
    data_report = _optional(run_dir, rundir.DATA_REPORT)
    evaluation = _optional(run_dir, rundir.EVALUATION)
    text = render.render(gate_report, data_report, evaluation, links)
    rundir.write_text(run_dir / rundir.REPORT, text)
    return text


def _optional(run_dir: Path, name: str) -> Any:
    return rundir.read_json(run_dir, name) if (run_dir / name).is_file() else None


def register(project: Project, run_dir: Path, registry: Any = None) -> Any:
    """Register a passing candidate (model, card, decision record, reference rows).

    Needs only the run files, so the deploy job can register an artifact made elsewhere.
    """
    from ci_ml.errors import GateBlocked
    from ci_ml.registry import open_registry

    gate_report = rundir.read_json(run_dir, rundir.GATE_REPORT)
    if gate_report["verdict"] == "fail":
        raise GateBlocked("the candidate's verdict is fail; not registering.")
    card = rundir.read_json(run_dir, rundir.MODEL_CARD)
    names = [rundir.MODEL, rundir.MODEL_CARD, rundir.GATE_REPORT, rundir.REFERENCE]
    if project.config.export is not None:
        names += [rundir.ONNX, rundir.PARITY]  # required when configured: fail closed
    files = {name: rundir.require(run_dir, name) for name in names}
    metadata = {
        **{
            k: card.get(k)
            for k in (
                "estimator",
                "params",
                "data_version",
                "git_sha",
                "feature_schema",
                "task",
                "target",
                "positive_class",
            )
        },
        "metrics": rundir.read_json(run_dir, rundir.METRICS),
        "verdict": gate_report["verdict"],
    }
    if registry is None:
        registry = open_registry(project.config.registry.url, root=project.root)
    return registry.register(files, metadata, by=actor())


REFERENCE_ROWS = 200_000


def write_reference(dataset: Dataset, run_dir: Path) -> Path:
    """The model's training rows (a seeded sample of at most 200,000), for drift monitoring."""
    train = dataset.train
    if len(train) > REFERENCE_ROWS:
        train = train.sample(REFERENCE_ROWS, random_state=0)
    path = run_dir / rundir.REFERENCE
    with rundir.atomic_path(path) as tmp:
        train.to_parquet(tmp, index=False)
    return path


STEPS: list[tuple[str, Callable[[Project, Path], Any]]] = [
    ("pull", write_pull),
    ("validate", validate),
    ("train", train),
    ("evaluate", evaluate),
    ("export", export),
    ("gate", gate),
    ("report", report),
]


def run(project: Project, run_dir: Path, on_step: StepHook | None = None) -> dict[str, Any]:
    """All steps in order; a data-gate failure skips training but still gates and reports."""
    hook = on_step or (lambda _name: None)
    results: dict[str, Any] = {}
    for name, step in STEPS:
        if name == "export" and project.config.export is None:
            continue
        if name in ("train", "evaluate", "export") and not results["validate"]["success"]:
            continue
        hook(name)
        results[name] = step(project, run_dir)
    if results["gate"]["verdict"] != "fail":
        hook("register")
        results["register"] = register(project, run_dir)
    return results
