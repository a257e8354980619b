"""The monitor's human report (``monitor-report.md``), in the style of the PR report.

Status first, then the features worst first, the predictions, performance against the
gate, and the settings in a collapsed section. Plain GitHub-flavoured Markdown: the same
text is the job summary and the body of the GitHub issue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ci_ml.records import DecayEntry, FeatureDrift, Measure, MonitorReport
from ci_ml.report import table

ICONS = {"fine": "✅", "drifting": "⚠️", "stale": "❌"}
VERDICT_ICONS = {"decayed": "❌", "fine": "✅", "inconclusive": "⚠️"}
SHOWN_ROWS = 10  # rows shown before the rest folds into <details> (drifted ones always show)
MEASURE_TITLES = {
    "psi": "PSI",
    "wasserstein": "Wasserstein / σ",
    "missing_share_change": "Δ missing share",
    "jensen_shannon": "Jensen-Shannon",
}


def headline(record: MonitorReport) -> str:
    """The first line: the status and the most serious reason."""
    status = record.status
    reasons = record.reasons
    return f"## {ICONS.get(status, '')} ci-ml monitor: **{status.upper()}** — " + (
        reasons[0] if reasons else _all_clear(record)
    )


def _all_clear(record: MonitorReport) -> str:
    features = {f.feature for f in record.features if f.kind != "missing"}
    unsure = sum(1 for d in record.decay if d.verdict == "inconclusive")
    if not record.decay:
        judged = "performance not judged"
    elif unsure:
        judged = f"no metric decayed ({unsure} of {len(record.decay)} too close to tell)"
    else:
        judged = "performance holds"
    return f"no drift in {len(features)} features or the predictions; {judged}"


def render(record: MonitorReport, links: Mapping[str, str] | None = None) -> str:
    """The whole report as Markdown."""
    lines = [headline(record), "", *_summary(record)]
    lines += _drift_table("Features, worst first", record.features, _count(record))
    lines += _drift_table("Predictions", record.predictions, None)
    lines += _decay(record)
    lines += _settings(record)
    if links:
        lines += ["", " · ".join(f"[{name}]({url})" for name, url in links.items())]
    return "\n".join(lines).rstrip() + "\n"


def _summary(record: MonitorReport) -> list[str]:
    source = record.recent.source
    where = f"{source.get('kind', 'data')} `{source.get('path', '?')}`"
    reference = record.reference
    whose = "holdout" if reference.predictions == "holdout" else "training"
    lines = [
        f"Production `{record.production.version}` · reference {reference.rows} "
        f"training rows, predictions on {reference.prediction_rows} {whose} rows · "
        f"recent {record.recent.rows} rows from {where} · {record.labelled.rows} labelled",
        "",
    ]
    for reason in record.reasons[1:]:
        lines.append(f"- {reason}")
    lines += [""] if len(record.reasons) > 1 else []
    for note in record.notes:
        lines += [f"> [!NOTE]\n> {_sentence(note)}", ""]
    return lines


def _sentence(text: str) -> str:
    """``text`` ending in one full stop."""
    return text.rstrip().rstrip(".") + "."


def _count(record: MonitorReport) -> str:
    drifted = sum(1 for f in record.features if f.drifted)
    return f"{drifted} of {len(record.features)} rows drifted"


def _decay(record: MonitorReport) -> list[str]:
    labelled = record.labelled
    title = f"### Performance vs the gate ({labelled.rows} labelled rows)"
    if not record.decay:
        return [title, "", f"_Not judged: {_sentence(labelled.note or 'no outcomes')}_", ""]
    rows = [
        [
            f"{VERDICT_ICONS.get(d.verdict, '')} {d.verdict}",
            d.metric,
            _at_gate(d),
            d.recent,
            f"{d.change:+.4f} [{d.change_low:+.4f}, {d.change_high:+.4f}] ({d.confidence:.1%})",
            _allowed(d),
        ]
        for d in record.decay
    ]
    header = ["verdict", "metric", "at the gate", "recent", "change (CI)", "allowed"]
    methods = sorted({d.change_method for d in record.decay})
    return [title, "", *table(header, rows), "", f"Change intervals: {'; '.join(methods)}.", ""]


def _at_gate(d: DecayEntry) -> str:
    where = f"{d.gate_rows} holdout rows" if d.gate_rows is not None else "taken as exact"
    return f"{d.recorded:.4g} ({where})"


def _allowed(d: DecayEntry) -> str:
    side, way = ("≥", "below") if d.higher_is_better else ("≤", "above")
    if d.allowed_drop_relative is not None:
        size = f"{d.allowed_drop_relative:.1%} of {d.recorded:.4g}"
    else:
        size = f"{d.allowed_drop:g}"
    return f"{side} {d.limit:.4g} ({size} {way} the gate)"


def _drift_table(title: str, entries: Sequence[FeatureDrift], count: str | None) -> list[str]:
    if not entries:
        return []
    names = [n for n in MEASURE_TITLES if any(_measure(e, n) for e in entries)]
    header = ["", "feature", "kind", "change", *(_measure_title(entries, n) for n in names)]
    rows = [_drift_row(entry, names) for entry in entries]
    shown = max(SHOWN_ROWS, sum(1 for e in entries if e.drifted))
    heading = f"### {title} ({count})" if count else f"### {title}"
    lines = [heading, "", *table(header, rows[:shown]), ""]
    if len(rows) > shown:
        lines += [
            f"<details><summary>{len(rows) - shown} more, none drifted</summary>",
            "",
            *table(header, rows[shown:]),
            "",
            "</details>",
            "",
        ]
    return lines


def _drift_row(entry: FeatureDrift, names: Sequence[str]) -> list[Any]:
    mark = "⚠️ drifted" if entry.drifted else "✅"
    cells = [_measure_cell(_measure(entry, name)) for name in names]
    return [mark, entry.feature, entry.kind, entry.summary or None, *cells]


def _measure_title(entries: Sequence[FeatureDrift], name: str) -> str:
    judged = any((m := _measure(e, name)) is not None and m.limit is not None for e in entries)
    return f"{MEASURE_TITLES[name]} / limit" if judged else f"{MEASURE_TITLES[name]} (info)"


def _measure(entry: FeatureDrift, name: str) -> Measure | None:
    return next((m for m in entry.measures if m.name == name), None)


def _measure_cell(measure: Measure | None) -> str | None:
    if measure is None:
        return None
    if measure.limit is None:
        return f"{measure.value:.4f}"
    text = f"{measure.value:.4f} / {measure.limit:.4f}"
    return f"**{text}**" if measure.drifted else text


def _settings(record: MonitorReport) -> list[str]:
    drift = record.settings.drift
    decay = record.settings.decay
    rows = [
        ["PSI (numeric: reference deciles; categorical: top categories)", drift.psi],
        ["Wasserstein-1 / reference std (numeric)", drift.wasserstein],
        ["change of the missing share", drift.missing],
        ["allowed metric drop (default, in the metric's units)", decay.max_drop],
        ["allowed rise of rmse, mae (share of the value at the gate)", decay.max_relative_drop],
        *[[f"allowed drop of {k}", v] for k, v in decay.max_drop_by_metric.items()],
        ["confidence of the decay intervals", decay.confidence],
    ]
    return [
        "<details><summary>Thresholds and method</summary>",
        "",
        *table(["setting", "value"], rows),
        "",
        "Drift is judged on effect sizes, not p-values (on large samples a test flags "
        "changes far too small to matter). A limit never sits below the noise floor: the "
        "value that sampling alone exceeds about once in a thousand with these row counts.",
        "",
        "</details>",
    ]
