"""``python -m aiweb`` runs the CLI."""

from aiweb.cli import main

main()
