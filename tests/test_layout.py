"""The house rules of ``ci_ml/``: no import circles, layers that only import downwards, one
folder per area, and a command line that loads no heavy library to print its help.

Every import statement counts, wherever it stands: at the top, inside a function or under
``if TYPE_CHECKING:`` — a circle that only works because one side imports lazily is still a
circle. Like dvc's ``tests/unit/test_imports.py`` for the last rule.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ci_ml"
AREAS = (
    "api",
    "cli",
    "deploy",
    "engines",
    "evaluation",
    "export",
    "github",
    "models",
    "monitor",
    "registry",
    "report",
    "serve",
    "training",
)
HEAVY = ("sklearn", "pandas", "great_expectations", "dvc", "fastapi", "onnxruntime")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The ci_ml modules ``path`` imports (any statement, at any depth), with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ci_ml":
                    yield _known(alias.name, known), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "ci_ml":
                continue
            # ``from package import module`` runs the package's __init__ first: both count
            yield _known(base, known), node.lineno
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub, node.lineno


def _known(name: str, known: dict[str, Path]) -> str:
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _line in imported(path, known):
            if target != name and target != "ci_ml":
                edges[name].add(target)
    return edges


def test_no_import_circles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_nothing_outside_the_cli_imports_it() -> None:
    """Only ``python -m ci_ml`` (``ci_ml/__main__.py``) starts the command line."""
    bad = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        if not within(name, "ci_ml.cli") and name != "ci_ml.__main__"
        for target in targets
        if within(target, "ci_ml.cli")
    ]
    assert bad == []


@pytest.mark.parametrize("area", ["evaluation", "export", "serve", "monitor"])
def test_areas_never_call_up_into_the_steps(area: str) -> None:
    edges = graph()
    bad = [
        f"{name} imports {target}"
        for name, targets in edges.items()
        if name.startswith(f"ci_ml.{area}")
        for target in targets
        if within(target, "ci_ml.api") or target == "ci_ml.project" or within(target, "ci_ml.cli")
    ]
    assert bad == []


def test_evaluation_knows_nothing_of_github() -> None:
    edges = graph()
    bad = [
        f"{name} imports {target}"
        for name, targets in edges.items()
        if name.startswith("ci_ml.evaluation")
        for target in targets
        if target.startswith("ci_ml.github")
    ]
    assert bad == []


def test_library_modules_import_ci_ml_at_the_top() -> None:
    """Lazy ci_ml imports hide circles; outside the CLI (which keeps --help fast) they are only
    allowed where a module opens an optional extra."""
    lazy = []
    known = modules()
    for name, path in known.items():
        if name.startswith("ci_ml.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in node.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import) and id(node) not in top:
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                if any(n.split(".")[0] == "ci_ml" for n in names) and not _opens_an_extra(node):
                    lazy.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert lazy == []


# ci_ml modules that need an optional extra's library at import time: importing them lazily
# is how ci-ml says which extra to install
EXTRA_MODULES = {"ci_ml.registry.objectstore", "ci_ml.serve.routes", "ci_ml.serve.server"}


def _opens_an_extra(node: ast.Import | ast.ImportFrom) -> bool:
    name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
    return name in EXTRA_MODULES


def test_one_folder_per_area_and_no_prefix_families() -> None:
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    folders = [e for e in entries if (PACKAGE / e).is_dir()]
    assert sorted(folders) == sorted(AREAS)
    stems = [Path(e).stem for e in entries if e.endswith(".py")]
    for area in AREAS:
        family = [s for s in stems if s.startswith(area[:4]) and s != area]
        assert family == [], f"{family} belong in ci_ml/{area}/"
    assert len(entries) <= 27, entries


def test_the_cli_imports_no_heavy_library() -> None:
    code = (
        "import json, sys; import ci_ml.cli.app; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
