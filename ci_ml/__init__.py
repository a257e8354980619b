"""ci-ml: CI/CD for machine-learning models on GitHub Actions."""

__version__ = "0.1.0"
