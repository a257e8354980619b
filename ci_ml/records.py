"""The run records: every JSON file the steps hand each other, as pydantic models.

These files are the contract between CI jobs (and with the tools teams script around
them), so each has a model here, a ``schema_version`` and a published JSON Schema
(``docs/schemas/``, made by ``scripts/make_schemas.py``). :data:`RECORDS` maps each file
name to its model; :func:`load_record` / :func:`read_record` read one and
:func:`write_record` writes one atomically.

A reader accepts exactly :data:`SCHEMA_VERSION`. A record of another version, one with
no ``schema_version`` (written by a ci-ml from before versions), or a damaged one
(missing keys, wrong types, ``{}``) is a :class:`~ci_ml.errors.RunDirError` (exit 2) of
one sentence naming the file and the first bad field, and the step that writes it.

The models dump (``model_dump(mode="json")``) to the very keys, order and values the
steps wrote before versions existed, plus ``schema_version`` first. Free-form parts
(estimator params, data samples, drift details, where monitored rows came from) are
plain JSON values. Only pydantic, the standard library, ``ci_ml.rundir`` and
``ci_ml.errors`` are imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from ci_ml import rundir
from ci_ml.errors import RunDirError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

SCHEMA_VERSION: Final = 1
PR_FILE = "github-pr.json"  # publish leaves it for a fork's pull request
MONITOR_REPORT = "monitor-report.json"  # the monitor writes it into its --out folder

Task = Literal["classification", "regression"]
# fields of evaluation.json and smoke-sample.json that only a multiclass model fills, and the
# curves and changes, which a ci-ml from before them did not write
OPTIONAL_FIELDS = (
    "classes",
    "confusion",
    "per_class",
    "expected_probabilities",
    "curves",
    "changes",
    "dvc",
    "train_sample",
    "streamed",
)
Label = str | int | float | bool  # a class label as the data file holds it
RowLabel = int | str  # a holdout row's label in the data file (its row number)
Verdict = Literal["pass", "fail", "inconclusive"]
Policy = Literal["fail", "approve"]


def _require_version(schema: dict[str, Any]) -> None:
    # the default lets a step leave it out, but every file carries it: the schema says so
    schema["required"] = ["schema_version", *schema.get("required", [])]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Optional(_Shape):
    """A record with fields only some runs fill (a multiclass model's, the curves): left out
    of the file (not null) when absent, so a binary record, or an older one, keeps its keys."""

    @model_serializer(mode="wrap")
    def _omit_absent_fields(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in OPTIONAL_FIELDS:
            if name in data and data[name] is None:
                data.pop(name)
        return data


class Record(_Shape):
    """Base of every run record: ``schema_version`` first."""

    model_config = ConfigDict(json_schema_extra=_require_version)

    schema_version: Literal[1] = SCHEMA_VERSION


class PullRecord(Record):
    """pull.json (pull): what was pulled and the data version every later step checks."""

    data_path: str
    dvc_targets: list[str]
    data_version: str
    pulled_at: str
    # production's row identity columns, so that the split keeps its rows where they were
    row_identity: list[str] | None = None


# --- data-report.json --------------------------------------------------------------


class Rows(_Shape):  # the split's row counts
    train: int
    holdout: int


class Location(_Shape):  # where a rule is written, for annotations
    file: str
    line: int | None


class DataCheck(_Shape):  # a built-in check or an expectation of the GX suite
    name: str
    success: bool
    source: Literal["builtin", "suite"]
    column: str | None
    severity: Literal["critical", "warning", "info"]
    observed: JsonValue
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[JsonValue]
    details: str
    location: Location | None


class DataReport(Record):
    """data-report.json (validate): every data check, failing ones first."""

    data_version: str
    task: Task
    rows: Rows
    suite: str | None
    created_at: str
    success: bool
    failed: int
    blocking: list[str]
    checks: list[DataCheck]


# --- model.json --------------------------------------------------------------------


class NumericFeature(_Shape):
    name: str
    kind: Literal["numeric"]
    dtype: str


class CategoricalFeature(_Shape):  # with the categories seen in training
    name: str
    kind: Literal["categorical"]
    dtype: str
    categories: list[str]


class DvcStage(_Shape):
    """The ``dvc.yaml`` stage that trained a model (``model.dvc_stage``): what DVC recorded."""

    stage: str  # the stage's name, as dvc.yaml spells it
    dvc_file: str  # its dvc.yaml, relative to the project root
    # the params the stage declares, by dotted key (``train.max_iter``); a file other than
    # params.yaml prefixes its keys with the file (``train.yaml:lr``)
    params: dict[str, JsonValue]
    deps: dict[str, str]  # every dependency in dvc.lock: path (from the project root) -> hash
    outs: dict[str, str]  # every output in dvc.lock: path -> hash
    model_path: str  # the output taken as the model


class TrainSample(_Shape):  # engines duckdb/spark: `rows` of the train file's `file_rows`
    rows: int
    file_rows: int
    seed: int
    method: str


class ModelCard(_Optional, Record):
    """model.json (train): the model file's digest, params, feature schema and origin; a
    model trained by a dvc.yaml stage adds ``dvc`` (the stage, its params, dvc.lock's hashes);
    one trained on a sample of the train file (engines duckdb and spark) ``train_sample``."""

    estimator: str
    params: dict[str, JsonValue]
    configured_params: dict[str, JsonValue]
    command: str | None
    seed: int
    threshold: float
    task: Task
    target: str
    positive_class: Label | None
    classes: list[Label]
    feature_schema: list[
        Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]
    ]
    training_rows: int
    digest: str
    created_at: str
    ci_ml_version: str
    data_version: str
    git_sha: str | None
    size_bytes: int
    row_identity: list[str]  # the columns a row's identity is made of (docs/data.md)
    model_file: Literal["model.skops", "model.bundle", "model.onnx"] = "model.skops"
    dvc: DvcStage | None = None
    train_sample: TrainSample | None = None  # the training rows were a sample (docs/data.md)


# --- evaluation.json ---------------------------------------------------------------


class ChangeValue(_Shape):  # candidate vs production: the paired delta and its interval
    candidate: float
    production: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n: int


class Comparison(_Shape):  # a ChangeValue with its metric's name first
    metric: str
    candidate: float
    production: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n: int


class Operational(_Shape):  # ms per row, MB; churn only when production was predicted
    latency_p50_ms: float
    latency_p95_ms: float
    size_mb: float
    churn: float | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_churn(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if "churn" not in self.model_fields_set:  # absent (no production) is not null
            data.pop("churn", None)
        return data


class CandidateSummary(_Shape):
    digest: str
    metrics: dict[str, float]
    operational: Operational


class BaselineRef(_Shape):  # the production version; `problem` says why it was unusable
    version: str
    digest: str
    problem: str | None
    unread: bool


class BaselineSummary(BaselineRef):
    metrics: dict[str, float]
    params: dict[str, JsonValue] | None
    data_version: str | None
    # holdout rows compared, and those left out because production trained on them
    rows_compared: int | None = None
    rows_excluded: int | None = None


class SliceEntry(_Shape):  # one value of a sliced column; Bonferroni-corrected comparisons
    column: str
    value: str
    n: int
    class_counts: dict[str, int] | None  # positive and negative rows (classification)
    metrics: dict[str, float]
    comparisons: dict[str, Comparison]
    judged: bool
    reason: str


class Confusion(_Shape):  # multiclass: counts[truth][predicted] of each model, same rows
    classes: list[str]
    rows: int
    candidate: list[list[int]]
    production: list[list[int]] | None


class ClassMetrics(_Shape):
    precision: float
    recall: float
    f1: float


class PerClass(_Shape):  # multiclass: one class, both models, Bonferroni over the K classes
    label: str
    support: int
    candidate: ClassMetrics
    production: ClassMetrics | None
    comparisons: dict[str, Comparison]


CurveName = Literal["roc", "precision_recall", "calibration", "predicted_vs_actual", "residuals"]


class CurveLine(_Shape):  # one model's curve: its y at each grid point
    y: list[float | None]  # null: the model put none of the rows in this bin
    rows: list[int] | None = None  # binned curves: the rows in each bin
    mean_x: list[float | None] | None = None  # calibration: the mean prediction in each bin


class Curve(_Shape):  # both models on the same rows, on a fixed grid (docs/report.md#curves)
    name: CurveName
    x: str  # what the grid holds, e.g. "fpr"
    y: str  # what each line holds, e.g. "tpr"
    average: str | None  # multiclass: how the classes' curves were made one
    grid: list[float]
    candidate: CurveLine
    production: CurveLine | None


class Difference(_Shape):  # one key the two records differ on; null on the side without it
    key: str
    change: Literal["added", "removed", "changed"]
    production: JsonValue
    candidate: JsonValue


class Aspect(_Shape):  # one part of the two model.json records; `problem`: why not compared
    problem: str | None
    changed: list[Difference]
    unchanged: int


class Changes(_Shape):
    """What changed from production's model.json (its registry record) to the candidate's
    (docs/report.md#what-changed): only the keys that differ, and a count of the rest."""

    production: str  # the version compared with
    model: Aspect  # the estimator and how it was trained
    params_source: Literal["dvc_stage", "config"]  # the stage's params, or ci-ml.yaml's
    params: Aspect
    data_version: Aspect
    training_rows: Aspect
    features: Aspect  # feature columns: added, removed, kind or dtype changed
    dvc_deps: Aspect | None  # dvc.lock's dependencies; null when neither used a dvc stage


class ModelSummary(_Shape):
    estimator: str
    params: dict[str, JsonValue]
    size_bytes: int


class Streamed(_Shape):  # engines duckdb/spark: the holdout was streamed, not loaded
    rows: int
    batch_rows: int
    passes: int  # 2 with roc_auc (DeLong's second pass)
    auc_bins: int | None  # the score histograms' bins (roc_auc; docs/statistics.md)
    left_out: list[str]  # what a streamed evaluation does not make, and what follows
    # why a slice column was not sliced (a slice gate then fails); None: a record made
    # before streamed slices, which made none
    slice_problems: list[str] | None = None


class Evaluation(_Optional, Record):
    """evaluation.json (evaluate): candidate and production on the same holdout rows.

    A multiclass model adds ``classes`` (the fixed class order), ``confusion`` and
    ``per_class``; ``curves`` (ROC, precision-recall and calibration, or predicted vs actual
    and residuals) and ``changes`` (production's params and data against the candidate's; none
    without a production model) are absent in the records of a ci-ml from before them.
    ``streamed`` is set when engine duckdb or spark streamed the holdout (docs/data.md)."""

    task: Task
    data_version: str
    rows: Rows
    positive_class: Label | None
    candidate: CandidateSummary
    baseline: BaselineSummary | None
    comparisons: dict[str, Comparison]
    slices: list[SliceEntry]
    model: ModelSummary
    created_at: str
    classes: list[str] | None = None
    confusion: Confusion | None = None
    per_class: list[PerClass] | None = None
    curves: list[Curve] | None = None
    changes: Changes | None = None
    streamed: Streamed | None = None

    @property
    def multiclass(self) -> bool:
        return self.classes is not None and len(self.classes) > 2


# --- gate-report.json --------------------------------------------------------------


class GateEntry(_Shape):  # one gate: its rule in words, the value judged, verdict and why
    name: str
    kind: Literal["data", "threshold", "change", "parity"]
    metric: str | None
    rule: str
    value: int | float | ChangeValue | None
    verdict: Verdict
    reason: str
    location: Location | None
    short: str


class CandidateRef(_Shape):  # null when the data gates stopped the run before training
    digest: str | None


class ComparisonSettings(_Shape):  # the `comparison` section of ci-ml.yaml
    confidence: float
    resamples: int
    seed: int
    first_model: Literal["pass", "fail", "approve"]
    unusable_baseline: Policy
    fork_pull_request: Policy
    min_rows: int


class GateInputs(_Shape):  # sha256 of what the gate judged: deploy refuses if any changed
    config: str | None
    data_report: str | None
    evaluation: str | None
    parity: str | None


class GateReport(Record):
    """gate-report.json (gate): the decision record that deploy verifies."""

    verdict: Verdict
    reasons: list[str]
    gates: list[GateEntry]
    candidate: CandidateRef
    baseline: BaselineRef | None
    data_version: str
    config: str
    comparison: ComparisonSettings
    inputs: GateInputs
    created_at: str


# --- parity.json, smoke-sample.json, github-pr.json --------------------------------


class ValuePair(_Shape):  # the original model's answer and the export's
    original: float
    onnx: float


class RowDiff(_Shape):
    row: RowLabel | None
    original: float
    onnx: float


class ParityRecord(Record):
    """parity.json (export): the ONNX export's answers against the original's."""

    max_abs_diff: float | None
    max_diff_row: RowLabel | None
    max_diff_values: ValuePair | None
    rows_over_tolerance: int
    first_rows_over_tolerance: list[RowDiff]
    class_flips: int
    first_flipped_rows: list[RowDiff]
    borderline_flips: int
    kind: Literal["parity"]
    format: Literal["onnx"]
    task: Task
    rows: int
    compared: str
    tolerance: float
    threshold: float | None
    rule: str
    success: bool
    numeric_dtype: Literal["float64", "float32"]
    model_digest: str
    onnx_digest: str
    onnx_size_bytes: int
    created_at: str


class SmokeSample(_Optional, Record):
    """smoke-sample.json (evaluate): holdout rows and the candidate's own answers
    (the probability of the positive class, the most probable class's for multiclass, or
    the value); a multiclass model adds every class's probability, columns in ``classes``."""

    task: Task
    records: list[dict[str, JsonValue]]
    expected: list[float]
    classes: list[str] | None = None
    expected_probabilities: list[list[float]] | None = None


class PullRequestHandoff(Record):
    """github-pr.json (report --github, fork PR): where the publisher job posts."""

    repository: str
    number: int
    head_sha: str
    status_context: str
    key: str
    run_url: str | None


# --- monitor-report.json -----------------------------------------------------------


class ProductionSummary(_Shape):  # the version monitored, with its metrics at the gate
    version: str
    digest: str
    task: Task
    target: str | None
    positive_class: Label | None
    data_version: str | None
    metrics_at_gate: dict[str, float]


class RowCount(_Shape):
    rows: int


class ReferenceRows(RowCount):  # training rows for features; `predictions` says whose for those
    predictions: Literal["holdout", "training"]
    prediction_rows: int


class RecentRows(RowCount):  # `source`: a file, a folder or the request log
    source: dict[str, JsonValue]


class LabelledRows(_Shape):  # `note` says why decay was not judged
    rows: int
    target: str
    source: dict[str, JsonValue]
    note: str | None


class DriftSettings(_Shape):
    psi: float
    wasserstein: float
    missing: float
    bins: int
    max_categories: int


class DecaySettings(_Shape):
    max_drop: float
    max_drop_by_metric: dict[str, float]
    confidence: float
    resamples: int
    seed: int
    threshold: float
    max_relative_drop: float  # share of the value at the gate, for rmse and mae


class MonitorSettings(_Shape):
    drift: DriftSettings
    decay: DecaySettings
    metrics: list[str]
    min_labelled: int


class Measure(_Shape):  # `limit` is null for information-only measures
    name: str
    threshold: float | None
    value: float
    noise_floor: float | None
    limit: float | None
    drifted: bool


class FeatureDrift(_Shape):  # a feature, its missing share, or the predictions
    feature: str
    kind: Literal["numeric", "categorical", "missing"]
    measures: list[Measure]
    reference_rows: int
    recent_rows: int
    summary: str
    details: dict[str, JsonValue]
    drifted: bool
    severity: float


class DecayEntry(_Shape):  # a metric on recent labelled rows vs its value at the gate
    metric: str
    recorded: float
    recent: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    rows: int
    gate_rows: int | None  # null: no holdout predictions, the recorded value taken as exact
    change: float  # recent - recorded, with the interval the verdict judges
    change_low: float
    change_high: float
    change_method: str
    allowed_drop: float  # in the metric's units
    allowed_drop_relative: float | None  # the share of `recorded` it is, when set as one
    limit: float
    higher_is_better: bool
    verdict: Literal["decayed", "fine", "inconclusive"]


class Problems(_Shape):  # the GitHub issues to open
    drift: bool
    decay: bool


class MonitorReport(Record):
    """monitor-report.json (monitor): feature and prediction drift, decay, the status."""

    status: Literal["fine", "drifting", "stale"]
    reasons: list[str]
    notes: list[str]  # what the check fell back on, e.g. a version without holdout predictions
    production: ProductionSummary
    reference: ReferenceRows
    recent: RecentRows
    labelled: LabelledRows
    settings: MonitorSettings
    features: list[FeatureDrift]
    predictions: list[FeatureDrift]
    decay: list[DecayEntry]
    problems: Problems
    created_at: str
    ci_ml_version: str


# --- reading and writing -----------------------------------------------------------

# --- experiments.json ----------------------------------------------------------------


class ExperimentInterval(_Shape):  # an experiment's paired difference with production
    delta: float
    ci_low: float
    ci_high: float


class ExperimentRow(_Shape):
    name: str
    rev: str  # the experiment's commit
    params: dict[str, JsonValue]  # the params it changed from the workspace's stage
    verdict: Verdict
    reasons: list[str]
    metrics: dict[str, float]  # the candidate's metrics on the holdout
    changes: dict[str, ExperimentInterval]  # vs production, per change-gated metric
    digest: str | None  # its model's sha256 (None: not evaluated)
    run_dir: str  # its run directory, relative to this one


class ExperimentsRecord(Record):
    """experiments.json (experiments): every DVC experiment judged against production on
    the same holdout rows, best first; the winner's files are the run directory's own."""

    stage: str
    confidence: float  # the configured comparison.confidence
    corrected_confidence: float  # Bonferroni over the experiments: each interval's level
    ranked_by: str  # the metric the order is by (within each verdict)
    higher_is_better: bool  # that metric's direction
    experiments: list[ExperimentRow]
    winner: str | None  # the experiment the run's files are (would be registered on pass)
    created_at: str


RECORDS: dict[str, type[Record]] = {
    rundir.PULL: PullRecord,
    rundir.DATA_REPORT: DataReport,
    rundir.MODEL_CARD: ModelCard,
    rundir.EVALUATION: Evaluation,
    rundir.GATE_REPORT: GateReport,
    rundir.PARITY: ParityRecord,
    rundir.SMOKE: SmokeSample,
    PR_FILE: PullRequestHandoff,
    MONITOR_REPORT: MonitorReport,
    rundir.EXPERIMENTS: ExperimentsRecord,
}

R = TypeVar("R", bound=Record)


def load_record(run_dir: Path, name: str) -> Record:
    """The run file ``name`` as its model in :data:`RECORDS`, or a RunDirError."""
    return read_record(run_dir / name, RECORDS[name])


def read_record(path: Path, model: type[R]) -> R:
    """The record at ``path``; a missing, unreadable, foreign or damaged file is RunDirError."""
    return validate_record(rundir.read_json(path.parent, path.name), model, path)


def read_optional(run_dir: Path, name: str, model: type[R]) -> R | None:
    """A record an earlier step may not have written: None when the file is absent."""
    path = run_dir / name
    return read_record(path, model) if path.is_file() else None


def write_record(run_dir: Path, name: str, record: Record) -> Path:
    """Write ``record`` atomically as the run file ``name``."""
    if type(record) is not RECORDS[name]:
        raise TypeError(f"{name} holds a {RECORDS[name].__name__}, not {type(record).__name__}")
    return rundir.write_json(run_dir, name, record.model_dump(mode="json"))


def validate_record(data: Any, model: type[R], path: Path) -> R:
    """``data`` (loaded from ``path``) as ``model``, or one RunDirError sentence saying why not."""
    again = f"re-run the step that writes it with this ci-ml version ('{_writer(path)}')"
    if not isinstance(data, dict):
        raise RunDirError(
            f"{path}: found {_found(data)} where a JSON object with 'schema_version' "
            f"and the record's fields belongs; {again}."
        )
    if not data:
        raise RunDirError(f"{path}: the record is empty (no 'schema_version', no field); {again}.")
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise RunDirError(
            f"{path}: field 'schema_version' is missing: an older ci-ml wrote it; {again}."
        )
    if type(version) is not int or version != SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: schema_version {version!r} is not supported "
            f"(this ci-ml reads {SCHEMA_VERSION}); {again}."
        )
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        field, problem = _first_problem(exc.errors(), data)
        raise RunDirError(f"{path}: field '{field}'{problem}; {again}.") from None


def _writer(path: Path) -> str:
    """The command that writes the file at ``path`` again."""
    if path.name == MONITOR_REPORT:
        return f"ci-ml monitor --out {path.parent}"
    if path.name == PR_FILE:
        return f"ci-ml report --github --run-dir {path.parent}"
    step = rundir.WRITTEN_BY.get(path.name, "run")
    return f"ci-ml {step} --run-dir {path.parent}"


_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "string": "text",
    "bool": "a boolean",
    "finite": "a finite number",
    "dict": "an object",
    "model": "an object",
    "list": "a list",
    "none": "null",
}


def _first_problem(errors: list[ErrorDetails], data: Any) -> tuple[str, str]:
    """The first bad field (a dotted path into the file) and what is wrong with it, e.g.
    ``("verdict", ": expected one of pass, fail, inconclusive, found 'maybe'")``."""
    located = [(_place(err, data), err) for err in errors]
    path, first = located[0]
    # a union tries each shape: prefer the shape that got further into the value
    deeper = [pair for pair in located if len(pair[0]) > len(path) and pair[0][: len(path)] == path]
    if deeper:
        path, first = deeper[0]
    same = [err for place, err in located if place == path] if not deeper else [first]
    dotted = ".".join(map(str, path)) or "(top level)"
    kind, found = first["type"], _found(first.get("input"))
    if kind in ("missing", "union_tag_not_found"):
        return dotted, " is missing"
    if kind == "extra_forbidden":
        return dotted, f" is not a field of this record (found {found})"
    if kind in ("literal_error", "union_tag_invalid"):
        ctx = first.get("ctx") or {}
        allowed = str(ctx.get("expected") or ctx.get("expected_tags") or "")
        allowed = allowed.replace("'", "").replace(" or ", ", ")
        shown = repr(ctx["tag"]) if "tag" in ctx else found
        return dotted, f": expected one of {allowed}, found {shown}"
    wanted = [_EXPECTED.get(err["type"].split("_")[0]) for err in same]
    if all(wanted):
        names = list(dict.fromkeys(w for w in wanted if w))
        either = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return dotted, f": expected {either}, found {found}"
    message = first["msg"].removeprefix("Value error, ")
    return dotted, f": {message[:1].lower()}{message[1:]} (found {found})"


def _place(err: ErrorDetails, data: Any) -> tuple[int | str, ...]:
    """The error's location as keys of the file: union member tags in ``loc`` are dropped."""
    place: list[int | str] = []
    node = data
    loc = err["loc"]
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
        elif not (i == len(loc) - 1 and err["type"] == "missing"):
            continue  # the name of a union member tried, not a key of the file
        place.append(part)
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        place.append(str((err.get("ctx") or {}).get("discriminator", "")).strip("'"))
    return tuple(place)


def _has(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _found(value: Any) -> str:
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
