"""The request checks' fast paths (orjson for the body, in-place common cells) answer exactly
what the plain paths (``json`` with its NaN constants, :func:`_cell` for every cell) answer:
the same rows and values for good bodies, the same sentence for bad ones."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from ci_ml.serve import input as requests_in
from ci_ml.serve.input import FeatureSchema, InvalidRequest, parse_body, to_columns

SCHEMA = FeatureSchema.from_card(
    [
        {"name": "income", "kind": "numeric", "dtype": "float64"},
        {"name": "age", "kind": "numeric", "dtype": "int64"},
        {"name": "owner", "kind": "numeric", "dtype": "bool"},
        {"name": "home", "kind": "categorical", "categories": ["rent", "own"]},
    ]
)
CELLS: dict[str, list[Any]] = {
    "income": [1.5, -0.0, 3, 10**30, None, 2.5e-300, "12", True, [1], float("nan"), 1e308],
    "age": [30, 30.0, None, -7, 2**70, False],
    "owner": [True, False, 1, 0.0, None, "yes"],
    "home": ["rent", "own", "castle", "", None, 7, {"a": 1}],
}


def plain_columns(rows: list[Any]) -> dict[str, list[Any]]:
    """to_columns without its fast path: every cell through _cell."""
    columns: dict[str, list[Any]] = {f.name: [] for f in SCHEMA.features}
    for i, row in enumerate(rows):
        requests_in._check_columns(i, row, frozenset(SCHEMA.names), SCHEMA)
        for feature in SCHEMA.features:
            columns[feature.name].append(requests_in._cell(i, feature, row[feature.name]))
    return columns


def outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except InvalidRequest as err:
        return ("refused", err.status, str(err))


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same type (1.0 is not 1)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


GOOD_CELLS: dict[str, list[Any]] = {  # the cells the checks take
    "income": [1.5, -0.0, 3, 10**30, None, 2.5e-300, 1e308, 2**70],
    "age": [30, 30.0, None, -7, 2**70],
    "owner": [True, False, 1, 0.0, None],
    "home": ["rent", "own", "castle", "", None],
}


@pytest.mark.parametrize("count", [5, requests_in.COLUMNS_FROM_ROWS + 6])
@pytest.mark.parametrize("seed", range(40))
def test_random_rows_get_what_the_plain_checks_give(seed: int, count: int) -> None:
    rng = random.Random(seed)
    cells = GOOD_CELLS if seed % 4 == 1 else CELLS  # requests of good rows too, checked whole
    rows = [{name: rng.choice(values) for name, values in cells.items()} for _ in range(count)]
    if seed % 5 == 0:
        rows[rng.randrange(count)].pop("age")  # a row without a column
    if seed % 7 == 3:
        rows[rng.randrange(count)]["extra"] = 1  # and one with a column too many
    body = json.dumps({"records": rows}).encode()  # NaN written as the constant NaN
    fast = outcome(lambda: to_columns(parse_body(body, 100), SCHEMA))
    plain = outcome(lambda: plain_columns(json.loads(body, parse_constant=float)["records"]))
    assert same(fast, plain), (fast, plain)


def test_a_large_request_of_common_cells_is_checked_a_column_at_a_time() -> None:
    rng = random.Random(0)
    count = requests_in.COLUMNS_FROM_ROWS
    rows = [{name: rng.choice(values) for name, values in GOOD_CELLS.items()} for _ in range(count)]
    whole = requests_in._whole_columns(rows, SCHEMA)
    assert whole is not None
    assert same(whole, plain_columns(rows))
    assert same(to_columns(rows, SCHEMA), whole)
    rows[-1]["age"] = 10**400  # beyond a float: the cell-by-cell checks name it
    assert requests_in._whole_columns(rows, SCHEMA) is None
    assert same(outcome(lambda: to_columns(rows, SCHEMA)), outcome(lambda: plain_columns(rows)))


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [{"income": NaN}]}',
        b'{"records": [{"income": Infinity}]}',
        b'{"records": [{"income": 1' + b"0" * 400 + b"}]}",
        b'{"records": [{"income": 1,}]}',
        b"",
        b"[1, 2]",
        b'{"records": []}',
        b'{"record": {"income": 1}, "records": []}',
        '{"records": [{"home": "caf\u00e9"}]}'.encode(),
        b'{"records": [{"income": 1}]} trailing',
    ],
)
def test_what_orjson_refuses_or_reads_is_answered_as_json_answers(body: bytes) -> None:
    def plain() -> Any:
        try:
            payload = json.loads(body, parse_constant=float)
        except ValueError as err:
            raise InvalidRequest(
                f"the body is not valid JSON ({err}); send "
                '{"records": [{"column": value, ...}]}',
                status=400,
            ) from None
        rows = requests_in._rows_of(payload)
        if not rows:
            raise InvalidRequest('"records" is empty; send at least one row')
        return rows

    assert same(outcome(lambda: parse_body(body, 100)), outcome(plain))


@pytest.mark.parametrize(
    "answers",
    [
        [{"label": "café", "probability": 1e-05}, {"label": "bad", "probability": 0.5}],
        [{"label": 2**70, "probability": 0.25}],  # orjson cannot write it: json does
        [{"label": True, "probability": 1.0, "probabilities": {"False": 0.0, "True": 1.0}}],
        [{"value": -1.5e300}],
    ],
)
def test_the_answer_is_the_json_python_would_write(answers: list[dict[str, Any]]) -> None:
    from types import SimpleNamespace

    from ci_ml.serve.routes import _predictions

    model: Any = SimpleNamespace(version="v1", digest="sha256:0")
    body = _predictions(model, answers, "rid")
    expected = {"request_id": "rid", "model_version": "v1", "model_digest": "sha256:0"}
    assert same(json.loads(body), {**expected, "predictions": answers})
