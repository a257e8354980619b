"""``ci-ml serve``: flags -> :func:`ci_ml.serve.server.serve`. FastAPI and uvicorn are imported
only when the command runs, so ``ci-ml --help`` stays fast and works without the ``serve``
extra."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from ci_ml.cli.common import OptionalConfigOpt, RegistryOpt, open_registry, optional_project
from ci_ml.errors import BadInputError

TOKEN_ENV = "CI_ML_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])(i)?b?|b)?\s*$", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3}

HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on (loopback by default).")]
PortOpt = Annotated[int, typer.Option("--port", help="TCP port (0: any free port).")]
PollOpt = Annotated[
    float | None,
    typer.Option(
        "--poll",
        metavar="SECONDS",
        help="Check the registry for a new production "
        "version every SECONDS and reload (default: only on POST /admin/reload).",
    ),
]
MaxBodyOpt = Annotated[
    str, typer.Option("--max-body", help="Largest request body (413 above), e.g. 1MiB, 500KB.")
]
MaxRowsOpt = Annotated[
    int, typer.Option("--max-rows", help="Most rows in one request (413 above).")
]
ThreadsOpt = Annotated[
    int,
    typer.Option(
        "--threads",
        help="Prediction threads, each with one OpenMP/BLAS thread; waiting requests are merged "
        "into one model call, so 1 suits scikit-learn pipelines best.",
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        help="Worker processes answering on the one port (1 to 64); a reload switches them "
        "all, or none; a worker that exits is restarted. See docs/serving.md#workers.",
    ),
]
LogDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--log-requests",
        metavar="DIR",
        help="Log a sample of the predicted rows as JSON lines in DIR (off by default).",
    ),
]
LogSampleOpt = Annotated[
    float | None,
    typer.Option("--log-sample", help="Fraction of rows to log, in (0, 1] (default 0.1)."),
]
LogBytesOpt = Annotated[
    str | None, typer.Option("--log-max-bytes", help="Size of one log file (default 50MB).")
]
LogFilesOpt = Annotated[
    int | None, typer.Option("--log-max-files", help="Log files kept; older are deleted (5).")
]
TrustOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trust",
        metavar="TYPE",
        help="Also trust this type when loading models (repeatable; adds to model.trusted_types).",
    ),
]
AccessLogOpt = Annotated[bool, typer.Option("--access-log", help="Log every request (uvicorn).")]
ModelNameOpt = Annotated[
    str,
    typer.Option(
        "--model-name", help="The model's name in the Open Inference Protocol (/v2/models/NAME)."
    ),
]
ShadowOpt = Annotated[
    str | None,
    typer.Option(
        "--shadow",
        metavar="VERSION",
        help="Also score a sample of the requests with this registry version, off the request "
        "path; both answers go to the request log (needs --log-requests). See docs/serving.md.",
    ),
]
ShadowSampleOpt = Annotated[
    float | None,
    typer.Option(
        "--shadow-sample",
        help="Share of requests the shadow scores, in (0, 1] (default 0.2); POST /admin/shadow "
        "changes it while serving.",
    ),
]
ShadowQueueOpt = Annotated[
    int | None,
    typer.Option(
        "--shadow-queue",
        help="Requests waiting for the shadow; more are dropped and counted (default 1000).",
    ),
]
ShadowBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--shadow-budget",
        help="Share of the time the shadow's model calls may take, in (0, 1]; under load it "
        "drops and counts the rest (default 0.05).",
    ),
]


def serve(
    config: OptionalConfigOpt = None,
    registry: RegistryOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    poll: PollOpt = None,
    max_body: MaxBodyOpt = "1MiB",
    max_rows: MaxRowsOpt = 1000,
    threads: ThreadsOpt = 1,
    workers: WorkersOpt = 1,
    log_requests: LogDirOpt = None,
    log_sample: LogSampleOpt = None,
    log_max_bytes: LogBytesOpt = None,
    log_max_files: LogFilesOpt = None,
    trust: TrustOpt = None,
    access_log: AccessLogOpt = False,
    model_name: ModelNameOpt = "model",
    shadow: ShadowOpt = None,
    shadow_sample: ShadowSampleOpt = None,
    shadow_queue: ShadowQueueOpt = None,
    shadow_budget: ShadowBudgetOpt = None,
) -> None:
    """Serve the registry's production model over HTTP (POST /predict, /health, /metrics ...).

    Set CI_ML_ADMIN_TOKEN (16+ characters) to enable POST /admin/reload and /admin/shadow
    (the shadow's sample, changed while serving). See docs/serving.md.
    """
    from ci_ml.serve.service import ServeSettings

    _check_range("--port", port, 0, 65535)
    _check_range("--max-rows", max_rows, 1, 10_000_000)
    if poll is not None and not 0 < poll <= 86_400:
        raise BadInputError(f"--poll is {poll}; give a number of seconds in (0, 86400]")
    _check_range("--threads", threads, 1, 64)
    _check_range("--workers", workers, 1, 64)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]{0,127}", model_name):
        raise BadInputError(
            f"--model-name is {model_name!r}; give 1 to 128 letters, digits, '.', '_' or '-' "
            "(it is a path segment: /v2/models/NAME)"
        )
    shadow_settings = _shadow_settings(
        shadow,
        {"sample": shadow_sample, "queue": shadow_queue, "budget": shadow_budget},
        log_requests,
    )
    settings = ServeSettings(
        host=host,
        port=port,
        max_body_bytes=parse_size("--max-body", max_body),
        max_rows=max_rows,
        poll_seconds=poll,
        admin_token=admin_token(),
        threads=threads,
        request_log=_request_log(log_requests, log_sample, log_max_bytes, log_max_files),
        access_log=access_log,
        model_name=model_name,
        **shadow_settings,
    )
    holder = _holder(config, registry, trust or [])
    _configure_logging()
    if workers > 1:
        from ci_ml.serve.workers import serve_workers

        if shadow is not None:
            holder.registry.get(shadow)  # a version that is not there stops the start; each
        serve_workers(holder, settings, workers, shadow)  # worker loads it for itself
        return
    if shadow is not None:
        holder.load_shadow(shadow)
    from ci_ml.serve.server import serve as run_service

    run_service(holder, settings)


def _holder(config: Path | None, url: str | None, trust: list[str]) -> Any:
    """The model holder over the registry, with the trusted types of the config and --trust."""
    try:
        import uvicorn  # noqa: F401  (fails early without the server)

        from ci_ml.serve.reload import ModelHolder
        from ci_ml.serve.routes import add_routes  # noqa: F401  (fails early without fastapi)
    except ModuleNotFoundError as err:
        raise BadInputError(
            f"ci-ml serve needs FastAPI and uvicorn ({err.name} is missing); install them with: "
            "pip install 'ci-ml[serve]'"
        ) from None
    found = optional_project(config, url)
    trusted = [*(found.config.model.trusted_types if found else []), *trust]
    return ModelHolder(open_registry(found, url), trusted)


def _shadow_settings(
    version: str | None, flags: dict[str, Any], log_requests: Path | None
) -> dict[str, Any]:
    """The shadow's ServeSettings fields from ``--shadow-NAME`` ``flags`` (sample, queue,
    budget; None when not given); BadInputError for flags that do not fit."""
    given = {name: value for name, value in flags.items() if value is not None}
    if version is None:
        if given:
            raise BadInputError(
                f"--shadow-{next(iter(given))} needs --shadow VERSION to say which model scores"
            )
        return {}
    if log_requests is None:
        raise BadInputError(
            "--shadow writes both models' answers to the request log, which is off; give "
            "--log-requests DIR too"
        )
    for name in ("sample", "budget"):
        if name in given and not 0 < given[name] <= 1:
            raise BadInputError(f"--shadow-{name} is {given[name]}; give a fraction in (0, 1]")
    if "queue" in given:
        _check_range("--shadow-queue", given["queue"], 1, 1_000_000)
    return {f"shadow_{name}": value for name, value in given.items()}


def admin_token() -> str | None:
    """The admin token from CI_ML_ADMIN_TOKEN (None: the /admin routes are disabled)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise BadInputError(
            f"{TOKEN_ENV} has {len(token)} characters; use at least {MIN_TOKEN_LENGTH}, e.g. "
            "from: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def _request_log(
    directory: Path | None, sample: float | None, max_bytes: str | None, max_files: int | None
) -> Any:
    from ci_ml.serve.service import RequestLogSettings

    if directory is None:
        given = [
            n
            for n, v in (
                ("--log-sample", sample),
                ("--log-max-bytes", max_bytes),
                ("--log-max-files", max_files),
            )
            if v is not None
        ]
        if given:
            raise BadInputError(f"{given[0]} needs --log-requests DIR to say where to log")
        return None
    defaults = RequestLogSettings(directory)
    if sample is not None and not 0 < sample <= 1:
        raise BadInputError(f"--log-sample is {sample}; give a fraction in (0, 1], e.g. 0.1")
    if max_files is not None:
        _check_range("--log-max-files", max_files, 1, 100_000)
    return RequestLogSettings(
        directory=directory,
        sample=defaults.sample if sample is None else sample,
        max_bytes=defaults.max_bytes
        if max_bytes is None
        else parse_size("--log-max-bytes", max_bytes),
        max_files=max_files or defaults.max_files,
    )


def parse_size(flag: str, text: str) -> int:
    """Bytes in ``text``: 1048576, 500KB, 50MB, 1GB (powers of 1000) or 1KiB, 1MiB (of 1024)."""
    match = _SIZE.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise BadInputError(
            f"{flag} is {text!r}; give a positive size such as 1048576, 500KB, 50MB or 1MiB"
        )
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    return int(float(number) * base ** _POWERS.get((unit or "").lower(), 0))


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise BadInputError(f"{flag} is {value}; give a whole number from {low} to {high}")


def _configure_logging() -> None:
    """Show the service's own messages on stderr like uvicorn's."""
    logger = logging.getLogger("ci_ml")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
