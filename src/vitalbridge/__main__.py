"""``python -m vitalbridge`` runs the CLI."""

from vitalbridge.cli import main

main()
