"""`python -m handgrad`: the `handgrad` command."""

from handgrad.cli import run

run()
