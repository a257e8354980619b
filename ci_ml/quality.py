"""Data gates: built-in checks that need no suite, plus a Great Expectations suite.

Every check becomes one :class:`Check` in ``data-report.json``. A check that
fails with severity ``critical`` blocks the candidate; ``warning`` and ``info``
are reported but do not block (GX's own ``success`` flag is false even when only
warnings failed, so ci-ml decides by the highest failed severity instead).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml.config import DataConfig
from ci_ml.data import Dataset, row_keys
from ci_ml.errors import ConfigError, MissingExtra

if TYPE_CHECKING:
    import pandas as pd

SEVERITIES = ("critical", "warning", "info")
SAMPLE_SIZE = 5


@dataclass(frozen=True)
class Check:
    """One data check and its result, as written to ``data-report.json``."""

    name: str
    success: bool
    source: str = "builtin"
    column: str | None = None
    severity: str = "critical"
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    sample: list[Any] = field(default_factory=list)
    details: str = ""
    location: dict[str, Any] | None = None

    @property
    def blocking(self) -> bool:
        return not self.success and self.severity == "critical"


def builtin_checks(dataset: Dataset, config: DataConfig) -> list[Check]:
    """Checks every dataset gets: not empty, target valid, every class on both sides of the
    split, no train/holdout overlap."""
    return [
        _not_empty(dataset),
        _target_valid(dataset),
        _train_classes(dataset),
        _holdout_classes(dataset),
        _holdout_class_counts(dataset, config.holdout.min_class_count),
        _overlap(dataset, config.max_overlap_percent),
    ]


def _not_empty(dataset: Dataset) -> Check:
    rows = {"train": len(dataset.train), "holdout": len(dataset.holdout)}
    ok = rows["train"] > 0 and rows["holdout"] > 0
    return Check("dataset_not_empty", ok, observed=rows, details="train and holdout need rows")


def _target_valid(dataset: Dataset) -> Check:
    import numpy as np
    import pandas as pd

    target = pd.concat([dataset.y("train"), dataset.y("holdout")], ignore_index=True)
    if dataset.task == "regression":
        numeric = pd.to_numeric(target, errors="coerce")
        bad = target[~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))]
        rule = "target values must be finite numbers"
    else:
        bad = target[target.isna()]
        rule = "every row needs a label"
    return _column_check("target_valid", dataset.target, bad, len(target), rule)


def _holdout_classes(dataset: Dataset) -> Check:
    return _classes_on(dataset, "holdout", "to compute ranking metrics")


def _train_classes(dataset: Dataset) -> Check:
    return _classes_on(dataset, "train", "to learn them (too few rows of a class?)")


def _classes_on(dataset: Dataset, part: str, why: str) -> Check:
    """Every class of the data has rows on this side of the split."""
    name = f"{part}_has_every_class"
    if dataset.task != "classification":
        return Check(name, True, details="regression: not applicable")
    seen = set(dataset.y(part).dropna().tolist())
    every = seen | set(dataset.y("holdout" if part == "train" else "train").dropna().tolist())
    missing = sorted(map(str, every - seen))
    return Check(
        name,
        not missing,
        column=dataset.target,
        observed=sorted(map(str, seen)),
        sample=missing,
        details=f"the {part} rows must contain every class {why}",
    )


def _holdout_class_counts(dataset: Dataset, minimum: int) -> Check:
    """Every class has at least ``minimum`` holdout rows: fewer judge it on noise alone."""
    name = "holdout_class_counts"
    if dataset.task != "classification":
        return Check(name, True, details="regression: not applicable")
    counts = dataset.y("holdout").dropna().astype(str).value_counts()
    every = {label: int(counts.get(label, 0)) for label in dataset.classes}
    return class_counts_check(every, dataset.target, minimum)


def class_counts_check(every: dict[str, int], target: str, minimum: int) -> Check:
    """``holdout_class_counts`` from each class's holdout rows (every engine's)."""
    few = sorted((n, label) for label, n in every.items() if n < minimum)
    return Check(
        "holdout_class_counts",
        not few,
        column=target,
        observed=every,
        sample=[f"{label}: {n}" for n, label in few[:SAMPLE_SIZE]],
        details=(
            f"every class needs at least data.holdout.min_class_count ({minimum}) holdout rows "
            "for its metrics to mean anything; add rows of the rare classes or a larger "
            "data.holdout.fraction"
        ),
    )


def _overlap(dataset: Dataset, max_percent: float) -> Check:
    import numpy as np

    train_keys = row_keys(dataset.train, dataset.features)
    holdout_keys = row_keys(dataset.holdout, dataset.features)
    leaked = np.isin(holdout_keys, train_keys)
    count = int(leaked.sum())
    percent = 100.0 * count / max(1, len(holdout_keys))
    sample = dataset.holdout.loc[leaked, dataset.features].head(SAMPLE_SIZE)
    return Check(
        "train_holdout_overlap",
        percent <= max_percent,
        observed=f"{count} of {len(holdout_keys)} holdout rows also in train",
        unexpected_count=count,
        unexpected_percent=round(percent, 4),
        sample=jsonable(sample.to_dict(orient="records")),
        details=f"allowed: at most {max_percent}% (data.max_overlap_percent)",
    )


def _column_check(name: str, column: str, bad: pd.Series, total: int, rule: str) -> Check:
    count = len(bad)
    return Check(
        name,
        count == 0,
        column=column,
        unexpected_count=count,
        unexpected_percent=round(100.0 * count / max(1, total), 4),
        sample=jsonable(bad.head(SAMPLE_SIZE).tolist()),
        details=rule,
    )


def jsonable(value: Any) -> Any:
    """NaN and numpy scalars made JSON-safe (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# --- Great Expectations ------------------------------------------------------------

# the keys a suite entry may have (what GX writes when it saves a suite)
ENTRY_KEYS = (
    "type",
    "kwargs",
    "severity",
    "meta",
    "notes",
    "description",
    "id",
    "rendered_content",
)
# fields of a GX expectation that are not kwargs a suite author sets
_NOT_KWARGS = {*ENTRY_KEYS, "windows", "batch_id"}
_TYPE_KEY = re.compile(r'"type"\s*:\s*"expect_')


def read_suite(path: Path) -> dict[str, Any]:
    """Load a suite JSON and check every entry: its keys, severity, type and kwargs (GX drops
    unknown types silently and fails on bad kwargs only when the suite runs)."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: expectation suite not found; fix expectations.suite in ci-ml.yaml."
        )
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}).") from None
    items = suite.get("expectations") if isinstance(suite, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: a suite needs a non-empty 'expectations' list.")
    for number, item in enumerate(items, start=1):
        _check_entry(path, number, item)
    classes = _expectation_classes(path, items)
    for number, (item, cls) in enumerate(zip(items, classes, strict=True), start=1):
        _check_kwargs(path, number, item, cls)
    return suite


def _check_entry(path: Path, number: int, item: Any) -> None:
    """An entry is a mapping with a 'type', known keys, a kwargs mapping and a severity."""
    where = f"{path}: expectation #{number}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} is {_short(item)}, not a mapping with 'type' and 'kwargs'.")
    if not isinstance(item.get("type"), str):
        raise ConfigError(f"{where} has no 'type' (e.g. \"expect_column_values_to_not_be_null\").")
    where += f" ({item['type']})"
    unknown = [str(k) for k in item if k not in ENTRY_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], ENTRY_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where} has the unknown key '{unknown[0]}'{hint}; allowed: {', '.join(ENTRY_KEYS)}."
        )
    if not isinstance(item.get("kwargs", {}), dict):
        raise ConfigError(
            f"{where} has kwargs {_short(item['kwargs'])}; "
            "kwargs must be a mapping of argument names to values."
        )
    severity = item.get("severity", "critical")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where} has severity {severity!r}; allowed: {', '.join(SEVERITIES)}.")


def _expectation_classes(path: Path, items: list[dict[str, Any]]) -> list[type]:
    """GX's class for each entry's type; every unknown type is named at once."""
    import_gx(path)
    from great_expectations.expectations.registry import get_expectation_impl

    classes, unknown = [], []
    for number, item in enumerate(items, start=1):
        try:
            classes.append(get_expectation_impl(item["type"]))
        except Exception:
            unknown.append(f"#{number} {item['type']!r}")
    if unknown:
        raise ConfigError(
            f"{path}: {len(unknown)} unknown expectation type(s): {', '.join(unknown)}; "
            "GX would silently drop them, so ci-ml refuses the suite (see the GX gallery "
            "for the type names)."
        )
    return classes


def _check_kwargs(path: Path, number: int, item: dict[str, Any], cls: type) -> None:
    """Build the expectation as GX will, so that a bad kwarg is named now, not at run time."""
    kwargs = item.get("kwargs", {})
    try:
        cls(**kwargs)
    except Exception as exc:
        where = f"{path}: expectation #{number} ({item['type']})"
        raise ConfigError(_kwarg_problem(where, exc, kwargs, cls)) from None


def _kwarg_problem(where: str, exc: Exception, kwargs: dict[str, Any], cls: type) -> str:
    """One sentence about the first problem GX's (pydantic v1) validation found."""
    found = getattr(exc, "errors", None)
    errors: list[dict[str, Any]] = list(found()) if callable(found) else []
    allowed = [f for f in getattr(cls, "__fields__", {}) if f not in _NOT_KWARGS]
    rank = {"value_error.missing": 0, "value_error.extra": 1}
    named = [e for e in errors if e.get("loc") and e["loc"][0] != "__root__"]
    if not named:
        text = errors[0]["msg"] if errors else _first_line(exc)
        return f"{where}: {text}; fix its kwargs."
    error = min(named, key=lambda e: rank.get(e.get("type", ""), 2))
    name = str(error["loc"][0])
    if error.get("type") == "value_error.missing":
        return f"{where} lacks the required kwarg '{name}'; add it to the entry's kwargs."
    if error.get("type") == "value_error.extra":
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where} has the unknown kwarg '{name}'{hint}; allowed: {', '.join(allowed)}."
    return (
        f"{where} has kwarg '{name}' = {_short(kwargs.get(name))}, which GX refuses "
        f"({error['msg']}); fix it in the suite."
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def import_gx(path: Path) -> Any:
    """``great_expectations``, or MissingExtra naming the ``gx`` extra."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    try:
        with warnings.catch_warnings():
            # GX imports PySpark when it is installed (the spark extra); PySpark 4 warns that
            # it does not fully support pandas 3, which ci-ml never hands it
            warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
            import great_expectations
    except ImportError as exc:
        raise MissingExtra(f"{path}: the expectation suite", "gx", exc.name) from None
    return great_expectations


def suite_lines(path: Path) -> list[int]:
    """Line number of each expectation's ``"type"`` key, in order (for annotations)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        lines += [number] * len(_TYPE_KEY.findall(line))
    return lines


def run_suite(frame: pd.DataFrame, path: Path, shown_as: str | None = None) -> list[Check]:
    """Validate ``frame`` against the suite at ``path`` with an ephemeral GX context.

    Each result is matched to its suite entry by an id ci-ml gives the entry (GX returns the
    results grouped by column, not in suite order); an entry GX returned no result for is a
    failed critical check. ``shown_as`` is the repo-relative path recorded for annotations
    (default: ``path``).
    """
    return suite_checks(path, shown_as, lambda suite, ids: _validate(frame, suite, ids, path))


# how an engine validates a suite: (suite JSON, an id per entry) -> GX's results
Validator = Callable[[dict[str, Any], list[str]], list[Any]]
# how a GX result becomes a Check: (suite entry, result, location) -> Check
Converter = Callable[[dict[str, Any], Any, dict[str, Any]], "Check"]


def suite_checks(
    path: Path, shown_as: str | None, validate: Validator, convert: Converter | None = None
) -> list[Check]:
    """The suite at ``path`` validated by ``validate`` (any engine's GX datasource), one
    Check per entry in suite order (:func:`run_suite`)."""
    suite_json = read_suite(path)
    entries = suite_json["expectations"]
    ids = [str(uuid.uuid4()) for _ in entries]
    results: dict[str | None, Any] = {}
    for result in validate(suite_json, ids):
        results.setdefault(getattr(result.expectation_config, "id", None), result)
    lines = suite_lines(path)
    checks = []
    for i, (item, key) in enumerate(zip(entries, ids, strict=True)):
        line = lines[i] if i < len(lines) else None
        where = {"file": shown_as or str(path), "line": line}
        result = results.get(key)
        checks.append(
            (convert or from_gx)(item, result, where) if result else _no_result(item, where)
        )
    return checks


def _validate(
    frame: pd.DataFrame, suite_json: dict[str, Any], ids: list[str], path: Path
) -> list[Any]:
    gx, context = gx_context(path)
    from great_expectations.execution_engine import pandas_execution_engine

    # GX hashes the whole frame on every run unless this private threshold is 0
    # (1.7-3x faster at millions of rows); the gx extra pins the minor version.
    pandas_execution_engine.HASH_THRESHOLD = 0
    batch = (
        context.data_sources.add_pandas("ci_ml")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(gx_suite(gx, suite_json, ids), result_format="SUMMARY")
    return list(result.results)


def gx_context(path: Path) -> tuple[Any, Any]:
    """``great_expectations`` and an ephemeral context that keeps nothing and shows no bars."""
    gx = import_gx(path)
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    project = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx, gx.get_context(mode="ephemeral", project_config=project)


def gx_suite(gx: Any, suite_json: dict[str, Any], ids: list[str]) -> Any:
    """GX's suite of the entries, each with the id ci-ml matches its result by."""
    items = [{**e, "id": key} for e, key in zip(suite_json["expectations"], ids, strict=True)]
    return gx.ExpectationSuite(name=str(suite_json.get("name", "suite")), expectations=items)


def from_gx(item: dict[str, Any], result: Any, location: dict[str, Any]) -> Check:
    """The Check of one GX result."""
    config = result.expectation_config
    info = dict(result.result or {})
    exception = (result.exception_info or {}).get("exception_message")
    sample = info.get("partial_unexpected_list") or []
    return Check(
        name=item["type"],
        success=bool(result.success),
        source="suite",
        column=config.kwargs.get("column"),
        severity=item.get("severity", "critical"),
        observed=jsonable(info.get("observed_value")),
        unexpected_count=info.get("unexpected_count"),
        unexpected_percent=jsonable(info.get("unexpected_percent")),
        sample=jsonable(list(sample)[:SAMPLE_SIZE]),
        details=exception or _kwargs_text(config.kwargs),
        location=location,
    )


def _no_result(item: dict[str, Any], location: dict[str, Any]) -> Check:
    """An entry GX gave no result for: its outcome is unknown, so it blocks (fail closed)."""
    return Check(
        name=item["type"],
        success=False,
        source="suite",
        column=item.get("kwargs", {}).get("column"),
        severity="critical",
        details="Great Expectations returned no result for this expectation; "
        "ci-ml counts an unknown outcome as a failure.",
        location=location,
    )


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if k not in ("column", "batch_id")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def report(checks: list[Check], extra: dict[str, Any]) -> dict[str, Any]:
    """The ``data-report.json`` content: failing checks first."""
    ordered = sorted(checks, key=lambda c: (c.success, SEVERITIES.index(c.severity)))
    return {
        **extra,
        "success": not any(c.blocking for c in checks),
        "failed": sum(not c.success for c in checks),
        "blocking": [c.name for c in checks if c.blocking],
        "checks": [asdict(c) for c in ordered],
    }
