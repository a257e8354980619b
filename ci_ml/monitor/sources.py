"""The monitor's inputs: the production model with its reference rows, and the recent rows.

* The production version from the registry: its model, its card (``model.json``: feature
  schema, task, target, positive class), ``reference.parquet`` (its training rows, the
  reference of feature drift) and ``holdout-predictions.parquet`` (truth and score of each
  holdout row at its gate: the reference of prediction drift and of decay; versions
  registered by an older ci-ml lack it).
* Recent rows from a CSV or Parquet file, or a folder of them (read in name order and
  stacked). When a ``.dvc`` file tracks it (or a parent folder), it is pulled with DVC first.
* The request log of ``ci-ml serve``: JSON lines files ``requests-*.jsonl`` (``.jsonl.gz``
  too), one predicted row a line: ``{"ts", "request_id", "row_index", "model_version",
  "row": {feature: value}, "prediction"}``. The features of ``row`` are used (predictions
  are made again with the production model), and ``request_id`` with ``row_index`` (the
  row's place in its request) name the row; ``since`` keeps the requests at or after a
  time. A line that is not a JSON object with a ``row`` is counted and skipped (a log cut
  off mid-line while being written is normal).
* Outcomes that arrive on their own (``--labels`` with ``request_id``, the outcome and
  perhaps ``row_index`` but no features) are joined to the logged rows by
  :func:`labelled_rows`.

Values are coerced to what the model's feature schema says: numbers for numeric features
(text that is no number becomes missing), text for categorical ones.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml import rundir
from ci_ml.data import READERS, dvc_pull, find_dvc_file, read_table
from ci_ml.errors import BadInputError, DataError, ModelFileError
from ci_ml.evaluation.baseline import BASELINE_DIR, fetch_production
from ci_ml.monitor.decay import Labelled

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ci_ml.registry import Registry

REFERENCE = rundir.REFERENCE
HOLDOUT = rundir.HOLDOUT_PREDICTIONS
REQUEST_ID, ROW_INDEX = "request_id", "row_index"
REQUEST_PATTERNS = ("requests-*.jsonl", "requests-*.jsonl.gz")
_DURATION = re.compile(r"(\d+)\s*([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class Recent:
    """Recent rows, where they came from (a JSON-ready description), and for logged
    requests the ``request_id`` and ``row_index`` of each row."""

    frame: pd.DataFrame
    source: Mapping[str, Any] = field(default_factory=dict)
    ids: pd.DataFrame | None = None


# ------------------------------------------------------------------ files and folders


def read_recent(root: Path, path: Path, *, pull: bool = True, flag: str = "--recent") -> Recent:
    """Rows of a CSV/Parquet file or folder; DVC-pulled first when a .dvc file tracks it."""
    import pandas as pd

    full = path if path.is_absolute() else root / path
    tracked = _dvc_file(root, full)
    if pull and tracked is not None:
        dvc_pull(root, [str(tracked)])
    if not full.exists():
        raise DataError(
            f"{flag} {path}: no such file or folder; give {flag} a CSV/Parquet file or a "
            "folder of them."
        )
    if full.is_dir():
        files = sorted(p for p in full.rglob("*") if p.suffix.lower() in READERS and p.is_file())
        if not files:
            raise DataError(
                f"{full} holds no data file ({', '.join(READERS)}); point --recent at the "
                "recent data."
            )
        frame = pd.concat([read_table(p) for p in files], ignore_index=True)
    else:
        files = [full]
        frame = read_table(full)
    source = {
        "kind": "directory" if full.is_dir() else "file",
        "path": str(path),
        "files": len(files),
        "dvc": None if tracked is None else str(tracked),
    }
    return Recent(frame, source)


def _dvc_file(root: Path, full: Path) -> Path | None:
    try:
        relative = full.resolve().relative_to(root.resolve())
    except ValueError:
        return None  # outside the project: no .dvc file of ours can track it
    return find_dvc_file(root, relative)


# ------------------------------------------------------------------ the request log


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``, ``12h``, ``30m`` (back from now) or an ISO 8601 time; None for no limit."""
    if not text:
        return None
    now = now or datetime.now(UTC)
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadInputError(
            f"--since {text!r} is neither a duration (7d, 12h, 30m) nor an ISO 8601 time "
            "(2024-05-01T00:00:00Z)."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_requests(directory: Path, since: datetime | None = None) -> Recent:
    """The logged request rows in ``directory`` (at or after ``since``), oldest file first."""
    import pandas as pd

    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; give --requests the request log folder.")
    files = sorted({p for pattern in REQUEST_PATTERNS for p in directory.glob(pattern)})
    rows: list[dict[str, Any]] = []
    ids: list[tuple[Any, Any]] = []
    stats: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    for path in files:
        for entry in log_entries(path, stats):
            when = log_time(entry.get("ts"))
            if since is not None and (when is None or when < since):
                stats["before_since"] += 1
                continue
            rows.append(entry["row"])
            ids.append((entry.get(REQUEST_ID), entry.get(ROW_INDEX)))
            versions[str(entry.get("model_version"))] += 1
    if not rows:
        raise DataError(
            f"{directory} holds no logged request rows"
            + (f" since {since.isoformat()}" if since else "")
            + f" ({len(files)} requests-*.jsonl file(s)); is request logging on in ci-ml serve?"
        )
    source = {
        "kind": "requests",
        "path": str(directory),
        "files": len(files),
        "rows": len(rows),
        "skipped_lines": stats["bad"],
        "before_since": stats["before_since"],
        "since": since.isoformat() if since else None,
        "model_versions": dict(versions),
    }
    keys = pd.DataFrame.from_records(ids, columns=[REQUEST_ID, ROW_INDEX])
    if keys[REQUEST_ID].isna().all():
        return Recent(pd.DataFrame.from_records(rows), source)  # logged by an older ci-ml
    keys[ROW_INDEX] = pd.to_numeric(keys[ROW_INDEX], errors="coerce").fillna(0).astype("int64")
    return Recent(pd.DataFrame.from_records(rows), source, keys)


def log_entries(path: Path, stats: Counter[str]) -> Iterator[dict[str, Any]]:
    """The lines of one request log file that are objects with a ``row``; others counted
    in ``stats["bad"]``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
                if isinstance(entry, dict) and isinstance(entry.get("row"), dict):
                    yield entry
                else:
                    stats["bad"] += 1
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} cannot be read ({exc}).") from None


def log_time(value: Any) -> datetime | None:
    """A logged ``ts`` as an aware time; None when it is none."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------ schema


def feature_kinds(
    frame: pd.DataFrame, schema: Sequence[Mapping[str, Any]] | None
) -> dict[str, str]:
    """``{feature: "numeric" | "categorical"}`` from a model's feature schema, else the dtypes."""
    if schema:
        return {str(f["name"]): str(f.get("kind", "numeric")) for f in schema}
    return {
        str(c): "numeric" if frame[c].dtype.kind in "biuf" else "categorical" for c in frame.columns
    }


def conform(frame: pd.DataFrame, kinds: Mapping[str, str], where: str) -> pd.DataFrame:
    """The feature columns in schema order, as numbers or text; DataError if one is absent."""
    import pandas as pd

    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        raise DataError(
            f"{where} lacks the feature column(s) {', '.join(missing)} that the production "
            "model needs; monitor data with the model's schema."
        )
    out = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "numeric":
            out[name] = pd.to_numeric(column, errors="coerce")
        else:
            out[name] = as_text(column)
    return pd.DataFrame(out, index=frame.index)


def as_text(column: pd.Series) -> pd.Series:
    """Text values with NaN for missing ones, as the training data had them."""
    import numpy as np
    import pandas as pd

    if column.dtype.kind == "f" and bool((column.dropna() % 1 == 0).all()):
        column = column.astype("Int64")  # a CSV reads codes 1, 2 with a gap as 1.0, 2.0
    values = column.astype(object)
    if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        values = values.where(column.isna(), column.astype(str))
    return values.where(column.notna(), np.nan)


# ------------------------------------------------------------------ the production model


@dataclass(frozen=True)
class Production:
    """The production version: its model, card, recorded metrics, training rows and (when
    registered) its holdout predictions at the gate."""

    version: str
    digest: str
    card: Mapping[str, Any]
    metrics: Mapping[str, Any]
    model: Any
    reference: pd.DataFrame
    holdout: Labelled | None = None

    @property
    def task(self) -> str:
        return str(self.card.get("task") or "classification")

    @property
    def kinds(self) -> dict[str, str]:
        """The features: from the model's schema, else the reference's columns but the target."""
        target = [str(self.card.get("target"))]
        columns = self.reference.iloc[:0].drop(columns=target, errors="ignore")
        return feature_kinds(columns, self.card.get("feature_schema"))

    @property
    def classes(self) -> list[str]:
        """The classes the model predicts, as text (classification)."""
        found = self.card.get("classes") or getattr(self.model, "classes_", [])
        return [str(c) for c in found]

    @property
    def multiclass(self) -> bool:
        return self.task == "classification" and len(self.classes) > 2


def load_production(
    registry: Registry, dest: Path, trusted: Sequence[str] = (), reference: Path | None = None
) -> Production:
    """The production version, fetched into ``dest/baseline`` and loaded (``dest`` is made
    only when there is a production version to fetch)."""
    if reference is not None and not reference.is_file():
        raise DataError(
            f"--reference {reference}: no such file; give the production model's training "
            "rows as a CSV or Parquet file, or leave --reference out to use the version's "
            f"{REFERENCE}."
        )
    if registry.get_production() is not None:
        dest.mkdir(parents=True, exist_ok=True)
    baseline = fetch_production(registry, dest, list(trusted))
    if baseline is None:
        raise BadInputError(
            f"no model is in production in the registry at {registry.url}; there is nothing "
            "to monitor until a deployment promotes one."
        )
    if baseline.problem:
        raise ModelFileError(baseline.problem)
    current = registry.get(baseline.digest)
    fetched = dest / BASELINE_DIR
    if reference is None and REFERENCE not in current.files:
        raise DataError(
            f"production version {current.version} has no {REFERENCE} (its training rows), "
            "so there is nothing to compare with; register it again with this ci-ml or pass "
            "--reference with its training data."
        )
    classes = [str(c) for c in baseline.card.get("classes") or []]
    holdout = _holdout(fetched / HOLDOUT, classes) if HOLDOUT in current.files else None
    metrics = current.metadata.get("metrics") or {}
    frame = read_table(reference or fetched / REFERENCE)
    return Production(
        current.version, current.digest, baseline.card, metrics, baseline.model, frame, holdout
    )


def _holdout(path: Path, classes: Sequence[str] = ()) -> Labelled:
    """Truth and score of the holdout rows, as the evaluate step wrote them (multiclass:
    the class's place and one ``score[<class>]`` column per class)."""
    import numpy as np

    frame = read_table(path)
    if len(classes) > 2:
        wanted = ["truth", *(f"score[{c}]" for c in classes)]
        missing = [name for name in wanted if name not in frame.columns]
        if missing:
            raise DataError(
                f"{path} lacks the column(s) {', '.join(missing[:4])} of the model's classes; "
                "register the version again with this ci-ml."
            )
        return Labelled(
            frame["truth"].to_numpy(dtype=np.int64), frame[wanted[1:]].to_numpy(dtype=np.float64)
        )
    missing = [name for name in ("truth", "score") if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}; register the version again "
            "with this ci-ml (its evaluate step writes truth and score)."
        )
    return Labelled(
        frame["truth"].to_numpy(dtype=np.float64), frame["score"].to_numpy(dtype=np.float64)
    )


def predict_scores(production: Production, frame: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class (binary), every class's in the card's class order
    (multiclass, an (n, K) matrix), or the predicted value."""
    import numpy as np

    model = production.model
    try:
        if production.multiclass:
            known = [str(c) for c in getattr(model, "classes_", [])]
            columns = [known.index(c) for c in production.classes]
            return np.asarray(model.predict_proba(frame), dtype=np.float64)[:, columns]
        if production.task == "classification":
            classes = [str(c) for c in getattr(model, "classes_", [])]
            column = classes.index(str(production.card.get("positive_class")))
            return np.asarray(model.predict_proba(frame), dtype=np.float64)[:, column]
        return np.asarray(model.predict(frame), dtype=np.float64)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(
            f"production model {production.version} cannot predict the rows ({first})."
        ) from None
