"""What a sweep is, without Optuna: its configs, their keys and directory names, the metrics
each records, the settings that name its study, and how those settings are written (a storage
URL never with its password)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from handgrad.engine.errors import SettingError
from handgrad.run.config import TrainConfig

SWEEPABLE = ("lr", "weight_decay", "momentum", "optimizer", "batch_size", "hidden")
SELECT_BY = ("val_loss", "val_accuracy")
METRICS = ("status", "train_loss", "val_loss", "val_accuracy")  # what each config records
LOCATION_KEYS = ("device", "download", "data_dir")  # where a run happens, not what it is
EXERCISE_GRID = [  # (lr, weight_decay, momentum) of the classic exercise
    (0.001, 0.0, 0.0), (0.01, 0.0, 0.0), (0.001, 0.1, 0.9), (0.01, 0.0, 0.9),
]
_PASSWORD = r"(://[^/?#@:\s]*:)([^/?#@\s]*)@"  # scheme://user:PASSWORD@host


class SweepError(RuntimeError):
    """A sweep could not finish; rerunning the same command resumes it."""


class ConfigFailed(SweepError):
    """A config's training raised an error that a rerun would raise again: never say rerun."""

    @classmethod
    def of(cls, key: str, error: BaseException) -> ConfigFailed:
        why = " ".join(str(error).split()) or type(error).__name__
        return cls(f"config {key} failed ({type(error).__name__}: {why}); rerunning the same "
                   "command would fail the same way: change or drop that config")


@dataclass
class SweepSpec:
    """A base config and the configs to run: a full grid over `grid`, or explicit `points`."""

    base: TrainConfig
    grid: dict[str, list] = field(default_factory=dict)
    points: list[dict[str, Any]] | None = None
    command: list[str] | None = None  # recorded in every config's config.json

    def configs(self) -> list[dict[str, Any]]:
        """Each config's swept values, in a fixed order (hidden as '512,128,32')."""
        if self.points is not None:
            return [dict(p) for p in self.points]
        keys = [k for k in SWEEPABLE if k in self.grid]
        return [dict(zip(keys, values, strict=True))
                for values in itertools.product(*(self.grid[k] for k in keys))]

    def config_for(self, values: dict[str, Any]) -> TrainConfig:
        changes = dict(values)
        if "hidden" in changes:
            changes["hidden"] = _hidden_tuple(str(changes["hidden"]))
        return self.base.replace(**changes)

    def validate(self) -> SweepSpec:
        """Raise ValueError for the first bad config, named by its values when they cause it."""
        if not self.configs():
            raise ValueError("the sweep has no configs")
        base_error = None
        try:
            self.base.validate()
        except ValueError as e:
            base_error = str(e)
        for values in self.configs():
            if set(values) - set(SWEEPABLE):
                raise ValueError(f"cannot sweep {sorted(set(values) - set(SWEEPABLE))}; "
                                 f"sweepable: {SWEEPABLE}")
            try:
                self.config_for(values).validate()
            except ValueError as e:
                if str(e) == base_error:  # not the swept values' doing
                    raise
                raise ValueError(f"config {config_key(values)}: {e}") from e
        return self

    @classmethod
    def from_grid(cls, base: TrainConfig, *, lr: Sequence[float] | None = None,
                  weight_decay: Sequence[float] | None = None,
                  momentum: Sequence[float] | None = None,
                  optimizer: Sequence[str] | None = None,
                  batch_size: Sequence[int] | None = None,
                  hidden: Sequence[Sequence[int] | str] | None = None,
                  command: list[str] | None = None) -> SweepSpec:
        """The sweep of every combination of the values given, on top of `base`.

        If any of `lr`, `weight_decay`, `momentum` is given, their full grid (one missing
        takes `base`'s value); otherwise the exercise's four points. `optimizer`, `batch_size`
        and `hidden` multiply the configs when they hold several values and set `base` when
        they hold one. Every config is validated (ValueError) before anything runs.
        """
        core = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum}
        extra = {"optimizer": optimizer, "batch_size": batch_size,
                 "hidden": None if hidden is None else [_hidden_text(h) for h in hidden]}
        for name, values in {**core, **extra}.items():
            if values is not None and len(values) == 0:
                raise SettingError(f"{name} needs at least one value", name)
        extra = {k: list(dict.fromkeys(v)) for k, v in extra.items() if v is not None}
        fixed = {k: v[0] for k, v in extra.items() if len(v) == 1}
        if "hidden" in fixed:
            fixed["hidden"] = _hidden_tuple(fixed["hidden"])
        base = base.replace(**fixed)
        swept = {k: v for k, v in extra.items() if len(v) > 1}
        if any(v is not None for v in core.values()):
            grid = {k: list(dict.fromkeys(v if v is not None else [getattr(base, k)]))
                    for k, v in core.items()}
            return cls(base, grid={**grid, **swept}, command=command).validate()
        if {base.optimizer, *swept.get("optimizer", [])} & {"adam", "adamw"}:
            raise SettingError("the exercise's default grid uses SGD momentum 0.9, which adam "
                               "and adamw do not take: give the grid with lr and weight_decay",
                               "lr", "weight_decay")
        points = [dict(lr=lr, weight_decay=wd, momentum=m) for lr, wd, m in EXERCISE_GRID]
        for key, values in swept.items():
            points = [{**p, key: v} for p in points for v in values]
        return cls(base, points=points, command=command).validate()


