"""The report's "What changed since production": params and data, from the registry record."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ci_ml.records import Aspect, Changes, Difference, Evaluation
from ci_ml.report.markdown import folded, table

SHOWN_CHANGES = 6  # changed params, and changed parts of the data, shown before "the rest"
HASH = re.compile(r"^(?:(\w+):)?([0-9a-f]{16,})(\.dir)?$")  # md5:<hex>[.dir], as DVC writes


def model_params_section(evaluation: Evaluation | None) -> list[str]:
    """The candidate's estimator and its params in full (get_params), folded."""
    if not evaluation:
        return []
    model = evaluation.model
    rows = [[k, _param(v)] for k, v in sorted(model.params.items())]
    body = [f"Estimator `{model.estimator}`", "", *table(["param", "value"], rows)]
    return folded("Model parameters", body)


def what_changed_section(changes: Changes | None) -> list[str]:
    """Params and data, production → candidate, from their model.json records: only what
    differs (the first few open, the rest folded), what is the same counted."""
    if changes is None:
        return []
    params, data = _param_rows(changes), _data_rows(changes)
    same, unknown = _same(changes), _not_compared(changes)
    lines = [f"### What changed since production {changes.production}", ""]
    if not params and not data and not unknown:
        return [*lines, f"Nothing changed: {same} are the same as production's.", ""]
    compared = [a for a in _data_aspects(changes) if a is not None and a.problem is None]
    title = f"Params** ({_source(changes)})" if changes.params.problem is None else "Model**"
    lines += _change_table(title, "param", params, changes.params)
    lines += _change_table("Data**", "", data, compared[0] if compared else None)
    lines += [f"Unchanged: {same}.", ""] if same else []
    return [*lines, "Not compared:", "", *unknown, ""] if unknown else lines


def _change_table(title: str, key: str, rows: list[list[str]], aspect: Aspect | None) -> list[str]:
    """The changed rows (a few open, the rest folded); "none changed" if compared."""
    if not rows:
        compared = aspect is not None and aspect.problem is None
        return [f"**{title}: none changed.", ""] if compared else []
    header = [key, "production", "candidate"]
    lines = [f"**{title}: {len(rows)} changed", "", *table(header, rows[:SHOWN_CHANGES]), ""]
    if len(rows) > SHOWN_CHANGES:
        rest = table(header, rows[SHOWN_CHANGES:])
        lines += folded(f"The other {len(rows) - SHOWN_CHANGES} changes", rest)
    return lines


def _source(changes: Changes) -> str:
    if changes.params_source == "dvc_stage":
        return "the dvc stage's"
    return "ci-ml.yaml's `model.params`"


def _data_aspects(changes: Changes) -> list[Aspect | None]:
    return [changes.data_version, changes.training_rows, changes.dvc_deps, changes.features]


def _param_rows(changes: Changes) -> list[list[str]]:
    found = [*changes.model.changed, *changes.params.changed]
    return [[d.key, *_sides(d, _param)] for d in found]


def _data_rows(changes: Changes) -> list[list[str]]:
    rows = [["data version", *_sides(d, _hash)] for d in changes.data_version.changed]
    for d in changes.training_rows.changed:
        old, new = d.production, d.candidate
        grew = f" ({new - old:+d})" if isinstance(old, int) and isinstance(new, int) else ""
        rows.append(["training rows", _param(old), f"{_param(new)}{grew}"])
    deps = changes.dvc_deps.changed if changes.dvc_deps else []
    rows += [[f"dependency {d.key}", *_sides(d, _hash)] for d in deps]
    rows += [[f"feature {d.key}", *_sides(d, _param)] for d in changes.features.changed]
    return rows


def _sides(d: Difference, shown: Callable[[Any], str]) -> tuple[str, str]:
    """A difference's production and candidate cells; '—' on the side without the key."""
    old = "—" if d.change == "added" else shown(d.production)
    new = "—" if d.change == "removed" else shown(d.candidate)
    return old, new


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _hash(value: Any) -> str:
    """A DVC hash shortened to 8 characters (``md5:01234567…``)."""
    found = HASH.match(str(value))
    if not found:
        return _param(value)
    kind, digest, suffix = found.groups()
    return f"{kind + ':' if kind else ''}{digest[:8]}…{suffix or ''}"


def _same(changes: Changes) -> str:
    """What both records hold alike: ``the estimator, 2 params, the data version, ...``."""
    said = []
    if changes.model.problem is None:
        changed = {d.key for d in changes.model.changed}
        named = {"estimator": "the estimator", "trained by": "the trainer"}
        said += [name for key, name in named.items() if key not in changed]
    for aspect, name in [
        (changes.data_version, "the data version"),
        (changes.training_rows, "the training rows"),
    ]:
        if aspect.problem is None and aspect.unchanged:
            said.append(name)
    counted = [
        (changes.params, "param", "params"),
        (changes.dvc_deps, "dependency", "dependencies"),
        (changes.features, "feature column", "feature columns"),
    ]
    for part, one, many in counted:
        if part is not None and part.problem is None and part.unchanged:
            said.append(f"{part.unchanged} {one if part.unchanged == 1 else many}")
    return ", ".join(said)


def _not_compared(changes: Changes) -> list[str]:
    """One line per reason a part was not compared, naming the parts."""
    named = {
        "the estimator": changes.model,
        "params": changes.params,
        "data version": changes.data_version,
        "training rows": changes.training_rows,
        "dependencies": changes.dvc_deps,
        "feature columns": changes.features,
    }
    by_problem: dict[str, list[str]] = {}
    for name, aspect in named.items():
        if aspect is not None and aspect.problem is not None:
            by_problem.setdefault(aspect.problem, []).append(name)
    return [f"- {', '.join(names)}: {why}" for why, names in by_problem.items()]
