"""One report for a matrix of pipelines (``ci-ml combine``): every leg side by side.

A leg is one call of ml-pipeline.yml with its own ``name``; its run directory is the
artifact ``<name>-run``, so a folder named so gives the leg's name (or ``NAME=DIR`` says
it). The report heads with one row per leg — verdict, the key metrics with production's
and the change with its interval, whether the leg deploys — then each leg's own report,
folded.

Deploying: each leg's deploy job deploys its own model, in its own queue
(``ci-ml-deploy-<name>``), to the registry that leg names. So every passing leg deploys
on a push to the default branch; the table says so per leg, and marks with ★ the best
passing leg by the first change-gated metric, for a matrix of variants of one model where
only one should be kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci_ml import rundir
from ci_ml.errors import BadInputError, ConfigError, RunDirError
from ci_ml.gates import higher_is_better
from ci_ml.records import DataReport, Evaluation, GateReport, ModelCard, read_optional, read_record
from ci_ml.report.markdown import ICONS, folded, shown, table
from ci_ml.report.render import SLICE_MARK, render

ARTIFACT_SUFFIX = "-run"  # ml-pipeline.yml uploads a leg's run directory as <name>-run
KEY_METRICS = 4  # columns of metrics at most; the legs' own reports have them all
DEPLOYS = {
    "pass": "yes, on merge",
    "inconclusive": "only with deploy-inconclusive, after approval",
    "fail": "no",
}


@dataclass(frozen=True)
class Leg:
    """One pipeline of the matrix: its name and its run files."""

    name: str
    directory: Path
    gate_report: GateReport
    evaluation: Evaluation | None
    card: ModelCard | None
    report_md: str


def leg_name(directory: Path) -> str:
    """The leg a downloaded artifact folder is of: ``credit-run`` -> ``credit``."""
    name = directory.resolve().name
    return name.removesuffix(ARTIFACT_SUFFIX) or name


def read_legs(directories: Sequence[Path], named: Mapping[str, Path] | None = None) -> list[Leg]:
    """The legs in ``directories`` (named by their folder) and ``named`` (name -> folder)."""
    pairs = [(leg_name(d), d) for d in directories] + list((named or {}).items())
    if not pairs:
        raise BadInputError("no run directories to combine; give one per leg (DIR or NAME=DIR).")
    seen: dict[str, Path] = {}
    for name, directory in pairs:
        if name in seen:
            raise BadInputError(
                f"two run directories are the leg {name!r} ({seen[name]} and {directory}); "
                "give each leg its own name (ml-pipeline.yml's 'name', or NAME=DIR)."
            )
        seen[name] = directory
    return [read_leg(name, directory) for name, directory in pairs]


def read_leg(name: str, directory: Path) -> Leg:
    """One leg's records; a folder without a decision record is RunDirError."""
    if not (directory / rundir.GATE_REPORT).is_file():
        raise RunDirError(
            f"{directory} has no {rundir.GATE_REPORT}, so it is not the run directory of a "
            f"gated leg; pass the folders the legs' '<name>{ARTIFACT_SUFFIX}' artifacts were "
            "downloaded to."
        )
    gate_report = read_record(directory / rundir.GATE_REPORT, GateReport)
    evaluation = read_optional(directory, rundir.EVALUATION, Evaluation)
    card = read_optional(directory, rundir.MODEL_CARD, ModelCard)
    own = directory / rundir.REPORT
    if own.is_file():
        report_md = own.read_text(encoding="utf-8")
    else:
        data_report = read_optional(directory, rundir.DATA_REPORT, DataReport)
        report_md = render(gate_report, data_report, evaluation)
    return Leg(name, directory, gate_report, evaluation, card, report_md)


def combine(legs: Sequence[Leg], links: dict[str, str] | None = None) -> str:
    """The combined report as Markdown: the table of legs, then each leg's report folded."""
    metrics = key_metrics(legs)
    best = best_leg(legs)
    lines = [headline(legs), ""]
    header = ["leg", "verdict", "model", *metrics, "deploys"]
    rows = [_row(leg, metrics, best) for leg in legs]
    lines += [*table(header, rows), ""]
    lines += _deploy_note(best)
    for leg in legs:
        verdict = leg.gate_report.verdict
        summary = f"{ICONS.get(verdict, '')} {leg.name}: {verdict.upper()}"
        lines += folded(summary, [_demote(leg.report_md)])
    if links:
        lines += [" · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines).rstrip() + "\n"


def headline(legs: Sequence[Leg]) -> str:
    """The first line: the matrix's worst verdict and the count of each."""
    verdicts = [leg.gate_report.verdict for leg in legs]
    worst = next((v for v in ("fail", "inconclusive") if v in verdicts), "pass")
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in ICONS if v in verdicts)
    return f"## {ICONS[worst]} ci-ml matrix: {len(legs)} legs — {counts}"


