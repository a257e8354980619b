"""The multiclass example project (``examples/hpc/``) as a real git + DVC repository.

Like ``make_example_repo`` in conftest for the credit example: the tracked files only (no data,
no DVC cache), so ``ci-ml run`` pulls ``examples/hpc/data/`` from the copied ``dvc-storage/``
remote as on a fresh clone.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_example_repo

# the project's config, relative to the repository root (the project root is its folder)
HPC_CONFIG = Path("examples/hpc/ci-ml.yaml")
# files of the repository that the copy needs: the DVC setup and remote (shared with the
# credit example) and the project's own files, not its pulled data or run directories
HPC_FILES = [
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "dvc-storage",
    "examples/hpc/.gitignore",
    "examples/hpc/ci-ml.yaml",
    "examples/hpc/data.dvc",
    "examples/hpc/expectations",
]


def hpc_project(tmp_path: Path) -> Path:
    """A fresh git + DVC repository holding the hpc example; returns its root.

    Run it with ``run_cli("run", "--config", str(root / HPC_CONFIG), cwd=root)``.
    """
    return make_example_repo(tmp_path / "hpc", files=HPC_FILES)
