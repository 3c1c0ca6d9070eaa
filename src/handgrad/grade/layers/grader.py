"""Grade a module of CS231n-style layer functions against autograd.

- `grade_file(path)`: the course grader. The submission runs in the sandbox's child
  (`sandbox.isolate.run_isolated` with `runner.run_module` as its entry); this process sends
  it the cases and judges what comes back.
- `check_layers(module_or_functions)`: the same cases and judge, the functions called in this
  process: for a student checking their notebook (no isolation).

Each function is graded on the cases of its layer (`cases.py`); a backward runs on the cache
of the module's own forward. A function the module lacks scores 0 and the others are graded.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from handgrad.grade.layers import dropout_judge, mistakes, reference
from handgrad.grade.layers.cases import CASES, LayerCase
from handgrad.grade.layers.contract import BY_NAME, layer_of, parse_functions
from handgrad.grade.layers.judge import SEPARATION, Verdict, err, floor_of, judge_outputs, plain
from handgrad.grade.layers.result import LayersResult
from handgrad.grade.layers.runner import case_spec, run_case, run_module
from handgrad.grade.sandbox import runner as sandbox_runner
from handgrad.grade.sandbox import server
from handgrad.grade.sandbox.isolate import Limits, isolation, run_isolated
from handgrad.grade.submission import read_source

Tensor = torch.Tensor


@dataclass(frozen=True)
class Truth:
    """A case as the judge sees it: its inputs, the true outputs, the mistakes' outputs."""

    inputs: dict
    out: Tensor
    extras: dict[str, Tensor]
    grads: tuple[Tensor, ...]
    forward_mistakes: list
    backward_mistakes: list

    def forward_outputs(self) -> tuple[tuple[str, ...], tuple[Tensor, ...], list]:
        """(names, true values, [(kind, values)] of the mistakes) of the forward's outputs:
        out, and batchnorm's running statistics in training."""
        names = ("out", *self.extras)
        found = [(k, (c["out"], *[c.get(n, self.extras[n]) for n in self.extras]))
                 for k, c in self.forward_mistakes]
        return names, (self.out, *self.extras.values()), found

    def mistakes(self) -> list[tuple[str, tuple[Tensor, ...], tuple[Tensor, ...]]]:
        """[(kind, the mistake's outputs, the true outputs)], forward and backward."""
        _, want, found = self.forward_outputs()
        return [(k, c, want) for k, c in found] + [
            (k, c, self.grads) for k, c in self.backward_mistakes]


@functools.cache
def truth(case: LayerCase, salt: int) -> Truth:
    inputs = case.inputs(salt)
    args, dout = inputs["args"], inputs["dout"]
    out, extras = reference.forward(case, args)
    grads = reference.backward(case, args, dout) if case.train else ()
    back = mistakes.backward_mistakes(case, args, dout) if case.train else []
    return Truth(inputs, out, extras, grads, mistakes.forward_mistakes(case, args), back)


def case_salt() -> int:
    """This process's secret salt for the cases' values: drawn at random, never sent to a
    child, and redrawn unless every mistake shows (is SEPARATION away from the truth) on
    at least one case of its layer, so that a diagnosis never depends on the draw."""
    while not _SALT or not _salt_fits(_SALT[-1]):
        _SALT.append(secrets.randbelow(2**61) + 1)
    return _SALT[-1]


_SALT: list[int] = []


def _salt_fits(salt: int) -> bool:
    shown: dict[tuple[str, str], bool] = {}
    for case in CASES:
        for kind, candidate, right in truth(case, salt).mistakes():
            floor = floor_of(right)
            pairs = zip(candidate, right, strict=True)
            far = any(err(c, w, floor) >= 10 * SEPARATION for c, w in pairs)
            shown[case.layer, kind] = shown.get((case.layer, kind), False) or far
    return all(shown.values())


def specs_for(functions: tuple[str, ...], salt: int) -> tuple[list[LayerCase], list[dict]]:
    """The cases of the layers of `functions` and the specs sent to the child."""
    layers = {layer_of(f).name for f in functions}
    cases = [c for c in CASES if c.layer in layers]
    return cases, [case_spec(c, truth(c, salt).inputs, functions) for c in cases]


