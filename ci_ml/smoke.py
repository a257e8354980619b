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
    """Poll ``/version`` until the service reports ``digest``; ServiceError on timeout."""
    import requests

    deadline = time.monotonic() + timeout
    seen = "nothing"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{service_url.rstrip('/')}/version", timeout=5)
            if answer.ok:
                seen = str(answer.json().get("model_digest"))
                if seen == digest:
                    return
            else:
                seen = f"HTTP {answer.status_code}"
        except (requests.RequestException, ValueError) as exc:
            seen = type(exc).__name__
        time.sleep(POLL_SECONDS)
    raise ServiceError(
        f"{service_url}/version still reports {seen[:12]} after {timeout:g} s, not {digest[:12]}."
    )


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
    key = "probability" if sample.task == "classification" else "value"
    got = [p[key] for p in answer.json()["predictions"]]
    worst = max((abs(a - b), i) for i, (a, b) in enumerate(zip(got, sample.expected, strict=True)))
    if worst[0] > tolerance:
        raise ServiceError(
            f"{url} row {worst[1]}: {key} {got[worst[1]]:.6g} differs from the candidate's "
            f"{sample.expected[worst[1]]:.6g} by {worst[0]:.3g} (> tolerance {tolerance:g})."
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
