"""``ci-ml.yaml``: the one config file, validated by pydantic models.

A bad file never gives a traceback: :func:`load_config` turns every problem
into a :class:`~ci_ml.errors.ConfigError` naming the file, the field, what was
found and what is allowed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ci_ml.errors import ConfigError

CONFIG_FILE = "ci-ml.yaml"
REGISTRY_ENV = "CI_ML_REGISTRY_URL"

Task = Literal["classification", "regression"]
YAML_BOOLEAN = (
    "YAML reads an unquoted yes/no, true/false or on/off as a boolean, not as text; "
    "quote the label, e.g. positive_class: 'Yes'"
)
Direction = Literal["higher", "lower"]
# the engine of the data gates (docs/data.md#data-larger-than-memory)
Engine = Literal["pandas", "duckdb", "spark"]
# engines duckdb and spark (docs/data.md#training-on-a-sample): the default training sample,
# and the holdout size above which evaluate streams (ci_ml/evaluation/outofcore.py)
TRAIN_ROWS = 1_000_000
STREAMING_ROWS = 5_000_000
MEMORY_SIZE = r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HoldoutConfig(_Strict):
    """How the holdout rows are chosen: a seeded split, or a file of their own."""

    fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    file: str | None = None
    min_class_count: int = Field(10, ge=1)  # holdout rows each class needs (classification)


class SparkConfig(_Strict):
    """Engine spark's session: a cluster's master URL or a Spark Connect server, and conf."""

    master: str | None = None  # e.g. local[2], spark://host:7077, yarn; default: Spark's own
    remote: str | None = Field(None, pattern=r"^sc://")  # Spark Connect, e.g. sc://host:15002
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _master_or_remote(self) -> SparkConfig:
        if self.master is not None and self.remote is not None:
            raise ValueError(
                "data.spark sets both master and remote; a session either runs on a master "
                "(master: local[2], spark://host:7077) or talks to a Spark Connect server "
                "(remote: sc://host:15002): keep one"
            )
        return self


class DataConfig(_Strict):
    """Where the data lives and what to learn from it."""

    path: str
    target: str
    id: list[str] | None = Field(None, min_length=1)
    task: Task | None = None
    positive_class: str | int | None = None
    drop: list[str] = Field(default_factory=list)
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    dvc_targets: list[str] | None = None
    max_overlap_percent: float = Field(0.0, ge=0, le=100)
    engine: Engine = "pandas"
    memory_limit: str = "1GB"  # engine duckdb's, e.g. 1GB, 512MB
    spark: SparkConfig = Field(default_factory=SparkConfig)  # engine spark's session
    # engines duckdb and spark: the rows the model trains on (a seeded sample), or all
    train_rows: int | Literal["all"] = Field(TRAIN_ROWS, ge=1)
    # engines duckdb and spark: a holdout of more rows is streamed, not loaded, by evaluate
    streaming_rows: int = Field(STREAMING_ROWS, ge=0)

    @field_validator("positive_class", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, value: Any) -> Any:
        # YAML reads an unquoted yes/no/true/false/on/off as a boolean, which would become 1/0
        if isinstance(value, bool):
            raise ValueError(YAML_BOOLEAN)
        return value

    @field_validator("memory_limit")
    @classmethod
    def _a_memory_size(cls, value: str) -> str:
        if not re.match(MEMORY_SIZE, value):
            raise ValueError("a size with a unit is allowed, e.g. 512MB, 1GB or 4GB")
        return value

    @model_validator(mode="after")
    def _target_not_dropped(self) -> DataConfig:
        if self.target in self.drop:
            raise ValueError(
                f"data.drop names the target column '{self.target}'; the target is never a "
                "feature, so remove it from data.drop"
            )
        return self


class ExpectationsConfig(_Strict):
    """A Great Expectations suite kept as JSON in git."""

    suite: str


class ModelConfig(_Strict):
    """The built-in trainer (estimator + params), the user's own command, or a dvc.yaml
    stage (``dvc_stage``: its name, or ``path/to/dvc.yaml:name``)."""

    estimator: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    command: str | None = None
    dvc_stage: str | None = Field(None, min_length=1)
    output: str = "model.skops"
    threshold: float = Field(0.5, gt=0, lt=1)
    trusted_types: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_way_to_train(self) -> ModelConfig:
        ways = [self.estimator, self.command, self.dvc_stage]
        if sum(way is not None for way in ways) != 1:
            raise ValueError(
                "set exactly one of 'estimator' (built-in trainer), 'command' (your own "
                "training command) or 'dvc_stage' (a stage of your dvc.yaml)"
            )
        if self.dvc_stage is not None and self.params:
            raise ValueError(
                "'params' is for the built-in trainer; a dvc_stage reads its own params "
                "(params.yaml, as its dvc.yaml declares them)"
            )
        return self

    @property
    def way(self) -> str:
        """How the model is trained: 'estimator', 'command' or 'dvc_stage'."""
        return "command" if self.command else "dvc_stage" if self.dvc_stage else "estimator"

    @property
    def output_given(self) -> bool:
        """Whether ``output`` was set in the config (a dvc_stage otherwise finds its model)."""
        return "output" in self.model_fields_set

    @property
    def writes_onnx(self) -> bool:
        """A training command or stage that writes its own ONNX model (``output`` ends in
        ``.onnx``; for a stage, the model it declares)."""
        own = self.command is not None or self.dvc_stage is not None
        return own and self.output.endswith(".onnx")


Policy = Literal["fail", "approve"]


class ChangeConfig(_Strict):
    """A change gate: the candidate vs production on the same rows, judged on the interval.

    ``margin`` is signed, in the metric's units, in the direction of "better":
    negative allows a regression of at most that much, positive requires a gain.
    """

    margin: float = 0.0
    inconclusive: Policy = "fail"


class GateConfig(_Strict):
    """One gate on one metric: bounds (``min``/``max``) and/or a ``change`` vs production."""

    metric: str
    min: float | None = None
    max: float | None = None
    change: ChangeConfig | None = None
    slices: bool = False

    @model_validator(mode="after")
    def _has_a_rule(self) -> GateConfig:
        if self.min is None and self.max is None and self.change is None:
            raise ValueError("a gate needs 'min', 'max' or 'change'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min}) is above 'max' ({self.max})")
        if self.slices and self.change is None:
            raise ValueError("'slices: true' applies a change gate per slice; add 'change'")
        return self


class ComparisonConfig(_Strict):
    """How candidate and production are compared, and the policies around it."""

    confidence: float = Field(0.95, gt=0.5, lt=1)
    resamples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0
    first_model: Literal["pass", "fail", "approve"] = "pass"
    unusable_baseline: Policy = "fail"
    fork_pull_request: Policy = "approve"
    min_rows: int = Field(100, ge=10)


class SlicesConfig(_Strict):
    """Metrics and change gates per value of some columns."""

    columns: list[str] = Field(min_length=1)
    min_size: int = Field(30, ge=2)
    # ranking metrics of a slice with a handful of one class have intervals too wide to judge
    min_class_count: int = Field(20, ge=1)


class TargetConfig(_Strict):
    """A place to tell about a new production version: the service, or your own command."""

    type: Literal["http", "command"]
    url: str | None = None
    token_env: str = "CI_ML_ADMIN_TOKEN"
    run: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> TargetConfig:
        if self.type == "http" and not self.url:
            raise ValueError("an http target needs 'url' (e.g. http://host:8000/admin/reload)")
        if self.type == "command" and not self.run:
            raise ValueError("a command target needs 'run' (the command line)")
        return self


class DeployConfig(_Strict):
    """What ``ci-ml deploy`` notifies and smoke-tests."""

    targets: list[TargetConfig] = Field(default_factory=list)
    service_url: str | None = None
    timeout: float = Field(30.0, gt=0, le=3600)
    tolerance: float = Field(1e-6, ge=0)
    smoke_rows: int = Field(20, ge=1, le=1000)


class ExportConfig(_Strict):
    """``export``: convert the candidate for serving; an export that answers differently blocks."""

    format: Literal["onnx"] = "onnx"
    tolerance: float = Field(1e-4, gt=0, le=0.1)
    numeric_dtype: Literal["float64", "float32"] = "float64"


class RegistryConfig(_Strict):
    """Where model versions and the production pointer live."""

    url: str = ".ci-ml/registry"


class Config(_Strict):
    """The whole ``ci-ml.yaml``."""

    data: DataConfig
    expectations: ExpectationsConfig | None = None
    model: ModelConfig
    metrics: list[str] = Field(default_factory=list)
    gates: list[GateConfig]
    comparison: ComparisonConfig = Field(default_factory=ComparisonConfig)
    slices: SlicesConfig | None = None
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    export: ExportConfig | None = None
    runs_dir: str = ".ci-ml/runs"

    @field_validator("gates")
    @classmethod
    def _gates_not_empty(cls, gates: list[GateConfig]) -> list[GateConfig]:
        if not gates:
            raise ValueError("the gate list is empty; a candidate with no gate would always pass")
        return gates

    @model_validator(mode="after")
    def _nothing_to_export(self) -> Config:
        # an ONNX model is evaluated, gated and served as it is: an export would be itself
        if self.export is not None and self.model.writes_onnx:
            raise ValueError(
                f"'export' converts a scikit-learn model to ONNX, but model.output "
                f"'{self.model.output}' is an ONNX model already, which ci-ml evaluates and "
                "serves as it is (nothing to convert, no parity to check); remove the "
                "'export' section"
            )
        return self

    @model_validator(mode="after")
    def _stage_has_a_holdout_file(self) -> Config:
        # the stage reads its training data itself: rows ci-ml held out of a split would be
        # rows it trained on, so the holdout must be a file the stage does not train on
        if self.model.dvc_stage is not None and self.data.holdout.file is None:
            raise ValueError(
                f"model.dvc_stage '{self.model.dvc_stage}' trains on the files its dvc.yaml "
                "names, so ci-ml cannot hold rows out of them; set data.path to the training "
                "file and data.holdout.file to the held-out rows (e.g. both outputs of a "
                "split stage)"
            )
        return self

    @model_validator(mode="after")
    def _slice_gates_have_slices(self) -> Config:
        sliced = [g.metric for g in self.gates if g.slices]
        if sliced and self.slices is None:
            raise ValueError(
                f"the gate on '{sliced[0]}' has 'slices: true' but there is no 'slices' "
                "section naming the columns; add slices: {columns: [...]}"
            )
        return self


def load_config(path: Path | str = CONFIG_FILE) -> Config:
    """Read and validate ``ci-ml.yaml``; raise ConfigError with file and field."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no config file here; create {CONFIG_FILE} at the repository root "
            "(see docs/config.md) or pass --config."
        )
    raw = _read_yaml(path)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    override = os.environ.get(REGISTRY_ENV, "").strip()
    if override:  # CI points every job at the shared registry without editing the file
        config = config.model_copy(update={"registry": RegistryConfig(url=override)})
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    silently, so a second ``gates:`` would replace the first unseen)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the safe loader refuses it itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: {problem}{where}; fix the YAML syntax.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from None
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            f"{path}: found {found}; a mapping with 'data', 'model', 'gates' is expected."
        )
    return raw