def grade_file(path: str | Path, functions: str | Iterable[str] | None = None,
               limits: Limits | None = None, allow_autograd: bool = False,
               importable: bool = True) -> LayersResult:
    """Grade the module at `path` (.py or .ipynb) in the sandbox's child. Raises
    SubmissionError when `path` cannot be read, GraderError when the sandbox fails (never
    the student's failure); everything the code does is a result.

    When the run ends without results in a way one function can cause for all (it hangs,
    runs out of CPU time or exits), each layer is run again on its own: the layers that
    finish are judged, and only the others score 0, with that reason."""
    server.start()  # before anything of a submission or a secret is in this process
    path = Path(path)
    names = parse_functions(functions)
    chunks = read_source(path)
    salt = case_salt()
    folder = path.resolve().parent if importable else None

    def run(functions: tuple[str, ...]) -> tuple[list[LayerCase], Any]:
        cases, specs = specs_for(functions, salt)
        return cases, run_isolated(chunks, folder, "", sandbox_runner.encode(specs),
                                   limits or Limits(), submission=folder or path.resolve(),
                                   entry=run_module)

    cases, outcome = run(names)
    layers = {layer_of(f).name: tuple(g for g in names if layer_of(g) == layer_of(f))
              for f in names}
    if outcome.status == "ok":
        result = judge_all(cases, outcome.results, names, salt, allow_autograd)
    elif outcome.status in ONE_FUNCTION_STOPS_ALL and len(layers) > 1:
        result = _layer_by_layer(list(layers.values()), run, names, salt, allow_autograd)
    else:
        result = LayersResult(names, [], error=outcome.error or outcome.status,
                              error_kind=outcome.status)
    result.submission, result.output, result.seconds = str(path), outcome.output, \
        outcome.seconds
    result.isolation = {"process": True, **isolation(outcome.confined),
                        "exit_code": outcome.exit_code}
    return result


ONE_FUNCTION_STOPS_ALL = ("timeout", "cpu", "exited")  # outcomes without any results


def _layer_by_layer(groups: list[tuple[str, ...]], run: Any, names: tuple[str, ...],
                    salt: int, allow_autograd: bool) -> LayersResult:
    """Each layer's functions run on their own, then, if that run stops too, its forward
    alone: what ends with results is judged; every other function gets a verdict of how its
    layer's run ended (timeout, cpu, exited) on each of its cases."""
    verdicts, digests = [], []
    for group in groups:
        forward = tuple(f for f in group if f.endswith("_forward"))
        ended = None
        for functions in (group, forward) if forward and forward != group else (group,):
            cases, outcome = run(functions)
            ended = ended or (cases, outcome.status, outcome.error or outcome.status)
            if outcome.status == "ok":
                judged = judge_all(cases, outcome.results, functions, salt, allow_autograd)
                if judged.error is not None:
                    ended = (cases, judged.error_kind, judged.error)
                verdicts += judged.cases
                digests.append(judged.wrong_digest)
                break
        cases, kind, detail = ended
        done = {v.function for v in verdicts}
        verdicts += [Verdict(f, case, kind, detail.replace("the submission", f, 1))
                     for case in cases for f in group
                     if f not in done and (case.train or f.endswith("_forward"))]
    found = "".join(digests)
    return LayersResult(names, verdicts, wrong_digest=hashlib.sha256(
        found.encode()).hexdigest()[:16] if found else "")


def check_layers(functions_from: types.ModuleType | Mapping[str, Any],
                 functions: str | Iterable[str] | None = None,
                 allow_autograd: bool = False) -> LayersResult:
    """Run the layer functions of a module or a dict (a notebook's `globals()`) here, on
    every case of the asked `functions`, and judge them against autograd."""
    names = parse_functions(functions)
    namespace = vars(functions_from) if isinstance(functions_from, types.ModuleType) \
        else functions_from
    if not isinstance(namespace, Mapping):
        raise TypeError("check_layers takes a module or a dict of functions (globals()), "
                        f"not a {type(functions_from).__name__}")
    salt = case_salt()
    cases, specs = specs_for(names, salt)
    start = time.perf_counter()
    try:
        outputs = [run_case(namespace, spec) for spec in specs]
    except SystemExit as e:
        return LayersResult(names, [], error=f"the submission exited with code {e.code} "
                            "before returning", error_kind="exited")
    except KeyboardInterrupt:
        return LayersResult(names, [], error="a function was interrupted "
                            "(KeyboardInterrupt)", error_kind="exited")
    result = judge_all(cases, outputs, names, salt, allow_autograd)
    result.isolation = {"process": False, "no_network": False, "read_only_files": False}
    result.seconds = time.perf_counter() - start
    return result


def judge_all(cases: list[LayerCase], outputs: list, functions: tuple[str, ...], salt: int,
              allow_autograd: bool) -> LayersResult:
    """The verdicts on what came back for each case (untrusted data, checked here)."""
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return LayersResult(functions, [], error="the submission's results could not be "
                            "read", error_kind="unreadable")
    verdicts, digest, found = [], hashlib.sha256(), False
    for case, out in zip(cases, outputs, strict=True):
        graded = [f for f in (BY_NAME[case.layer].forward, BY_NAME[case.layer].backward)
                  if f in functions and (case.train or f.endswith("_forward"))]
        try:
            judged = judge_case(case, out, graded, salt, allow_autograd)
        except Exception as e:  # a forged result that passed the checks but not the math
            judged = [Verdict(f, case, "unreadable", f"the case's results could not be "
                                                    f"read ({type(e).__name__})")
                      for f in graded]
        verdicts += judged
        found = _digest_wrong(digest, out, judged) or found
    return LayersResult(functions, verdicts,
                        wrong_digest=digest.hexdigest()[:16] if found else "")


