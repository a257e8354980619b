"""Outcomes for the decay check (ci_ml/monitor/outcomes.py): their encoding, and outcomes that
arrive on their own, joined by request id to the rows ``ci-ml serve`` logged — a real service
on loopback and its real request log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from ci_ml.errors import DataError
from ci_ml.monitor import check as monitor
from ci_ml.monitor.outcomes import truth
from ci_ml.monitor.sources import Production
from ci_ml.records import MonitorReport
from ci_ml.registry import open_registry
from ci_ml.serve.reload import ModelHolder
from ci_ml.serve.requestlog import RequestLog
from ci_ml.serve.server import serve_in_thread
from ci_ml.serve.service import RequestLogSettings, ServeSettings
from tests.monitor.conftest import Example
from tests.monitor.test_monitor import flipped, request_rows

# -- the encoding ---------------------------------------------------------------------------


def production_of(classes: list[Any], positive: Any) -> Production:
    card = {"task": "classification", "classes": classes, "positive_class": positive}
    return Production("v1", "0" * 64, card, {}, None, pd.DataFrame())


def test_zero_one_outcomes_for_a_yes_no_model_are_refused_naming_both():
    with pytest.raises(DataError) as caught:
        truth(pd.Series([0, 1, 1, 0]), production_of(["No", "Yes"], "Yes"), "Default")

    assert str(caught.value).startswith(
        "the outcomes in 'Default' hold '0', '1', but the production model's classes are "
        "'No', 'Yes': '0', '1' is none of them"
    )


def test_numeric_classes_read_back_from_a_csv_as_floats_are_the_same_classes():
    found = truth(pd.Series([0.0, 1.0, 1.0]), production_of([0, 1], 1), "y")

    assert found.tolist() == [0.0, 1.0, 1.0]


def test_one_unknown_value_among_known_ones_is_named():
    with pytest.raises(DataError, match="'unknown' is none of them"):
        truth(pd.Series(["bad", "good", "unknown"]), production_of(["bad", "good"], "bad"), "S")


# -- outcomes alone, joined by request id -----------------------------------------------------


def write_log(directory: Path, frame: pd.DataFrame, per_request: int = 1) -> list[str]:
    """The rows logged as ci-ml serve logs them, ``per_request`` rows a request; the ids."""
    log = RequestLog(directory, sample=1.0, max_bytes=200_000, max_files=100, seed=0)
    rows = request_rows(frame)
    ids = []
    for start in range(0, len(rows), per_request):
        chunk = rows[start : start + per_request]
        ids.append(f"req-{start}")
        log.offer("v1", chunk, [{"label": "good", "probability": 0.1}] * len(chunk), ids[-1])
    log.close()
    return ids


def outcomes_of(frame: pd.DataFrame, per_request: int = 1) -> pd.DataFrame:
    """Outcomes alone: the request id (and the row's place in it), the outcome, a time."""
    positions = np.arange(len(frame))
    out = pd.DataFrame(
        {
            "request_id": [f"req-{p - p % per_request}" for p in positions],
            "Status": frame["Status"].to_numpy(),
            "observed_at": "2024-05-01T00:00:00Z",
        }
    )
    if per_request > 1:
        out.insert(1, "row_index", positions % per_request)
    return out


def run_with_labels(example: Example, tmp: Path, labels: pd.DataFrame) -> MonitorReport:
    labels.to_csv(tmp / "labels.csv", index=False)
    sources = monitor.Sources(requests=tmp / "log", labels=tmp / "labels.csv")
    return monitor.run(tmp, open_registry(str(example.registry)), tmp / "out", sources)


@pytest.mark.parametrize("per_request", [1, 7])
def test_outcomes_alone_give_the_verdict_of_the_full_rows(example, tmp_path, per_request):
    write_log(tmp_path / "log", example.holdout, per_request)
    changed = flipped(example.holdout)

    alone = run_with_labels(example, tmp_path, outcomes_of(changed, per_request))
    full = run_with_labels(example, tmp_path, changed)

    assert alone.status == full.status == "stale"
    assert [d.model_dump() for d in alone.decay] == [d.model_dump() for d in full.decay]
    source = alone.labelled.source
    assert (source["outcomes"], source["joined"], source["not_found"]) == (len(changed),) * 2 + (0,)


def test_outcomes_of_rows_not_logged_are_counted_and_the_rest_joined(example, tmp_path):
    write_log(tmp_path / "log", example.holdout.iloc[:600])

    record = run_with_labels(example, tmp_path, outcomes_of(example.holdout))

    assert record.labelled.rows == 600
    assert (record.labelled.source["joined"], record.labelled.source["not_found"]) == (
        600,
        len(example.holdout) - 600,
    )


def test_an_outcome_given_twice_counts_once_with_the_last_value(example, tmp_path):
    write_log(tmp_path / "log", example.holdout)
    labels = outcomes_of(flipped(example.holdout))
    labels = pd.concat([outcomes_of(example.holdout), labels], ignore_index=True)  # corrected

    record = run_with_labels(example, tmp_path, labels)

    assert record.labelled.rows == len(example.holdout) and record.status == "stale"


@pytest.mark.parametrize(
    ("labels", "per_request", "problem"),
    [
        (lambda f: f[["Status"]], 1, "has neither the feature column(s)"),
        (lambda f: outcomes_of(f).drop(columns=["request_id"]), 1, "nor a 'request_id' column"),
        (lambda f: outcomes_of(f).assign(request_id="other"), 1, "none of the 1 request id"),
        (lambda f: outcomes_of(f, 7).drop(columns=["row_index"]), 7, "add a 'row_index' column"),
    ],
)
def test_outcomes_that_cannot_be_joined_are_refused(
    example, tmp_path, labels, per_request, problem
):
    write_log(tmp_path / "log", example.holdout, per_request)

    with pytest.raises(DataError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        run_with_labels(example, tmp_path, labels(example.holdout))


def test_outcomes_by_request_id_need_recent_rows_with_request_ids(example, tmp_path):
    example.holdout.drop(columns=["Status"]).to_csv(tmp_path / "recent.csv", index=False)
    outcomes_of(example.holdout).to_csv(tmp_path / "labels.csv", index=False)
    sources = monitor.Sources(recent=tmp_path / "recent.csv", labels=tmp_path / "labels.csv")

    with pytest.raises(DataError, match="carry no request ids"):
        monitor.run(tmp_path, open_registry(str(example.registry)), tmp_path / "out", sources)


# -- a real service, its real request log ------------------------------------------------------


def serve_and_log(example: Example, logs: Path) -> pd.DataFrame:
    """Send the holdout rows to ci-ml serve: 300 alone with the client's own X-Request-ID,
    the rest 10 a request with ids the service makes. Returns each row's request id and
    place, as the client kept them from the answers."""
    holder = ModelHolder(open_registry(str(example.registry)), ())
    settings = ServeSettings(port=0, request_log=RequestLogSettings(logs, sample=1.0))
    rows = request_rows(example.holdout)
    keys: list[tuple[str, int]] = []
    with serve_in_thread(holder, settings) as url, requests.Session() as session:
        for i, row in enumerate(rows[:300]):
            answer = session.post(
                f"{url}/predict", json={"record": row}, headers={"X-Request-ID": f"loan-{i}"}
            )
            keys.append((answer.json()["request_id"], 0))
        for start in range(300, len(rows), 10):
            answer = session.post(f"{url}/predict", json={"records": rows[start : start + 10]})
            rid = answer.json()["request_id"]
            assert answer.headers["X-Request-ID"] == rid
            keys += [(rid, i) for i in range(len(answer.json()["predictions"]))]
    assert keys[:2] == [("loan-0", 0), ("loan-1", 0)]
    return pd.DataFrame(keys, columns=["request_id", "row_index"])


@pytest.mark.parametrize("change", ["unchanged", "flipped"])
def test_outcomes_joined_to_a_real_serve_log_give_the_verdict_of_the_full_rows(
    example, tmp_path, change
):
    keys = serve_and_log(example, tmp_path / "log")
    labelled = flipped(example.holdout) if change == "flipped" else example.holdout
    outcomes = keys.assign(Status=labelled["Status"].to_numpy())

    alone = run_with_labels(example, tmp_path, outcomes)
    full = run_with_labels(example, tmp_path, labelled)

    assert alone.status == full.status == ("stale" if change == "flipped" else "fine")
    assert [d.model_dump() for d in alone.decay] == [d.model_dump() for d in full.decay]
    assert alone.labelled.rows == full.labelled.rows == len(example.holdout)
    assert alone.recent.source["model_versions"] == {
        example.production.version: len(example.holdout)
    }
