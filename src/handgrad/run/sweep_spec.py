"""What a sweep is: its configs, their keys and directory names, and its fingerprint."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from handgrad.run.config import TrainConfig

SWEEPABLE = ("lr", "weight_decay", "momentum", "optimizer", "batch_size", "hidden")
SELECT_BY = ("val_loss", "val_accuracy")
EXERCISE_GRID = [  # (lr, weight_decay, momentum) of the classic exercise
    (0.001, 0.0, 0.0), (0.01, 0.0, 0.0), (0.001, 0.1, 0.9), (0.01, 0.0, 0.9),
]


class SweepError(RuntimeError):
    """A sweep could not finish; rerunning the same command resumes it."""


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

    def search_space(self) -> dict[str, list]:
        configs = self.configs()
        return {k: sorted({c[k] for c in configs}, key=str) for k in configs[0]}

    def config_for(self, values: dict[str, Any]) -> TrainConfig:
        changes = dict(values)
        if "hidden" in changes:
            text = str(changes["hidden"])
            changes["hidden"] = tuple(int(h) for h in text.split(",") if h)
        return self.base.replace(**changes)

    def validate(self) -> SweepSpec:
        configs = self.configs()
        if not configs:
            raise ValueError("the sweep has no configs")
        for values in configs:
            unknown = set(values) - set(SWEEPABLE)
            if unknown:
                raise ValueError(f"cannot sweep {sorted(unknown)}; sweepable: {SWEEPABLE}")
            self.config_for(values).validate()
        return self


def settings(spec: SweepSpec) -> dict[str, Any]:
    """Everything that decides the sweep's results, as plain JSON; not where it runs or where
    its data lives (machines sharing a study may keep CIFAR-10 in different places)."""
    base = spec.base.to_dict()
    for where in ("device", "download", "data_dir"):
        base.pop(where)
    return {"base": base, "configs": spec.configs()}


def fingerprint(spec: SweepSpec) -> str:
    """8 hex digits that change with any setting of the sweep (not with where it runs), so
    that the same command finds the same default directory and resumes there."""
    text = json.dumps(settings(spec), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def settings_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """'name stored -> wanted' for every setting that differs, base settings first."""
    base_a, base_b = stored.get("base", {}), wanted["base"]
    out = [f"{k} {base_a.get(k)!r} -> {base_b.get(k)!r}"
           for k in sorted(set(base_a) | set(base_b)) if base_a.get(k) != base_b.get(k)]
    if stored.get("configs") != wanted["configs"]:
        out.append(f"configs {[config_key(c) for c in stored.get('configs', [])]} -> "
                   f"{[config_key(c) for c in wanted['configs']]}")
    return out


def config_key(values: dict[str, Any]) -> str:
    return ",".join(f"{k}={values[k]}" for k in sorted(values))


def run_dir_name(values: dict[str, Any]) -> str:
    return "_".join(f"{k}-{values[k]}" for k in sorted(values)).replace(",", "x")

