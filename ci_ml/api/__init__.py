"""The library API: one function per pipeline step, each reading and writing run files.

Every step takes a :class:`~ci_ml.project.Project` and a run directory, so the steps can run
in separate CI jobs. Nothing here prints; callers pass ``on_step`` to hear about progress.
See DESIGN.md for the files and their writers. The steps live in :mod:`ci_ml.api.steps`;
``ci-ml experiments`` in :mod:`ci_ml.api.experiment`.
"""

from ci_ml.api.experiment import experiments
from ci_ml.api.steps import (
    STEPS,
    StepHook,
    evaluate,
    export,
    gate,
    production_identity,
    pull,
    register,
    report,
    run,
    train,
    validate,
    write_pull,
)

__all__ = [
    "STEPS",
    "StepHook",
    "evaluate",
    "experiments",
    "export",
    "gate",
    "production_identity",
    "pull",
    "register",
    "report",
    "run",
    "train",
    "validate",
    "write_pull",
]
