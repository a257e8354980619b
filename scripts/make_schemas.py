"""Write the JSON Schemas of the run records and of ``ci-ml.yaml`` into ``docs/schemas/``.

    python scripts/make_schemas.py          # (re)write them
    python scripts/make_schemas.py --check  # exit 1 naming every stale file

One ``<file-name>.schema.json`` per run record in :data:`ci_ml.records.RECORDS` (e.g.
``gate-report.schema.json``) and ``ci-ml.schema.json`` for the config, each generated from
its pydantic model (draft 2020-12). The output is deterministic (sorted keys, indent 2,
trailing newline), so ``tests/test_records.py`` can check the files are current.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ci_ml.config import CONFIG_FILE, Config
from ci_ml.records import RECORDS

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
CONFIG_SCHEMA = "ci-ml.schema.json"
SUFFIX = ".schema.json"


def schema_file(name: str) -> str:
    """``gate-report.json`` -> ``gate-report.schema.json``."""
    return name.removesuffix(".json") + SUFFIX


def generate() -> dict[str, str]:
    """Every schema file's name and text."""
    models: dict[str, tuple[str, type[BaseModel]]] = {CONFIG_SCHEMA: (CONFIG_FILE, Config)}
    models.update({schema_file(name): (name, model) for name, model in RECORDS.items()})
    return {file: _text(file, title, model) for file, (title, model) in sorted(models.items())}


def _text(file: str, title: str, model: type[BaseModel]) -> str:
    schema: dict[str, Any] = {
        **model.model_json_schema(),
        "$schema": DRAFT,
        "$id": f"urn:ci-ml:{file}",
        "title": title,
    }
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stale(directory: Path = SCHEMAS) -> list[str]:
    """Files in ``directory`` that differ from :func:`generate`, are missing, or are left over."""
    wanted = generate()
    found = {p.name for p in directory.glob(f"*{SUFFIX}")} if directory.is_dir() else set()
    out = [n for n, text in wanted.items() if not _same(directory / n, text)]
    return out + sorted(found - set(wanted))


def _same(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == text


def write(directory: Path = SCHEMAS) -> list[str]:
    """Write every schema, remove left-over ones; returns the files changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale(directory)
    wanted = generate()
    for name in changed:
        path = directory / name
        if name in wanted:
            path.write_text(wanted[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    where = SCHEMAS.relative_to(ROOT)
    if args.check:
        names = stale()
        for name in names:
            print(f"stale: {where / name}", file=sys.stderr)
        if names:
            print("run: python scripts/make_schemas.py", file=sys.stderr)
        return 1 if names else 0
    for name in write():
        print(f"wrote {where / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
