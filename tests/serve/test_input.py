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


@pytest.mark.parametrize("seed", range(40))
def test_random_rows_get_what_the_plain_checks_give(seed: int) -> None:
    rng = random.Random(seed)
    rows = [{name: rng.choice(values) for name, values in CELLS.items()} for _ in range(5)]
    if seed % 5 == 0:
        rows[rng.randrange(5)].pop("age")  # a row without a column
    body = json.dumps({"records": rows}).encode()  # NaN written as the constant NaN
    fast = outcome(lambda: to_columns(parse_body(body, 100), SCHEMA))
    plain = outcome(lambda: plain_columns(json.loads(body, parse_constant=float)["records"]))
    assert same(fast, plain), (fast, plain)


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
