"""The `handgrad` command line: parsing and validation (`parser`), what each subcommand does
(`commands`), exit codes (`exits`), and `main(argv) -> int` (`main`)."""

from handgrad.cli.main import main, run

__all__ = ["main", "run"]
