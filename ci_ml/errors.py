"""Every error ci-ml raises on purpose, and the exit code each one maps to.

The CLI turns these into one line on stderr and the exit code below; anything
else is a bug and says how to get the traceback (``--traceback``).

    CiMlError                      base; exit code 2 unless a subclass says otherwise
    ├── BadInputError          2   bad arguments, files or requests
    │   ├── ConfigError        2   ci-ml.yaml (file, field, found, allowed)
    │   ├── DataError          2   a data file that cannot be used as data
    │   ├── ModelFileError     2   a model file that is missing, unsafe or broken
    │   ├── MissingExtra       2   an optional extra (gx, s3, serve, onnx) is not installed
    │   └── RunDirError        2   a run directory that lacks what a step needs
    ├── GateBlocked            1   a data or model gate blocked the candidate
    ├── RolledBack             1   a deployment failed and was rolled back
    ├── ServiceError           3   an outside service failed after retries
    └── ConflictError          4   production changed since the candidate was compared

Messages are one sentence (or two) that name the bad value, what is allowed,
and the next step.
"""

from __future__ import annotations


class CiMlError(Exception):
    """Base of every error ci-ml raises on purpose."""

    exit_code: int = 2


class BadInputError(CiMlError):
    """Bad arguments, files or requests (exit 2)."""

    exit_code = 2


class ConfigError(BadInputError):
    """``ci-ml.yaml`` is missing or invalid."""


class DataError(BadInputError):
    """A data file cannot be read or used as training data."""


class ModelFileError(BadInputError):
    """A model file is missing, unsafe to load or does not fit its record."""


class MissingExtra(BadInputError):
    """A feature needs an optional extra that is not installed; says which one to install."""

    def __init__(self, purpose: str, extra: str, missing: str | None = None) -> None:
        what = f" ({missing} is not installed)" if missing else ""
        super().__init__(
            f"{purpose} needs the '{extra}' extra{what}; install it with: "
            f"pip install 'ci-ml[{extra}]'."
        )
        self.extra = extra


class RunDirError(BadInputError):
    """A run directory lacks the files that a step needs."""


class GateBlocked(CiMlError):
    """A data or model quality gate blocked the candidate (exit 1)."""

    exit_code = 1


class RolledBack(CiMlError):
    """A deployment misbehaved and production was rolled back (exit 1)."""

    exit_code = 1


class ServiceError(CiMlError):
    """An outside service (DVC remote, GitHub, serving target) failed (exit 3)."""

    exit_code = 3


class CredentialsMissing(ServiceError):
    """A service needs credentials and none were given (exit 3), e.g. a fork's pull request
    run, which GitHub gives no secrets."""


class ConflictError(CiMlError):
    """Production changed since the candidate was compared (exit 4)."""

    exit_code = 4
