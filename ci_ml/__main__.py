"""``python -m ci_ml`` runs the CLI."""

from ci_ml.cli.app import main

main()
