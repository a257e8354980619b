"""The outcomes of the decay check: which rows carry them, and in which encoding.

* :func:`labelled_rows`: without ``--labels``, the recent rows (those with the target);
  with a ``--labels`` file that repeats the features, its rows; with a file of outcomes
  alone (``request_id``, the target, perhaps ``row_index`` and a time), its outcomes
  joined by request id to the recent rows that carry one (the request log of
  ``ci-ml serve`` logs each row's ``request_id`` and ``row_index``, its place in the
  request). Without ``row_index`` each joined request must have logged one row. A key
  logged twice (a client that retried with the same ``X-Request-ID``) keeps its last row,
  a key labelled twice its last outcome.
* :func:`truth`: outcomes as :mod:`ci_ml.evaluation.metrics` takes them (0/1 for the
  positive class, or numbers). Outcomes in another encoding than the model's classes
  (``Bad``/``Good`` for ``bad``/``good``, ``0``/``1`` for ``No``/``Yes``) are refused with
  the values found and the classes expected, never read as "all negative".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ci_ml.errors import DataError
from ci_ml.monitor.sources import REQUEST_ID, ROW_INDEX, Production, Recent, as_text

if TYPE_CHECKING:
    import pandas as pd

SHOWN_VALUES = 8


def labelled_rows(
    recent: Recent, labels: Recent | None, kinds: Mapping[str, str], target: str
) -> Recent:
    """The rows that may carry outcomes: ``labels`` (joined by request id when it holds
    outcomes alone), else the recent rows."""
    if labels is None:
        return recent
    frame = labels.frame
    missing = [name for name in kinds if name not in frame.columns]
    if not missing or target not in frame.columns:
        return labels  # the decay check says what is missing
    if REQUEST_ID not in frame.columns:
        raise DataError(
            f"{labels.source.get('path')} has neither the feature column(s) "
            f"{_shown(missing)} nor a '{REQUEST_ID}' column; give the outcomes with the "
            "features, or with the request id that ci-ml serve returned and logged."
        )
    return join_by_request(recent, labels, target)


def join_by_request(recent: Recent, labels: Recent, target: str) -> Recent:
    """The recent rows named in ``labels`` (by request id and row index) with their outcome."""
    import pandas as pd

    logged = _logged_keys(recent, labels)
    on = [REQUEST_ID, ROW_INDEX] if ROW_INDEX in labels.frame.columns else [REQUEST_ID]
    wanted = _wanted(labels.frame, target, on)
    if on == [REQUEST_ID]:
        _one_row_each(logged, wanted, labels)
    joined = wanted.merge(logged.drop_duplicates(on, keep="last"), on=on, how="inner")
    if joined.empty:
        raise DataError(
            f"none of the {len(wanted)} request id(s) in {labels.source.get('path')} is among "
            f"the {len(logged)} recent rows of {recent.source.get('path')}; are the outcomes "
            "from the same service and period (--since)?"
        )
    frame = recent.frame.iloc[joined["position"].to_numpy()].reset_index(drop=True)
    frame = frame.assign(**{target: pd.Series(joined[target].to_numpy(), dtype=object)})
    source = {
        **labels.source,
        "joined_on": on,
        "outcomes": len(wanted),
        "joined": len(joined),
        "not_found": len(wanted) - len(joined),
    }
    return Recent(frame, source)


def _logged_keys(recent: Recent, labels: Recent) -> pd.DataFrame:
    """``request_id``, ``row_index`` and the position of each recent row."""
    import pandas as pd

    ids = recent.ids
    if ids is None and REQUEST_ID in recent.frame.columns:  # a file exported with the ids
        index = recent.frame.get(ROW_INDEX, pd.Series(0, index=recent.frame.index))
        ids = pd.DataFrame({REQUEST_ID: recent.frame[REQUEST_ID], ROW_INDEX: index})
    if ids is None:
        raise DataError(
            f"{labels.source.get('path')} names its outcomes by {REQUEST_ID}, but the recent "
            f"rows ({recent.source.get('path')}) carry no request ids; give --requests the "
            "request log of ci-ml serve, which logs the id of every row."
        )
    keys = pd.DataFrame(
        {
            REQUEST_ID: as_text(ids[REQUEST_ID]).to_numpy(),
            ROW_INDEX: pd.to_numeric(ids[ROW_INDEX], errors="coerce").fillna(0).astype("int64"),
            "position": np.arange(len(ids)),
        }
    )
    return keys[keys[REQUEST_ID].notna()]


def _wanted(frame: pd.DataFrame, target: str, on: list[str]) -> pd.DataFrame:
    import pandas as pd

    wanted = pd.DataFrame({REQUEST_ID: as_text(frame[REQUEST_ID]), target: frame[target]})
    if ROW_INDEX in on:
        wanted[ROW_INDEX] = pd.to_numeric(frame[ROW_INDEX], errors="coerce")
    wanted = wanted.dropna(subset=on)
    if ROW_INDEX in on:
        wanted[ROW_INDEX] = wanted[ROW_INDEX].astype("int64")
    return wanted.drop_duplicates(on, keep="last").reset_index(drop=True)


def _one_row_each(logged: pd.DataFrame, wanted: pd.DataFrame, labels: Recent) -> None:
    named = logged[logged[REQUEST_ID].isin(wanted[REQUEST_ID])]
    rows = named.drop_duplicates([REQUEST_ID, ROW_INDEX]).groupby(REQUEST_ID).size()
    many = rows[rows > 1]
    if len(many):
        raise DataError(
            f"{labels.source.get('path')} names request {many.index[0]!r}, which logged "
            f"{int(many.iloc[0])} rows; add a '{ROW_INDEX}' column (the row's place in its "
            "request, from 0) to say which row each outcome belongs to."
        )


def truth(values: pd.Series, production: Production, target: str) -> np.ndarray:
    """Outcomes as 0/1 (the positive class), the class's place in the model's classes
    (multiclass) or numbers; DataError for another encoding."""
    import pandas as pd

    if production.task != "classification":
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    text = as_text(values).astype(str)
    classes = production.classes
    if classes:
        found = sorted(set(text))
        unknown = [value for value in found if value not in classes]
        if unknown:
            raise DataError(
                f"the outcomes in '{target}' hold {_shown(found)}, but the production model's "
                f"classes are {_shown(classes)}: {_shown(unknown)} is none of them; write the "
                "outcomes as the model's classes (or name the outcome column with --target)."
            )
    if production.multiclass:
        return text.map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
    positive = str(production.card.get("positive_class"))
    return (text == positive).to_numpy(dtype=np.float64)


def _shown(values: list[str]) -> str:
    quoted = [repr(v) for v in values[:SHOWN_VALUES]]
    more = len(values) - len(quoted)
    return ", ".join(quoted) + (f" and {more} more" if more > 0 else "")
