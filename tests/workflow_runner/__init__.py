"""Whole GitHub Actions workflows run on this machine (see runner.py)."""

from .runner import GitHub, JobResult, Repository, WorkflowRun

__all__ = ["GitHub", "JobResult", "Repository", "WorkflowRun"]