def key_metrics(legs: Sequence[Leg]) -> list[str]:
    """The metrics the legs' gates judge (change gates first), else the first computed."""
    gates = [g for leg in legs for g in leg.gate_report.gates if g.metric]
    gates = [g for g in gates if SLICE_MARK not in g.name and g.kind in ("change", "threshold")]
    ordered = [g.metric for g in gates if g.kind == "change"] + [g.metric for g in gates]
    if not ordered:
        ordered = [m for leg in legs if leg.evaluation for m in leg.evaluation.candidate.metrics]
    return list(dict.fromkeys(m for m in ordered if m))[:KEY_METRICS]


def best_leg(legs: Sequence[Leg]) -> tuple[str, str] | None:
    """(leg, metric): the passing leg with the best candidate value of the first
    change-gated metric; None when fewer than two legs pass or no leg has that metric."""
    gates = [g for leg in legs for g in leg.gate_report.gates if g.kind == "change"]
    metric = next((g.metric for g in gates if g.metric and SLICE_MARK not in g.name), None)
    passing = [leg for leg in legs if leg.gate_report.verdict == "pass"]
    scored = [(leg, _value(leg, metric)) for leg in passing if metric]
    ranked = [(leg, value) for leg, value in scored if value is not None]
    if metric is None or len(ranked) < 2:
        return None
    higher = _higher(metric, ranked[0][0])
    winner = max(ranked, key=lambda pair: pair[1] if higher else -pair[1])[0]
    return winner.name, metric


def _row(leg: Leg, metrics: Sequence[str], best: tuple[str, str] | None) -> list[str | None]:
    verdict = leg.gate_report.verdict
    name = f"★ {leg.name}" if best and best[0] == leg.name else leg.name
    changed = {g.metric for g in leg.gate_report.gates if g.kind == "change"}
    cells = [_metric_cell(leg, m, m in changed) for m in metrics]
    model = _short(leg.card.estimator) if leg.card else None
    return [name, f"{ICONS.get(verdict, '')} {verdict}", model, *cells, DEPLOYS.get(verdict)]


def _metric_cell(leg: Leg, metric: str, change_gated: bool) -> str | None:
    """The candidate's value; production's beside it; the Δ and interval when gated on it."""
    evaluation = leg.evaluation
    if evaluation is None:
        return None
    comp = evaluation.comparisons.get(metric)
    value = evaluation.candidate.metrics.get(metric)
    if comp is None:
        return None if value is None else shown(value)
    text = f"{comp.candidate:.4f} (prod {comp.production:.4f})"
    if change_gated:
        text += f" Δ {comp.delta:+.4f} [{comp.ci_low:+.3f}, {comp.ci_high:+.3f}]"
    return text


def _deploy_note(best: tuple[str, str] | None) -> list[str]:
    note = (
        "Each leg deploys its own model, in its own queue and to its own registry, once a "
        "push to the default branch passes its gates."
    )
    if best:
        note += f" ★ marks the best passing leg by {best[1]}."
    return [note, ""]


def _value(leg: Leg, metric: str | None) -> float | None:
    if leg.evaluation is None or metric is None:
        return None
    return leg.evaluation.candidate.metrics.get(metric)


def _higher(metric: str, leg: Leg) -> bool:
    try:
        return higher_is_better(metric, leg.evaluation.classes if leg.evaluation else None)
    except (KeyError, ConfigError):
        return True


def _short(estimator: str) -> str:
    """``sklearn.linear_model.LogisticRegression`` -> ``LogisticRegression``."""
    return estimator.rsplit(".", 1)[-1].rsplit(":", 1)[-1]


def _demote(report_md: str) -> str:
    """A leg's report inside a fold: its headings one level down, under the matrix's."""
    return "\n".join(
        f"#{line}" if line.startswith("#") and not line.startswith("######") else line
        for line in report_md.splitlines()
    ).strip()
