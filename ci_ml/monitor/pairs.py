"""The shadowed rows of the request log: each row with production's and the shadow's answer.

``ci-ml serve --shadow VERSION`` logs the rows it shadow-scored with a ``"shadow":
{"model_version", "prediction", "latency_ms"}`` beside production's ``prediction`` (see
:mod:`ci_ml.serve.shadow`). :func:`read_pairs` keeps the lines of one shadow version answered
by one production version, as :class:`~ci_ml.monitor.sources.Recent` rows (with their request
ids, for :func:`~ci_ml.monitor.outcomes.join_by_request`) and the two answers of each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ci_ml.errors import DataError
from ci_ml.monitor.sources import (
    REQUEST_ID,
    REQUEST_PATTERNS,
    ROW_INDEX,
    Recent,
    log_entries,
    log_time,
)


@dataclass(frozen=True)
class Pairs:
    """Logged rows both models answered: ``recent`` (features and ids), and per row
    production's answer, the shadow's, and the shadow's milliseconds per row."""

    recent: Recent
    production: list[dict[str, Any]]
    shadow: list[dict[str, Any]]
    latency_ms: list[float]
    first: str
    last: str


def read_pairs(
    directory: Path, shadow: str, production: str, since: datetime | None = None
) -> Pairs:
    """The rows of ``directory`` that ``shadow`` scored next to ``production``'s answer."""
    import pandas as pd

    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; give --requests the request log folder.")
    files = sorted({p for pattern in REQUEST_PATTERNS for p in directory.glob(pattern)})
    stats: Counter[str] = Counter()
    others: Counter[str] = Counter()
    rows, ids, theirs, ours, latency, times = [], [], [], [], [], []
    for path in files:
        for entry in log_entries(path, stats):
            scored = entry.get("shadow")
            if not isinstance(scored, dict) or scored.get("model_version") != shadow:
                continue
            when = log_time(entry.get("ts"))
            if since is not None and (when is None or when < since):
                continue
            if entry.get("model_version") != production:
                others[str(entry.get("model_version"))] += 1
                continue
            rows.append(entry["row"])
            ids.append((entry.get(REQUEST_ID), entry.get(ROW_INDEX)))
            ours.append(entry.get("prediction") or {})
            theirs.append(scored.get("prediction") or {})
            latency.append(float(scored.get("latency_ms") or 0.0))
            times.append(str(entry.get("ts")))
    if not rows:
        raise DataError(_none_found(directory, shadow, production, len(files), others))
    keys = pd.DataFrame.from_records(ids, columns=[REQUEST_ID, ROW_INDEX])
    keys[ROW_INDEX] = pd.to_numeric(keys[ROW_INDEX], errors="coerce").fillna(0).astype("int64")
    source = {
        "kind": "requests",
        "path": str(directory),
        "files": len(files),
        "rows": len(rows),
        "skipped_lines": stats["bad"],
        "other_production": dict(others),
        "since": since.isoformat() if since else None,
    }
    recent = Recent(pd.DataFrame.from_records(rows), source, keys)
    return Pairs(recent, ours, theirs, latency, min(times), max(times))


def _none_found(
    directory: Path, shadow: str, production: str, files: int, others: Counter[str]
) -> str:
    if others:
        seen = ", ".join(sorted(others))
        return (
            f"{directory} holds rows shadow {shadow} scored only next to {seen}, not next to "
            f"production {production}; judge the shadow against the production it ran beside "
            "(production changed since: run the shadow again)."
        )
    return (
        f"{directory} holds no row scored by shadow {shadow} ({files} requests-*.jsonl "
        f"file(s)); is ci-ml serve running with --shadow {shadow} and --log-requests?"
    )
