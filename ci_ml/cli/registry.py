"""``ci-ml registry list|show|history|promote``: model versions and the production pointer."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from ci_ml.cli.common import (
    ConfigOpt,
    JsonOpt,
    RegistryOpt,
    err,
    open_registry,
    print_json,
    project,
)


def _registry(config: Path, url: str | None) -> Any:
    """``--registry`` alone (no ci-ml.yaml needed), else the project's registry."""
    if url:
        return open_registry(None, url)
    return open_registry(project(config), None)


def _version_row(version: Any, production: str | None) -> str:
    mark = "*" if version.version == production else " "
    metrics = version.metadata.get("metrics") or {}
    shown = ", ".join(f"{k}={v:.4f}" for k, v in list(metrics.items())[:3] if isinstance(v, float))
    return f"{mark} {version.version}  {version.created_at[:19]}  {version.registered_by}  {shown}"


def list_versions(
    config: ConfigOpt = Path("ci-ml.yaml"), registry: RegistryOpt = None, json_: JsonOpt = False
) -> None:
    """List the registered versions, newest first (* marks production)."""
    reg = _registry(config, registry)
    versions = reg.list_versions()
    production = reg.get_production()
    current = production.version if production else None
    if json_:
        print_json({"production": current, "versions": [asdict(v) for v in versions]})
        return
    if not versions:
        err("no model registered yet; 'ci-ml run' registers a passing candidate.")
    for version in versions:
        print(_version_row(version, current))


def show(
    version: Annotated[str, typer.Argument(help="Version (12 hex) or full digest; 'production'.")],
    config: ConfigOpt = Path("ci-ml.yaml"),
    registry: RegistryOpt = None,
) -> None:
    """Show one version's record as JSON."""
    from ci_ml.errors import BadInputError

    reg = _registry(config, registry)
    found = reg.get_production() if version == "production" else reg.get(version)
    if found is None:
        raise BadInputError(
            "no model is in production yet; promote one with 'ci-ml registry promote'."
        )
    print_json(asdict(found))


def history(
    config: ConfigOpt = Path("ci-ml.yaml"), registry: RegistryOpt = None, json_: JsonOpt = False
) -> None:
    """The production history: what was promoted or rolled back, when, by whom."""
    events = _registry(config, registry).history()
    if json_:
        print_json([asdict(e) for e in events])
        return
    if not events:
        err("nothing has been promoted yet.")
    for e in events:
        print(
            f"{e.seq:>4}  {e.at[:19]}  {e.action:<8} {e.version}  "
            f"(was {e.previous or '—'})  by {e.by}"
        )


def promote(
    version: Annotated[str, typer.Argument(help="The version to put in production.")],
    expected_current: Annotated[
        str | None,
        typer.Option(
            "--expected-current",
            help="Refuse (exit 4) unless this version is in production now; "
            "'none' when nothing is. Default: whatever is in production now.",
        ),
    ] = None,
    config: ConfigOpt = Path("ci-ml.yaml"),
    registry: RegistryOpt = None,
) -> None:
    """Put a registered version in production (compare-and-swap; exit 4 on a conflict)."""
    from ci_ml.project import actor

    reg = _registry(config, registry)
    if expected_current is None:
        current = reg.get_production()
        expected = current.version if current else None
    else:
        expected = None if expected_current.lower() == "none" else expected_current
    event = reg.promote(version, expected, by=actor(), record={"via": "ci-ml registry promote"})
    print(f"production is now {event.version} (was {event.previous or 'none'}), event #{event.seq}")
