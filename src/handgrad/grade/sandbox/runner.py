"""What runs where the submission runs (the child process, or the notebook for
`check_backprop`): rebuild each case's model, call the function, and capture what it left.

As the sandbox's entry for backpropagation (`child.run_child`): `preflight()` checks the
grading code works in the child, `load(job, folder)` loads the submission, `run(fn, cases)`
runs it on every case, `encode(result)` turns the result into bytes.

Nothing here judges. `run_case` returns plain data (tensors, strings, numbers) that the
grader's parent process validates and compares; whatever the submission does to this module
cannot change the verdict, only what is reported back.

Autograd use is recorded by wrapping the autograd engine (every `Tensor.backward` and
`torch.autograd.grad` goes through `Variable._execution_engine.run_backward`), by wrapping
forward mode's entry points (dual numbers, which `torch.func.jvp` and `jacfwd` use too), by
looking for a `.grad` left on a parameter, and by wrapping handgrad's own backward functions
(`handgrad.backpropagation` …). This is a policy check: code that wants to hide from it can.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.autograd.variable import Variable

from handgrad.engine.model import MLP
from handgrad.grade.submission import NoFunctionError, SubmissionError, load_function, user_error

Tensor = torch.Tensor
MAX_ENTRIES = 1_000_000  # a returned tensor larger than this is described, not copied


def case_spec(problem, case) -> dict[str, Any]:
    """What the runner needs to rebuild a case: architecture, float32 weights, x, y_true."""
    state = {k: v.detach().clone() for k, v in problem.model.state_dict().items()}
    return {"sizes": list(case.sizes), "activation": case.activation,
            "out_activation": case.out_activation, "state": state,
            "x": problem.x.clone(), "y_true": problem.y_true.clone()}


class _Engine:
    """Forwards to torch's autograd engine and notes that it ran, in every watch active at
    the time (a wrapper kept from an earlier watch, while loading, still reports)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def run_backward(self, *args: Any, **kwargs: Any) -> Any:
        for watch in _ACTIVE:
            watch.used.append("autograd (.backward() or torch.autograd.grad)")
        return self.engine.run_backward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


_ACTIVE: list[Watch] = []


class Watch:
    """What the function used that the check does not allow (see `watch_autograd`)."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def wrap(self, fn: Callable, label: str) -> Callable:
        @functools.wraps(fn)
        def flagged(*args: Any, **kwargs: Any) -> Any:
            for watch in _ACTIVE or [self]:  # kept from an earlier watch: the current one
                watch.used.append(label)
            return fn(*args, **kwargs)
        return flagged


def _forward_mode() -> list[tuple[Any, str, Callable, str]]:
    """(module, attribute, function, label) of forward-mode autograd's entry points: dual
    numbers (`torch.autograd.forward_ad`) and what `torch.func.jvp` / `jacfwd` call."""
    import torch.autograd.forward_ad as fwAD

    label = "forward-mode autograd (torch.func.jacfwd / jvp or forward_ad dual numbers)"
    found = [(fwAD, name, getattr(fwAD, name), label)
             for name in ("make_dual", "enter_dual_level", "unpack_dual")]
    found.append((torch._C, "_enter_dual_level", torch._C._enter_dual_level, label))
    return found


def _library_backward() -> list[tuple[Any, str, Callable]]:
    """(module, attribute, function) of handgrad's own backward-pass functions."""
    from handgrad.engine import backprop

    found = [(backprop, name, fn) for name, fn in vars(backprop).items()
             if callable(fn) and getattr(fn, "__module__", None) == backprop.__name__
             and ("backward" in name or "backprop" in name)]
    package = sys.modules.get("handgrad")  # its re-exports (handgrad.backpropagation)
    if package is not None:
        found += [(package, name, fn) for name, fn in vars(package).items()
                  if any(fn is f for _, _, f in found)]
    return found


@contextlib.contextmanager
def watch_autograd() -> Iterator[Watch]:
    """Within the block, `watch.used` lists each use of autograd's engine and of handgrad's
    own backward functions."""
    watch = Watch()
    original = Variable._execution_engine
    while isinstance(original, _Engine):  # one left by a submission: unwrap it
        original = original.engine
    wrapped = [(module, name, fn, f"handgrad's own backward pass ({module.__name__}.{name})")
               for module, name, fn in _library_backward()] + _forward_mode()
    Variable._execution_engine = _Engine(original)
    for module, name, fn, label in wrapped:
        setattr(module, name, watch.wrap(fn, label))
    _ACTIVE.append(watch)
    try:
        yield watch
    finally:
        _ACTIVE.remove(watch)
        Variable._execution_engine = original
        for module, name, fn, _ in wrapped:
            setattr(module, name, fn)