def _hidden_text(widths: Sequence[int] | str) -> str:
    """Hidden widths as the sweep records them: '512,128,32' ('' for no hidden layer)."""
    parts = widths.split(",") if isinstance(widths, str) else widths
    try:
        return ",".join(str(int(w)) for w in parts if str(w).strip())
    except (TypeError, ValueError):
        raise ValueError(f"hidden {widths!r} is not a list of widths like 512,128,32") from None


def _hidden_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(h) for h in text.split(",") if h)


def settings(spec: SweepSpec) -> dict[str, Any]:
    """Everything that decides the sweep's results (the model included), as plain JSON; not
    where it runs (machines sharing a study may keep CIFAR-10 in different places)."""
    base = {k: v for k, v in spec.base.to_dict().items() if k not in LOCATION_KEYS}
    return json.loads(json.dumps({"base": base, "configs": spec.configs()}))


def fingerprint(spec: SweepSpec) -> str:
    """8 hex digits of `settings`: the same command finds the same directory and study."""
    return hashlib.sha1(json.dumps(settings(spec), sort_keys=True).encode()).hexdigest()[:8]


def refuse_other_settings(where: str, stored: dict[str, Any], spec: SweepSpec) -> None:
    """SettingError naming every setting of `spec` that differs from the `stored` settings
    of the sweep in `where` ('name stored -> wanted', base settings first)."""
    wanted, base = settings(spec), stored.get("base", {})
    diff = [f"{k} {base.get(k)!r} -> {wanted['base'].get(k)!r}"
            for k in sorted({*base, *wanted["base"]}) if base.get(k) != wanted["base"].get(k)]
    if stored.get("configs") != wanted["configs"]:
        diff.append(f"configs {[config_key(c) for c in stored.get('configs', [])]} -> "
                    f"{[config_key(c) for c in wanted['configs']]}")
    if diff:
        raise SettingError(f"{where}: holds a sweep with other settings ({'; '.join(diff)}); "
                           "choose another out, or the same settings to resume it", "out")


def config_key(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def run_dir_name(values: dict[str, Any]) -> str:
    return "_".join(f"{k}-{values[k]}" for k in sorted(values)).replace(",", "x")


def setting_text(name: str, value: Any) -> str:
    """A setting in a table or CSV cell: classes 'all' for every class, '-' for none, lists
    as '3,8', floats as %g."""
    if value is None:
        return "all" if name == "classes" else "-"
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def mask_url(text: str | None, url: str | None = None) -> str | None:
    """`text` with the password of every URL in it shown as ***, and every other occurrence
    of `url`'s password (a driver's error message may quote it)."""
    if text is None:
        return None
    password = re.search(_PASSWORD, url or "")
    if password and password.group(2):
        text = text.replace(password.group(2), "***")
    return re.sub(_PASSWORD, r"\1***@", text)
