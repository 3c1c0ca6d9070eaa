"""The `handgrad` command line: parsing, validation and rendering only."""

from handgrad.cli.main import main, run

__all__ = ["main", "run"]