def _describe(path: Path, exc: ValidationError) -> str:
    """One sentence per problem: file, field, what was found, what is allowed."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        found = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a rule across sections: its message says which
            parts.append(message)
        elif err["type"] == "missing":
            parts.append(f"field '{field}' is missing (required)")
        elif err["type"] == "extra_forbidden":
            parts.append(
                f"field '{field}' is not a known setting (found {_short(found)}); check the "
                f"spelling{_known_here(err['loc'])}"
            )
        elif isinstance(found, bool) and err["type"] == "string_type":
            parts.append(f"field '{field}': found {found}; {YAML_BOOLEAN.split('; ')[0]}; quote it")
        else:
            parts.append(f"field '{field}': found {_short(found)}; {message}")
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return f"{path}: " + "; ".join(parts[:3]) + more + "."


def _known_here(loc: tuple[int | str, ...]) -> str:
    """'; allowed here: ...' for an unknown key: the settings of the model that holds it."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model is not None else None
            model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return ""
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; allowed here: {', '.join(names)}"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``list[GateConfig]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def dump_config(config: Config) -> str:
    """The effective config (defaults filled in) as YAML."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def gate_lines(path: Path | str) -> list[int | None]:
    """The line of each entry under ``gates:`` in the file (for annotations)."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "gates" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
