"""What the runner would download for GitHub's own actions, done here instead.

The runner cannot download actions/checkout and the others (no github.com from here), and
upload-artifact needs GitHub's artifact service. Each stand-in does what its action's
README promises for the inputs the workflows use, on the same state GitHub keeps
(repositories, artifacts, caches; see runner.GitHub), and refuses inputs it does not
know, so a workflow that relies on more fails here instead of passing by accident.
Only the pinned commits that tests/test_workflows.py allows are accepted.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import Job

PINNED = {
    "actions/checkout": "3d3c42e5aac5ba805825da76410c181273ba90b1",
    "actions/setup-python": "5fda3b95a4ea91299a34e894583c3862153e4b97",
    "actions/cache": "27d5ce7f107fe9357f9df03efb73ab90386fccae",
    "actions/upload-artifact": "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
    "actions/download-artifact": "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c",
}


class StepFailed(Exception):
    """The action failed; its message is what the runner logs as the error."""


def _known(inputs: dict[str, str], allowed: set[str]) -> None:
    unknown = set(inputs) - allowed
    if unknown:
        raise StepFailed(f"the stand-in does not know the inputs {sorted(unknown)}")


def checkout(job: Job, inputs: dict[str, str]) -> dict[str, str]:
    """Fetches the event's repository and checks out github.sha in the workspace."""
    _known(inputs, {"persist-credentials", "repository", "ref", "path", "fetch-depth"})
    github = job.run.github
    repo = github.repos[inputs.get("repository") or job.run.repository.full_name]
    dest = job.workspace / inputs.get("path", "")
    dest.mkdir(parents=True, exist_ok=True)
    sha = inputs.get("ref") or job.run.sha
    for args in (
        ["init", "-q"],
        ["fetch", "-q", "--no-tags", str(repo.path), "+refs/*:refs/remotes/origin/*"],
        ["checkout", "-q", "--detach", sha],
    ):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    if inputs.get("persist-credentials", "true") != "false":
        # what the action leaves behind: the token in the repository's git config
        subprocess.run(
            [
                "git",
                "config",
                "--local",
                "http.https://github.com/.extraheader",
                f"AUTHORIZATION: basic {job.token}",
            ],
            cwd=dest,
            check=True,
        )
    return {"ref": sha, "commit": sha}


def setup_python(job: Job, inputs: dict[str, str]) -> dict[str, str]:
    """A fresh virtual environment for the job, put first on PATH.

    This machine's runner image has one Python: it stands in for the version asked (the
    job records what was asked). The image already holds the wheels of the test
    environment, so pip installs offline from them: the venv sees the test environment's
    packages (pip and setuptools among them) after its own, and its pip.conf forbids the
    network.
    """
    _known(inputs, {"python-version", "cache", "check-latest"})
    job.asked["python-version"] = inputs.get("python-version", "")
    venv = job.home.parent / "tool" / "python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True
    )
    purelib = Path(sysconfig.get_paths()["purelib"])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    own = venv / "lib" / f"python{version}" / "site-packages"
    (own / "runner-image.pth").write_text(f"{purelib}\n", encoding="utf-8")
    (venv / "pip.conf").write_text(
        "[global]\nno-index = true\nno-build-isolation = false\ndisable-pip-version-check = true\n",
        encoding="utf-8",
    )
    # the image's DVC, as `pip install` of ci-ml puts it on PATH when it installs it there
    dvc = venv / "bin" / "dvc"
    dvc.write_text(f'#!/bin/sh\nexec "{venv}/bin/python" -m dvc "$@"\n', encoding="utf-8")
    dvc.chmod(0o755)
    job.add_path(venv / "bin")
    job.env["pythonLocation"] = str(venv)
    full = ".".join(map(str, sys.version_info[:3]))
    return {"python-version": full, "python-path": str(venv / "bin" / "python")}


def cache(job: Job, inputs: dict[str, str]) -> dict[str, str]:
    """Restores the newest cache of the key (or of a restore key's prefix); saves the path
    when the job ends, if the key was not an exact hit."""
    _known(inputs, {"path", "key", "restore-keys"})
    path, key = Path(inputs["path"]), inputs["key"]
    caches = job.run.github.caches
    found = key if key in caches else None
    if found is None:
        for prefix in filter(None, inputs.get("restore-keys", "").splitlines()):
            matches = [k for k in caches if k.startswith(prefix.strip())]
            if matches:
                found = matches[-1]
                break
    if found is not None:
        shutil.copytree(caches[found], path, dirs_exist_ok=True, symlinks=True)

    def save() -> None:
        if found != key and path.exists():
            stored = job.run.github.root / "caches" / str(len(caches))
            shutil.copytree(path, stored, symlinks=True)
            caches[key] = stored

    job.post.append(save)
    return {"cache-hit": "true" if found == key else "false"}


def upload_artifact(job: Job, inputs: dict[str, str]) -> dict[str, str]:
    _known(inputs, {"name", "path", "if-no-files-found", "retention-days", "overwrite"})
    source, name = Path(inputs["path"]), inputs.get("name") or "artifact"
    artifacts = job.run.github.artifacts
    if not source.exists() or (source.is_dir() and not any(source.iterdir())):
        if inputs.get("if-no-files-found", "warn") == "error":
            raise StepFailed(f"No files were found with the provided path: {source}")
        return {}
    if (job.run.id, name) in artifacts and inputs.get("overwrite") != "true":
        raise StepFailed(f"an artifact named {name} already exists in this run")
    stored = job.run.github.root / "artifacts" / f"{job.run.id}-{name}"
    shutil.rmtree(stored, ignore_errors=True)
    if source.is_dir():
        shutil.copytree(source, stored)  # links are followed, as the zip upload does
    else:
        stored.mkdir(parents=True)
        shutil.copy2(source, stored / source.name)
    artifacts[(job.run.id, name)] = stored
    return {"artifact-id": str(len(artifacts))}


def download_artifact(job: Job, inputs: dict[str, str]) -> dict[str, str]:
    _known(inputs, {"name", "path", "run-id", "github-token", "pattern"})
    run_id = int(inputs.get("run-id") or job.run.id)
    if run_id != job.run.id and not inputs.get("github-token"):
        raise StepFailed("downloading another run's artifact needs github-token")
    if "name" not in inputs:  # every artifact of the run (matching pattern), each in its folder
        dest = Path(inputs.get("path") or job.workspace)
        for (of_run, name), stored in job.run.github.artifacts.items():
            if of_run == run_id and fnmatch.fnmatchcase(name, inputs.get("pattern") or "*"):
                shutil.copytree(stored, dest / name, dirs_exist_ok=True)
                job.run.github.downloads.append((job.run.id, run_id, name))
        return {"download-path": str(dest)}
    stored = job.run.github.artifacts.get((run_id, inputs["name"]))
    if stored is None:
        raise StepFailed(
            f"Unable to download artifact(s): Artifact not found for name: {inputs['name']}"
        )
    dest = Path(inputs.get("path") or job.workspace)
    shutil.copytree(stored, dest, dirs_exist_ok=True)
    job.run.github.downloads.append((job.run.id, run_id, inputs["name"]))
    return {"download-path": str(dest)}


STAND_INS: dict[str, Callable[[Job, dict[str, str]], dict[str, str]]] = {
    "actions/checkout": checkout,
    "actions/setup-python": setup_python,
    "actions/cache": cache,
    "actions/upload-artifact": upload_artifact,
    "actions/download-artifact": download_artifact,
}
