"""Smoke tests of a serving target: it serves the new digest and answers like the candidate."""

from __future__ import annotations

import time
from typing import Any

from ci_ml.config import DeployConfig
from ci_ml.errors import ServiceError
from ci_ml.records import SmokeSample

POLL_SECONDS = 0.5


def detail_of(answer: Any) -> str:
    """The ``detail`` of an error answer (FastAPI style), else the start of its text."""
    try:
        return str(answer.json().get("detail", ""))[:200]
    except ValueError:
        return answer.text[:200]


def wait_for_digest(service_url: str, digest: str, timeout: float) -> None:
    """Poll ``/version`` until the service reports ``digest`` (on every worker, when it lists
    its workers); ServiceError on timeout."""
    import requests

    deadline = time.monotonic() + timeout
    seen = "nothing"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{service_url.rstrip('/')}/version", timeout=5)
            if answer.ok:
                seen = _serves(answer.json(), digest)
                if seen == digest:
                    return
            else:
                seen = f"HTTP {answer.status_code}"
        except (requests.RequestException, ValueError) as exc:
            seen = type(exc).__name__
        time.sleep(POLL_SECONDS)
    raise ServiceError(
        f"{service_url}/version still reports {_short(seen)} after {timeout:g} s, not "
        f"{digest[:12]}."
    )


def _serves(version: dict[str, Any], digest: str) -> str:
    """The digest ``/version`` reports; with several workers (``ci-ml serve --workers N``
    lists them), ``digest`` only when every worker serves it, else how many do."""
    workers = version.get("workers")
    if not isinstance(workers, list) or not workers:
        return str(version.get("model_digest"))
    serving = sum(1 for w in workers if isinstance(w, dict) and w.get("model_digest") == digest)
    if serving == len(workers):
        return digest
    return f"{digest[:12]} on {serving} of {len(workers)} workers"


def check_predictions(service_url: str, sample: SmokeSample, tolerance: float) -> None:
    """``/predict`` on the holdout sample must return the candidate's own predictions."""
    import requests

    url = f"{service_url.rstrip('/')}/predict"
    try:
        answer = requests.post(url, json={"records": sample.records}, timeout=30)
    except requests.RequestException as exc:
        raise ServiceError(f"{url} did not answer ({type(exc).__name__}).") from None
    if not answer.ok:
        raise ServiceError(f"{url} answered {answer.status_code}: {detail_of(answer)}")
    predictions = answer.json()["predictions"]
    if len(predictions) != len(sample.records):
        raise ServiceError(
            f"{url} answered {len(predictions)} predictions for {len(sample.records)} rows."
        )
    if sample.expected_probabilities is not None and sample.classes is not None:
        _check_every_class(
            url, predictions, sample.classes, sample.expected_probabilities, tolerance
        )
        return
    key = "probability" if sample.task == "classification" else "value"
    got = [p[key] for p in predictions]
    worst = max((abs(a - b), i) for i, (a, b) in enumerate(zip(got, sample.expected, strict=True)))
    if worst[0] > tolerance:
        raise ServiceError(
            f"{url} row {worst[1]}: {key} {got[worst[1]]:.6g} differs from the candidate's "
            f"{sample.expected[worst[1]]:.6g} by {worst[0]:.3g} (> tolerance {tolerance:g})."
        )


def _check_every_class(
    url: str,
    predictions: list[dict[str, Any]],
    classes: list[str],
    expected: list[list[float]],
    tolerance: float,
) -> None:
    """A multiclass answer: every class's probability within ``tolerance`` of the candidate's."""
    for row, (answer, wanted) in enumerate(zip(predictions, expected, strict=True)):
        got = answer.get("probabilities")
        if not isinstance(got, dict) or sorted(got) != sorted(classes):
            raise ServiceError(
                f"{url} row {row}: the answer has probabilities for {sorted(got or {})}, not "
                f"the candidate's classes {classes}; is it serving another model?"
            )
        for label, value in zip(classes, wanted, strict=True):
            if abs(got[label] - value) > tolerance:
                raise ServiceError(
                    f"{url} row {row}: probability of class {label!r} {got[label]:.6g} differs "
                    f"from the candidate's {value:.6g} by {abs(got[label] - value):.3g} "
                    f"(> tolerance {tolerance:g})."
                )


def smoke(config: DeployConfig, digest: str, sample: SmokeSample | None) -> list[str]:
    """The smoke test against ``deploy.service_url`` (skipped when none is configured)."""
    if not config.service_url:
        return ["no deploy.service_url: smoke test skipped"]
    wait_for_digest(config.service_url, digest, config.timeout)
    steps = [f"{config.service_url} serves {digest[:12]}"]
    if sample is not None:
        check_predictions(config.service_url, sample, config.tolerance)
        steps.append(f"/predict matches the candidate on {len(sample.records)} rows")
    return steps


def _short(seen: str) -> str:
    return seen if " " in seen else seen[:12]
