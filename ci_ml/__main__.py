"""``python -m ci_ml`` runs the CLI."""

from ci_ml.cli import main

main()
