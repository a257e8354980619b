"""The evaluate step's records for a binary or regression holdout streamed from a Parquet file.

Engines duckdb and spark stream a holdout of more than ``data.streaming_rows`` rows instead
of loading it (docs/data.md, "Evaluating a holdout larger than memory"). Each record batch
is predicted by the candidate and production and reduced by two
:class:`~ci_ml.evaluation.streaming.BinaryStream` (regression: two
:class:`~ci_ml.evaluation.streaming.RegressionStream`, one pass): the candidate against
itself on every row (its own metrics, as the in-memory evaluate computes them on the whole
holdout) and the candidate against production on the rows production did not train on (the
paired comparison, as :func:`ci_ml.evaluation.baseline.fresh_rows` chooses them). With
roc_auc the file is read and predicted a second time (DeLong's second pass). Made in the
same passes: the churn (binary: from the joint confusion counts), latency (on the first
rows), the smoke sample (the first rows) and a seeded sample of the candidate's holdout
predictions for the monitor.

The slices are reduced in the same passes (:mod:`ci_ml.evaluation.sliced`); a column it
cannot slice is named in ``streamed.slice_problems`` (a slice gate then fails,
:func:`ci_ml.decide.model_gates`). Left out, and said so in ``streamed.left_out``: the
curves. Multiclass holdouts are not streamed (:func:`check_streamable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ci_ml.config import Config
from ci_ml.data import Dataset
from ci_ml.errors import DataError, ModelFileError
from ci_ml.evaluation import compare
from ci_ml.evaluation.baseline import Baseline, fresh_rows, schema_problem
from ci_ml.evaluation.changes import changes
from ci_ml.evaluation.outofcore import (
    DEFAULT_BATCH_ROWS,
    Scorer,
    open_parquet,
    positive_proba,
    predicted_values,
)
from ci_ml.evaluation.predict import Predictions, metric_names
from ci_ml.evaluation.record import Evaluated, baseline_summary
from ci_ml.evaluation.sliced import StreamedSlices
from ci_ml.evaluation.streaming import DEFAULT_BINS, BinaryStream, RegressionStream
from ci_ml.quality import jsonable
from ci_ml.records import Evaluation, ModelCard, SmokeSample

PREDICTIONS_SAMPLE_ROWS = 200_000  # the candidate's holdout predictions kept for the monitor
LATENCY_ROWS = compare.LATENCY_BATCH * compare.LATENCY_MAX_BATCHES
CHURN_CELLS = [1, 2, 5, 6]  # joint cells 4·truth + 2·candidate + production where labels differ


@dataclass(frozen=True)
class StreamedHoldout:
    """The holdout as one Parquet file, its row count and the batch size to read it in."""

    path: Path
    rows: int
    batch_rows: int = DEFAULT_BATCH_ROWS
    bins: int = DEFAULT_BINS


def check_streamable(dataset: Dataset, rows: int, limit: int) -> None:
    """DataError unless the holdout's task can be streamed (binary classification or
    regression)."""
    if not dataset.multiclass:
        return
    raise DataError(
        f"the holdout has {rows:,} rows, more than data.streaming_rows ({limit:,}), and "
        "a multiclass comparison cannot be streamed yet; raise data.streaming_rows to "
        "evaluate it in memory, or give a smaller data.holdout.file."
    )


def evaluate_streamed(
    config: Config,
    train: Dataset,
    holdout: StreamedHoldout,
    data_version: str,
    model: Any,
    card: ModelCard,
    baseline: Baseline | None,
    created_at: str,
) -> Evaluated:
    """Candidate and production on the streamed holdout (see the module doc); ``train`` is
    the dataset of the training rows (no holdout rows: its columns, classes, identity)."""
    names = metric_names(config, train.task)
    stream = _Stream(config, train, holdout, model, baseline, names)
    stream.run()
    confidence, comparison = config.comparison.confidence, config.comparison
    own = stream.own.comparisons(confidence, 1, comparison.seed)
    metrics = {name: own[name].candidate for name in names}
    ops: dict[str, Any] = {**stream.latency, "size_mb": card.size_bytes / 1e6}
    compared: dict[str, Any] = {}
    baseline = stream.baseline
    if stream.paired is not None and baseline is not None:
        found = stream.paired.comparisons(confidence, comparison.resamples, comparison.seed)
        compared = {name: asdict(found[name]) for name in names}
        if isinstance(stream.paired, BinaryStream):
            cells = stream.paired.cells
            ops["churn"] = float(cells[CHURN_CELLS].sum() / cells.sum())
    record = Evaluation.model_validate(
        {
            "task": train.task,
            "data_version": data_version,
            "rows": {"train": len(train.train), "holdout": holdout.rows},
            "positive_class": card.positive_class,
            "candidate": {"digest": card.digest, "metrics": metrics, "operational": ops},
            "baseline": baseline_summary(baseline, compared, stream.fresh, holdout.rows),
            "comparisons": compared,
            "slices": stream.slice_entries(names),
            "model": card.model_dump(mode="json", include={"estimator", "params", "size_bytes"}),
            "created_at": created_at,
            "changes": changes(card, baseline.card, baseline.version) if baseline else None,
            "streamed": _streamed(config, holdout, stream),
        }
    )
    smoke = SmokeSample(task=train.task, records=jsonable(stream.smoke), expected=stream.expected)
    present = {k: v for k, v in ops.items() if v is not None}
    return Evaluated(record, {**metrics, **present}, smoke, stream.predictions())


def _streamed(config: Config, holdout: StreamedHoldout, stream: _Stream) -> dict[str, Any]:
    left_out = ["curves: not made from a streamed holdout"]
    problems = stream.slice_problems()
    if problems:
        left_out.insert(0, f"slices: {'; '.join(problems)}; a gate with 'slices: true' fails")
    return {
        "rows": holdout.rows,
        "batch_rows": holdout.batch_rows,
        "passes": stream.passes,
        "auc_bins": holdout.bins if stream.own.needs_second_pass else None,
        "left_out": left_out,
        "slice_problems": problems,
    }


class _Stream:
    """One evaluation's passes over the holdout batches and what they accumulate."""

    def __init__(
        self,
        config: Config,
        train: Dataset,
        holdout: StreamedHoldout,
        model: Any,
        baseline: Baseline | None,
        names: list[str],
    ) -> None:
        self.config, self.train, self.holdout = config, train, holdout
        self.candidate = Scorer(model, list(train.features))
        self.baseline = baseline
        self.production: Scorer | None = None
        if baseline is not None and baseline.problem is None:
            problem = schema_problem(baseline, train)
            if problem is None:
                schema = baseline.card.get("feature_schema") or []
                features = [f["name"] for f in schema] or list(train.features)
                self.production = Scorer(baseline.model, features)
            else:
                self.baseline = replace(baseline, model=None, problem=problem)
        self.own = self._reducer(names)  # the candidate against itself
        self.paired = self._reducer(names) if self.production else None
        # slices: of the rows compared with production, or of every row if it drops out
        self.own_slices, self.paired_slices = self._slices(names), None
        if self.production is not None:
            self.paired_slices = self._slices(names)
        self.fresh = 0
        self.masks: list[np.ndarray] = []
        self.passes = 0
        self.latency: dict[str, float] = {}
        self.smoke: list[dict[str, Any]] = []
        self.expected: list[float] = []
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []

    def _reducer(self, names: list[str], sparse: bool = False) -> BinaryStream | RegressionStream:
        if self.train.task == "regression":
            return RegressionStream(names)
        return BinaryStream(names, self.config.model.threshold, self.holdout.bins, sparse)

    def _slices(self, names: list[str]) -> StreamedSlices | None:
        if self.config.slices is None:
            return None
        return StreamedSlices(self.config, lambda: self._reducer(names, sparse=True))

    def _all_slices(self) -> list[StreamedSlices]:
        return [s for s in (self.own_slices, self.paired_slices) if s is not None]

    def slice_entries(self, names: list[str]) -> list[dict[str, Any]]:
        """evaluation.json's slices: on the rows compared with production, if it was."""
        slices = self.paired_slices if self.paired is not None else self.own_slices
        if slices is None:
            return []
        gated = [g.metric for g in self.config.gates if g.slices]
        return slices.entries(names, gated, self.paired is not None)

    def slice_problems(self) -> list[str]:
        """Why a slice column was not sliced (none: every slice was made)."""
        slices = self.paired_slices if self.paired is not None else self.own_slices
        return list(slices.problems.values()) if slices is not None else []

    def _predict(self, scorer: Scorer, frame: Any) -> np.ndarray:
        """The positive class's probabilities (binary) or the predicted values."""
        if self.train.task == "regression":
            return predicted_values(scorer, frame)
        return positive_proba(scorer, frame, self.train.positive_class)

    def run(self) -> None:
        rng = np.random.default_rng(self.config.comparison.seed)
        share = min(1.0, PREDICTIONS_SAMPLE_ROWS / max(1, self.holdout.rows))
        for number, (frame, y, cand) in enumerate(self._batches()):
            if number == 0:
                self._first(frame, cand)
            self.own.add(y, cand, cand)
            for slices in self._all_slices():
                slices.see(frame)
            if self.own_slices is not None:
                self.own_slices.add(frame, y, cand, cand)
            keep = rng.random(y.size) < share
            self.kept.append((y[keep], cand[keep]))
            prod = self._production(frame)
            if prod is not None and self.paired is not None:
                fresh = self._fresh(frame)
                self.masks.append(fresh)
                self.fresh += int(fresh.sum())
                self.paired.add(y[fresh], cand[fresh], prod[fresh])
                if self.paired_slices is not None:
                    self.paired_slices.add(frame[fresh], y[fresh], cand[fresh], prod[fresh])
        self.passes = 1
        self._enough_fresh()
        if self.paired is not None:
            self.own_slices = None  # the comparison's rows are sliced: these are not needed
        if self.own.needs_second_pass:
            self._second()

    def _second(self) -> None:
        for number, (frame, y, cand) in enumerate(self._batches()):
            self.own.add_second(y, cand, cand)
            if self.own_slices is not None:
                self.own_slices.add_second(frame, y, cand, cand)
            if self.paired is not None:
                fresh = self.masks[number]
                prod = self._production(frame)
                if prod is None:  # predicted in the first pass: it cannot fail now
                    raise ModelFileError("production could not predict the holdout again.")
                self.paired.add_second(y[fresh], cand[fresh], prod[fresh])
                if self.paired_slices is not None:
                    self.paired_slices.add_second(frame[fresh], y[fresh], cand[fresh], prod[fresh])
        self.passes = 2

    def _batches(self) -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        train, scorers = self.train, [self.candidate, self.production]
        trained = self.baseline.trained if self.baseline is not None else None
        wanted = [train.target, *(c for s in scorers if s for c in s.features)]
        file = open_parquet(self.holdout.path, list(dict.fromkeys(wanted)))
        names = file.schema_arrow.names
        for slices in self._all_slices():
            slices.check_columns(names)
        wanted += self.config.slices.columns if self.config.slices else []
        identity = [c for c in (trained.identity if trained else ()) if c in names]
        columns = list(dict.fromkeys([*wanted, *identity]))
        for batch in file.iter_batches(batch_size=self.holdout.batch_rows, columns=columns):
            if batch.num_rows == 0:
                continue
            frame = _as_read(batch.to_pandas())
            yield frame, self._truth(frame[train.target]), self._predict(self.candidate, frame)

    def _truth(self, target: Any) -> np.ndarray:
        """The target as the in-memory evaluation has it: 0/1 (binary) or its values."""
        if self.train.task == "regression":
            return target.to_numpy(dtype=np.float64)
        truth = target.astype(str) == str(self.train.positive_class)
        return truth.to_numpy().astype(np.float64)

    def _first(self, frame: Any, cand: np.ndarray) -> None:
        x = frame[self.candidate.features]
        self.latency = compare.latency_ms(
            self.candidate.model, x.head(LATENCY_ROWS), self.train.task
        )
        n = self.config.deploy.smoke_rows
        self.smoke = x.head(n).to_dict(orient="records")
        self.expected = [float(v) for v in cand[:n]]

    def _production(self, frame: Any) -> np.ndarray | None:
        """Production's predictions of the batch; a model that cannot predict it becomes
        the baseline's problem (the change gates apply comparison.unusable_baseline)."""
        if self.production is None or self.baseline is None:
            return None
        try:
            return self._predict(self.production, frame)
        except ModelFileError as exc:
            version = self.baseline.version
            self._unusable(f"production model {version} cannot predict the holdout: {exc}")
            return None

    def _fresh(self, frame: Any) -> np.ndarray:
        assert self.baseline is not None
        rows = replace(self.train, holdout=frame, holdout_ids=None)
        fresh, problem = fresh_rows(self.baseline, rows, 0)
        if fresh is None:
            self._unusable(problem or "its training rows are unknown")
            return np.zeros(len(frame), dtype=bool)
        return fresh

    def _enough_fresh(self) -> None:
        if self.paired is None or self.baseline is None:
            return
        minimum = self.config.comparison.min_rows
        if self.fresh < minimum:
            self._unusable(
                f"production model {self.baseline.version} trained on "
                f"{self.holdout.rows - self.fresh} of the {self.holdout.rows} holdout rows; the "
                f"{self.fresh} left are fewer than comparison.min_rows ({minimum})"
            )

    def _unusable(self, problem: str) -> None:
        """No comparison with production: its problem says why (only the first is kept)."""
        if self.baseline is not None and self.baseline.problem is None:
            self.baseline = replace(self.baseline, model=None, problem=problem)
        self.production, self.paired, self.paired_slices = None, None, None

    def predictions(self) -> Predictions:
        """The seeded sample of the candidate's holdout predictions (truth and score)."""
        y = np.concatenate([k[0] for k in self.kept]) if self.kept else np.zeros(0)
        score = np.concatenate([k[1] for k in self.kept]) if self.kept else np.zeros(0)
        return Predictions(y, score)


def _as_read(frame: Any) -> Any:
    """A batch as the pandas engine's frames have it: text columns as plain objects."""
    for column in frame.columns:
        if frame[column].dtype.kind not in "biufcmM":
            frame[column] = frame[column].astype(object)
    return frame
