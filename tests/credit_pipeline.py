"""The DVC pipeline example (``examples/credit-pipeline/``) as a real git + DVC repository.

Like ``make_example_repo`` in conftest: the tracked files only (no data, no dvc.lock, no DVC
cache), so ``ci-ml run`` pulls the credit data from the copied ``dvc-storage/`` remote and
reproduces the ``split`` and ``train`` stages as on a fresh clone.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_example_repo

# the project's config, relative to the repository root (the project root is its folder)
PIPELINE = Path("examples/credit-pipeline")
PIPELINE_CONFIG = PIPELINE / "ci-ml.yaml"
PIPELINE_FILES = [
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data.dvc",
    "dvc-storage",
    "expectations",
    *(
        str(PIPELINE / name)
        for name in (".gitignore", "ci-ml.yaml", "dvc.yaml", "params.yaml", "split.py", "train.py")
    ),
]


def pipeline_project(dest: Path) -> Path:
    """A fresh git + DVC repository holding the pipeline example; returns its root.

    Run it with ``run_cli("run", "--config", str(root / PIPELINE_CONFIG), cwd=root)``.
    """
    return make_example_repo(dest, files=PIPELINE_FILES)