def run_case(fn: Callable, spec: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Rebuild the case's model, run model(x) then fn(model, y_true, y_pred) under no_grad,
    and capture the gradients, the parameters afterwards, and whether autograd ran.
    An exception from fn (any BaseException) is returned as {"error": text}; SystemExit and
    KeyboardInterrupt propagate (the caller decides what they mean)."""
    model = MLP(spec["sizes"], spec["activation"], spec["out_activation"],
                dtype=spec["x"].dtype)
    model.load_state_dict(spec["state"])
    with torch.no_grad():
        y_pred = model(spec["x"].clone())
    try:
        with watch_autograd() as watch, torch.no_grad():
            returned = fn(model, spec["y_true"].clone(), y_pred, *spec.get("extra", []))
            captured = {"dw": _entries(model, "dL_dw", spec),  # copied inside the watch
                        "db": _entries(model, "dL_db", spec), "params": _params(model),
                        "returned": None if returned is None else type(returned).__name__,
                        "grad_set": any(p.grad is not None for p in model.parameters())}
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:  # the student's error (GeneratorExit … too), with their line
        return {"error": user_error(e, source)}
    return {**captured, "autograd": sorted(set(watch.used))}


def _entries(model: MLP, attr: str, spec: dict) -> list[dict[str, Any]]:
    container = getattr(model, attr, None)
    keys = []
    if isinstance(container, dict):
        keys = [repr(k)[:20] for k in list(dict.keys(container))[:20]]
    out = []
    for l in range(1, len(spec["sizes"])):
        entry = _describe(_lookup(container, l))
        if entry["type"] == "missing":
            entry["keys"] = keys  # what was set instead ('1' for 1, 0 for layer 1 …)
        out.append(entry)
    return out


_MISSING = object()


def _lookup(container: Any, l: int) -> Any:
    """container[l] by dict's own lookup (a subclass's __getitem__ could compute it)."""
    if not isinstance(container, dict):
        return _NOT_A_DICT
    return dict.get(container, l, _MISSING)


_NOT_A_DICT = object()


def _describe(value: Any) -> dict[str, Any]:
    """{"type": "tensor", "value": …} for a tensor (detached, dense, on the CPU), else the
    type name and, for an array-like, its shape."""
    if value is _MISSING or value is None:
        return {"type": "missing"}
    if value is _NOT_A_DICT:
        return {"type": "not_dict"}
    if type(value) in (torch.Tensor, torch.nn.Parameter):  # no subclass: it runs code
        out = {"type": "tensor", "shape": list(value.shape), "dtype": str(value.dtype)}
        if value.is_meta or value.layout != torch.strided:
            return {**out, "type": f"{value.layout} tensor on {value.device}".replace(
                "torch.", "")}
        if value.numel() <= MAX_ENTRIES:
            out["value"] = value.detach().cpu().clone()
        return out
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    shape = getattr(value, "shape", None)
    out = {"type": name}
    with contextlib.suppress(Exception):
        out["shape"] = [int(s) for s in shape]
    return out


def _params(model: MLP) -> dict[str, Any]:
    """The layers after the call: their keys, types, and weights and biases (copies)."""
    layers = {}
    for key, layer in getattr(model, "fc", {}).items():
        W, b = getattr(layer, "weight", None), getattr(layer, "bias", None)
        layers[str(key)] = {
            "type": type(layer).__name__,
            "W": W.detach().clone() if isinstance(W, torch.Tensor) else None,
            "b": b.detach().clone() if isinstance(b, torch.Tensor) else None}
    return layers


def encode(obj: Any) -> bytes:
    """torch.save into bytes (read back with torch.load(weights_only=True))."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def preflight() -> None:
    """Run handgrad's own backward pass once and encode its gradients: if the child cannot
    (a file of torch or handgrad it cannot see), the grader failed, not the submission."""
    from handgrad.engine.backprop import backpropagation

    model = MLP([3, 2, 2], "tanh", "sigmoid")
    x = torch.randn(2, 3)
    with torch.no_grad():
        backpropagation(model, torch.randn(2, 2), model(x))
    encode({"dw": dict(model.dL_dw)})
    torch.set_num_threads(1)


def load(job: dict[str, Any], folder: str | None) -> Callable | dict[str, Any]:
    """The submission's function; or, when it does not load, the result saying why. Loaded
    under the autograd watch too (`run` reports what it saw)."""
    try:
        with watch_autograd() as watch:
            fn = load_function(job["chunks"], job["function"], folder and Path(folder))
    except NoFunctionError as e:
        return {"status": "no_function", "error": str(e)}
    except SubmissionError as e:
        return {"status": "load", "error": str(e)}
    _LOADING[:] = [f"{use} while the submission loaded" for use in sorted(set(watch.used))]
    return fn


_LOADING: list[str] = []


def decode(cases: bytes) -> Any:
    """What `encode` made, read back with torch.load(weights_only=True)."""
    return torch.load(io.BytesIO(cases), weights_only=True)


def run(fn: Callable, cases: bytes) -> dict[str, Any]:
    """Run `fn` on every case of `cases` (the case specs, `encode`d)."""
    specs = decode(cases)
    results = [run_case(fn, spec) for spec in specs]
    for result in results:
        if "autograd" in result:
            result["autograd"] = _LOADING + result["autograd"]
    return {"status": "ok", "results": results}
