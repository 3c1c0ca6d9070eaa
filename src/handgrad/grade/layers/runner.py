"""What runs where the submission runs (the sandbox's child, or a notebook for
`check_layers`): call each layer's forward, then its backward on the cache it returned, and
capture what they returned as float64 tensors. Nothing here judges.

`run_module` is the child's entry (the `entry` of `sandbox.isolate.run_isolated`): it loads
the submission as a module and runs every case spec on it. A function the module lacks is
reported missing and the others still run. In the child, `handgrad.check_layers` (a
notebook's own check) is skipped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from handgrad.grade.layers.cases import LayerCase
from handgrad.grade.layers.contract import BY_NAME, parse_functions
from handgrad.grade.layers.result import LayersResult
from handgrad.grade.sandbox.runner import watch_autograd
from handgrad.grade.submission import SubmissionError, load_module, user_error

Tensor = torch.Tensor
MAX_ENTRIES = 1_000_000


def case_spec(case: LayerCase, inputs: dict, functions: tuple[str, ...]) -> dict[str, Any]:
    """What the child needs to run one case: the layer's function names, the arguments,
    dout, and which of the layer's functions are graded."""
    layer = BY_NAME[case.layer]
    return {"forward": layer.forward, "backward": layer.backward,
            "args": inputs["args"], "dout": inputs["dout"],
            "grade_backward": layer.backward in functions and case.train,
            "extras": ["running_mean", "running_var"] if case.layer == "batchnorm"
            and case.train else [],
            "again": case.layer == "dropout" and case.train}


def run_module(chunks: list[tuple[str, str]], folder: Path | None, function: str,
               specs: list[dict]) -> dict[str, Any]:
    """Load the submission (under the autograd watch) and run every case spec on it."""
    _skip_self_checks()
    try:
        with watch_autograd() as watch:
            module = load_module(chunks, folder)
    except SubmissionError as e:
        return {"status": "load", "error": str(e)}
    loading = [f"{use} while the submission loaded" for use in sorted(set(watch.used))]
    results = [run_case(vars(module), spec) for spec in specs]
    for result in results:
        result["autograd"] = loading + result["autograd"]
    return {"status": "ok", "results": results}


def _skip_self_checks() -> None:
    """In the grading child, `handgrad.check_layers` returns a result saying it was skipped:
    a notebook handed in with its check cells is graded on its functions (the check's own
    truth, computed with autograd, would otherwise count as the submission's autograd)."""
    package = sys.modules.get("handgrad")  # imported with this module, before any code

    def skipped(functions_from: Any = None, functions: Any = None, **_: Any) -> LayersResult:
        return LayersResult(parse_functions(functions), [], error="handgrad.check_layers "
                            "does not run inside the grader, which judges the functions "
                            "itself", error_kind="skipped")
    if package is not None:
        package.check_layers = skipped


def run_case(namespace: Mapping[str, Any], spec: dict[str, Any],
             source: str | None = None) -> dict[str, Any]:
    """{"forward": …, "backward": …, "autograd": [uses]}: each {"status": "ok", …},
    {"status": "missing"}, {"status": "error", "error": text} or {"status": "returned",
    "type": what came back instead}. SystemExit and KeyboardInterrupt propagate."""
    result: dict[str, Any] = {}
    with watch_autograd() as watch, torch.no_grad():
        cache = None
        if spec["forward"] is not None:
            result["forward"], cache = _forward(namespace, spec, source)
        if spec["forward"] is None or spec["grade_backward"]:
            result["backward"] = _backward(namespace, spec, cache, source)
    result["autograd"] = sorted(set(watch.used))
    return result


def _lookup(namespace: Mapping[str, Any], name: str) -> Callable | None:
    fn = dict.get(namespace, name) if isinstance(namespace, dict) else namespace.get(name)
    return fn if callable(fn) else None


def _call(fn: Callable, args: list, source: str | None) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:  # the student's error, with their line
        return False, user_error(e, source)


def _forward(namespace: Mapping, spec: dict, source: str | None) -> tuple[dict, Any]:
    fn = _lookup(namespace, spec["forward"])
    if fn is None:
        return {"status": "missing"}, None
    args = _copy(spec["args"])
    ok, returned = _call(fn, args, source)
    if not ok:
        return {"status": "error", "error": returned}, None
    if not (isinstance(returned, tuple | list) and len(returned) == 2):
        return {"status": "returned", "type": _type_name(returned)}, None
    out = {"status": "ok", "out": describe(returned[0])}
    param = args[-1] if isinstance(args[-1], dict) else {}
    out["extras"] = {k: describe(dict.get(param, k)) for k in spec["extras"]}
    if spec["again"]:  # the same seed must give the same mask
        ok, again = _call(fn, _copy(spec["args"]), source)
        out["again"] = describe(again[0]) if ok and isinstance(again, tuple | list) and \
            len(again) == 2 else {"type": "missing"}
    return out, returned[1]


def _backward(namespace: Mapping, spec: dict, cache: Any, source: str | None) -> dict:
    fn = _lookup(namespace, spec["backward"])
    if fn is None:
        return {"status": "missing"}
    if spec["forward"] is None:
        args = _copy(spec["args"])
    elif cache is None:
        return {"status": "no_cache"}
    else:
        args = [spec["dout"].clone(), cache]
    ok, returned = _call(fn, args, source)
    if not ok:
        return {"status": "error", "error": returned}
    if isinstance(returned, tuple | list):
        return {"status": "ok", "grads": [describe(g) for g in list(returned)[:8]],
                "length": len(returned)}
    return {"status": "ok", "grads": [describe(returned)], "length": 0}


def _copy(args: list) -> list:
    """Fresh copies of the case's arguments (tensors cloned, dicts copied)."""
    def one(a: Any) -> Any:
        if isinstance(a, Tensor):
            return a.clone()
        if isinstance(a, dict):
            return {k: one(v) for k, v in a.items()}
        return a
    return [one(a) for a in args]


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")


def describe(value: Any) -> dict[str, Any]:
    """{"type": …, "value": a float64 copy} for a dense CPU tensor, a numpy array or a
    number; otherwise the type name (and shape when it has one)."""
    np = sys.modules.get("numpy")
    out: dict[str, Any] = {"type": _type_name(value)}
    if type(value) in (Tensor, torch.nn.Parameter):
        out["shape"] = list(value.shape)
        plain = value.layout == torch.strided and not value.is_meta and not value.is_complex()
        if plain and value.numel() <= MAX_ENTRIES:
            out["value"] = value.detach().cpu().to(torch.float64).clone()
    elif np is not None and type(value) is np.ndarray and value.dtype.kind in "fiub":
        out["shape"] = list(value.shape)
        if value.size <= MAX_ENTRIES:
            out["value"] = torch.from_numpy(value.astype(np.float64, copy=True))
    elif np is not None and isinstance(value, np.generic) and value.dtype.kind in "fiub":
        out["value"] = torch.tensor(float(value.item()), dtype=torch.float64)
    elif type(value) in (float, int):
        out["value"] = torch.tensor(float(value), dtype=torch.float64)
    elif value is None:
        out["type"] = "missing"
    return out
