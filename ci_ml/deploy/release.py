"""Deploy only what passed: verify the decision record, promote, notify, smoke-test, roll back.

verify  -> the model file's digest is the one the gate report judged, the verdict
           allows deployment, and production is still what the gate compared with
promote -> compare-and-swap in the registry (exit 4 if production moved)
notify  -> every target in ``deploy.targets`` (the service's reload endpoint, a command)
smoke   -> /version reports the new digest; /predict answers the holdout sample
           with the candidate's own predictions
on failure: promote the previous version back, notify and check again, exit 1
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_ml import decide, rundir
from ci_ml.config import Config, DeployConfig, TargetConfig
from ci_ml.deploy.smoke import detail_of, smoke
from ci_ml.errors import BadInputError, CiMlError, GateBlocked, ModelFileError, ServiceError
from ci_ml.models import sha256_file
from ci_ml.records import GateReport, ModelCard, SmokeSample, read_optional, read_record

if TYPE_CHECKING:
    from ci_ml.project import Project


@dataclass
class Deployment:
    """What happened, step by step, for the CLI and the registry history."""

    version: str
    previous: str | None
    steps: list[str] = field(default_factory=list)
    rolled_back: bool = False
    reason: str = ""


def verify(project: Project, run_dir: Path, approvals: list[str]) -> tuple[GateReport, ModelCard]:
    """The gate report and model card, after checking they describe this very model file,
    that nothing the gate judged changed since, and that the gates judged again agree."""
    gate_report = read_record(run_dir / rundir.GATE_REPORT, GateReport)
    card = read_record(run_dir / rundir.MODEL_CARD, ModelCard)
    digest = sha256_file(rundir.require(run_dir, card.model_file))
    judged = gate_report.candidate.digest
    if digest != judged or digest != card.digest:
        raise ModelFileError(
            f"{run_dir / card.model_file} has digest {digest[:12]} but the decision record "
            f"judged {str(judged)[:12]}; refusing to deploy a model the gates did not see."
        )
    _same_inputs(project, run_dir, gate_report)
    _judged_again(project, run_dir, gate_report)
    if gate_report.baseline and gate_report.baseline.unread:
        raise BadInputError(
            "these gates could not read production (a fork's pull request run); only a run "
            "that compared the candidate with production deploys — run the gates again."
        )
    verdict = gate_report.verdict
    if verdict == "inconclusive" and not approvals:
        raise BadInputError(
            "the verdict is inconclusive; it deploys only with a maintainer's approval "
            "(a GitHub Environment with required reviewers, or --approved-by)."
        )
    if verdict not in ("pass", "inconclusive"):
        raise GateBlocked(  # exit 1, as at the gate: the gates blocked this candidate
            f"the verdict is {verdict} ({'; '.join(gate_report.reasons) or 'see the report'}); "
            "only a passing candidate deploys."
        )
    return gate_report, card


INPUT_NAMES = {
    "config": "the gating settings of ci-ml.yaml (gates, comparison, slices, export)",
    "data_report": rundir.DATA_REPORT,
    "evaluation": rundir.EVALUATION,
    "parity": rundir.PARITY,
}


def _same_inputs(project: Project, run_dir: Path, gate_report: GateReport) -> None:
    """Refuse when the config or a record the gate judged differs from what it judged."""
    now = decide.inputs(project, run_dir)
    for key, then in gate_report.inputs.model_dump().items():
        if now[key] != then:
            what = INPUT_NAMES[key]
            raise BadInputError(
                f"{what} changed after the gate judged this run (sha256 {str(then)[:12]} then, "
                f"{str(now[key])[:12]} now); refusing to deploy — run 'ci-ml gate' again "
                "('ci-ml run' if the config or the data changed)."
            )


def _judged_again(project: Project, run_dir: Path, gate_report: GateReport) -> None:
    """Refuse a decision record whose verdicts the gates, judged again, do not give."""
    found = decide.judge(project, run_dir)
    recorded = [(g.name, g.verdict) for g in gate_report.gates]
    again = [(r.name, r.verdict) for r in found.results]
    if recorded != again:
        differs = [
            f"{a[0]}: {a[1]} recorded, {b[1]} now"
            for a, b in zip(recorded, again, strict=False)
            if a != b
        ]
        why = differs[0] if differs else f"{len(recorded)} gates recorded, {len(again)} now"
    elif found.evaluation and found.evaluation.candidate.digest != gate_report.candidate.digest:
        why = f"{rundir.EVALUATION} judged model {found.evaluation.candidate.digest[:12]}"
    elif found.verdict != gate_report.verdict:
        why = "the gates agree, the verdict does not"
    elif found.data_report.data_version != gate_report.data_version:
        now = found.data_report.data_version
        why = f"data version {gate_report.data_version} recorded, {now} judged"
    else:
        return
    raise BadInputError(
        f"the decision record says {gate_report.verdict} but the gates judged again from "
        f"the run's files say {found.verdict} ({why}); refusing to deploy — run "
        "'ci-ml gate' again."
    )


# --- targets ------------------------------------------------------------------------


def _notify_http(target: TargetConfig, version: str, digest: str) -> str:
    import requests

    assert target.url is not None
    token = os.environ.get(target.token_env, "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = requests.post(target.url, headers=headers, timeout=60)
    except requests.RequestException as exc:
        raise ServiceError(f"{target.url} did not answer ({type(exc).__name__}).") from None
    if answer.status_code >= 400:
        detail = detail_of(answer)
        raise ServiceError(f"{target.url} refused the reload ({answer.status_code}: {detail}).")
    return f"notified {target.url}"


def _notify_command(target: TargetConfig, version: str, digest: str) -> str:
    assert target.run is not None
    env = {**os.environ, "CI_ML_MODEL_VERSION": version, "CI_ML_MODEL_DIGEST": digest}
    done = subprocess.run(target.run, shell=True, env=env, check=False)
    if done.returncode != 0:
        raise ServiceError(f"the deploy command {target.run!r} exited with {done.returncode}.")
    return f"ran {target.run!r}"


TARGETS: dict[str, Callable[[TargetConfig, str, str], str]] = {
    "http": _notify_http,
    "command": _notify_command,
}


def notify(config: DeployConfig, version: str, digest: str) -> list[str]:
    """Tell every configured target about the new production version."""
    return [TARGETS[t.type](t, version, digest) for t in config.targets]


def go_live(config: Config, version: str, digest: str, sample: SmokeSample | None) -> list[str]:
    """Notify and smoke-test; raises CiMlError with the reason on any failure."""
    return notify(config.deploy, version, digest) + smoke(config.deploy, digest, sample)


def roll_back(config: Config, registry: Any, deployment: Deployment, by: str, reason: str) -> None:
    """Put the previous version back, tell the targets, check it is served again."""
    deployment.rolled_back, deployment.reason = True, reason
    if deployment.previous is None:
        deployment.steps.append("nothing to roll back to (first model); production left empty")
        return
    registry.promote(
        deployment.previous, deployment.version, by=by, record={"reason": reason}, action="rollback"
    )
    previous = registry.get(deployment.previous)
    deployment.steps.append(f"rolled back to {deployment.previous}")
    try:
        deployment.steps += go_live(config, previous.version, previous.digest, None)
    except CiMlError as exc:
        deployment.steps.append(f"the rollback's own check failed: {exc}")


def deploy_run(
    project: Project,
    registry: Any,
    run_dir: Path,
    *,
    by: str,
    approvals: list[str],
    context: dict[str, Any],
    register: Callable[[], Any] | None = None,
) -> Deployment:
    """Verify, promote (compare-and-swap), go live; roll back and say why on any failure.

    A verified candidate that is not in the registry yet (the gate ran in another job) is
    registered first with ``register``.
    """
    config = project.config
    gate_report, card = verify(project, run_dir, approvals)
    sample = read_optional(run_dir, rundir.SMOKE, SmokeSample)  # a damaged one: before promoting
    version = _registered(registry, card.digest, register)
    expected = gate_report.baseline.version if gate_report.baseline else None
    record = {
        "gate_report_sha256": sha256_file(rundir.require(run_dir, rundir.GATE_REPORT)),
        "verdict": gate_report.verdict,
        "compared_with": expected,
        "approved_by": approvals,
        **context,
    }
    event = registry.promote(version, expected, by=by, record=record)
    deployment = Deployment(version, event.previous, [f"promoted {version} (event #{event.seq})"])
    try:
        deployment.steps += go_live(config, version, card.digest, sample)
    except CiMlError as exc:
        roll_back(config, registry, deployment, by, str(exc))
    return deployment


def _registered(registry: Any, digest: str, register: Callable[[], Any] | None) -> str:
    try:
        return str(registry.get(digest).version)
    except BadInputError:
        if register is not None:
            return str(register().version)
        raise BadInputError(
            f"model {digest[:12]} is not in the registry; 'ci-ml run' registers a passing "
            "candidate — run it (or 'ci-ml registry' against the right --registry) first."
        ) from None


def rollback(config: Config, registry: Any, *, to: str | None, by: str, reason: str) -> Deployment:
    """Put ``to`` (default: the version production replaced last) back in production."""
    history = registry.history()
    if not history:
        raise BadInputError("nothing has been promoted yet, so there is nothing to roll back.")
    head = history[-1]
    target = to or head.previous
    if target is None:
        raise BadInputError(
            f"{head.version} is the first production model; name a version with --to."
        )
    version = registry.get(target)
    event = registry.promote(
        version.version, head.version, by=by, record={"reason": reason}, action="rollback"
    )
    deployment = Deployment(
        version.version, head.version, [f"rolled back to {version.version} (event #{event.seq})"]
    )
    deployment.steps += go_live(config, version.version, version.digest, None)
    return deployment