UNJUDGED = ("autograd", "unreadable")  # wrong verdicts whose numbers were not judged


def _digest_wrong(digest: Any, out: Any, verdicts: list[Verdict]) -> bool:
    """Add to `digest` the numbers each function judged wrong on this case returned (True
    when there were some): two submissions with the same digest made the same mistake with
    the same numbers (as the MLP's `judge._wrong_digest`, for similar.csv)."""
    found = False
    for v in verdicts:
        if v.passed or v.kind in UNJUDGED or not isinstance(out, dict):
            continue
        result = out.get("forward" if v.function.endswith("_forward") else "backward")
        result = result if isinstance(result, dict) else {}
        extras = result.get("extras") if isinstance(result.get("extras"), dict) else {}
        grads = result.get("grads") if isinstance(result.get("grads"), list) else []
        digest.update(v.function.encode() + b"\0")
        for desc in [result.get("out"), *extras.values(), *grads]:
            value = desc.get("value") if isinstance(desc, dict) else None
            if plain(value):
                digest.update(value.contiguous().numpy().tobytes())
                found = True
    return found


def judge_case(case: LayerCase, out: Any, graded: list[str], salt: int,
               allow_autograd: bool) -> list[Verdict]:
    if not isinstance(out, dict):
        return [Verdict(f, case, "unreadable", "the case's results could not be read")
                for f in graded]
    used = out.get("autograd")
    if used and not allow_autograd:
        text = "the function used " + " and ".join(map(str, used))[:300] \
            if isinstance(used, list) else "the function used autograd"
        return [Verdict(f, case, "autograd", text) for f in graded]
    t, layer = truth(case, salt), BY_NAME[case.layer]
    verdicts = []
    for f in graded:
        if f == layer.forward:
            verdicts.append(_judge_forward(case, t, out.get("forward")))
        else:
            verdicts.append(_judge_backward(case, t, out.get("backward"), out.get("forward")))
    return verdicts


def _status(function: str, case: LayerCase, result: Any) -> Verdict | None:
    """The verdict when the call did not return normally, else None."""
    status = result.get("status") if isinstance(result, dict) else "unreadable"
    if status == "ok":
        return None
    if status == "missing":
        return Verdict(function, case, "missing", f"{function} is not defined")
    if status == "error":
        return Verdict(function, case, "error", str(result.get("error"))[:2000])
    if status == "returned":
        return Verdict(function, case, "returned", f"{function} must return (out, cache); it "
                                                   f"returned a {str(result.get('type'))[:80]}")
    return Verdict(function, case, "unreadable", "the case's results could not be read")


def _judge_forward(case: LayerCase, t: Truth, result: Any) -> Verdict:
    function = BY_NAME[case.layer].forward
    early = _status(function, case, result)
    if early is not None:
        return early
    if case.layer == "dropout":
        return dropout_judge.forward_verdict(case, t.inputs["args"], result)
    names, want, found = t.forward_outputs()
    extras = result.get("extras") if isinstance(result.get("extras"), dict) else {}
    got = [result.get("out"), *[extras.get(n) for n in t.extras]]
    return judge_outputs(function, case, names, got, want, found)


def _judge_backward(case: LayerCase, t: Truth, result: Any, forward: Any) -> Verdict:
    layer = BY_NAME[case.layer]
    function = layer.backward
    if isinstance(result, dict) and result.get("status") == "no_cache":
        return Verdict(function, case, "missing", f"{function} runs on the cache of "
                                                  f"{layer.forward}, which did not return one")
    early = _status(function, case, result)
    if early is not None:
        return early
    grads, length = result.get("grads"), result.get("length")
    k = len(layer.grads)
    if not isinstance(grads, list) or not (length == k or (k == 1 and length in (0, 1))):
        what = "one array" if length == 0 else f"{length} values"
        wanted = layer.grads[0] if k == 1 else f"({', '.join(layer.grads)})"
        return Verdict(function, case, "returned",
                       f"{function} must return {wanted}; it returned {what}")
    want, found = t.grads, t.backward_mistakes
    if case.layer == "dropout":
        judged = dropout_judge.backward_truth(case, t.inputs["args"], t.inputs["dout"], forward)
        if isinstance(judged, str):
            return Verdict(function, case, "missing", judged)
        want, found = judged
    return judge_outputs(function, case, layer.grads, grads[:k], want, found)
