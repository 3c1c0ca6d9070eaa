"""`SettingError`: a bad setting, named as the library names it (`lr must be > 0`).

It carries the names of the settings its message mentions, so that a front end can name
them its own way: the CLI writes `--lr must be > 0` (`handgrad.cli.main`)."""

from __future__ import annotations


class SettingError(ValueError):
    """ValueError whose message names `settings` (TrainConfig's field names, `out`, …)."""

    def __init__(self, message: str, *settings: str) -> None:
        super().__init__(message)
        self.settings = settings
