"""What grading a layers submission produces: a verdict per function and case, the points
per function, the diagnosis, and their renderings (a short text table, HTML for Jupyter,
JSON, Gradescope's tests). It is a `Grade`, as the MLP's `CheckResult` is, and answers the
same questions (`passed`, `score`, `max_score`, `diagnosis()`, `to_json()`), so that `grade`
and the CLI treat both alike; `diagnosis().layer` holds the function's name."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

from handgrad.grade.layers.contract import POINTS
from handgrad.grade.layers.judge import Verdict
from handgrad.grade.result import HINTS as MLP_HINTS
from handgrad.grade.result import Diagnosis, Grade

HINTS = {
    **{k: MLP_HINTS[k] for k in ("error", "autograd", "exited", "timeout", "cpu", "load",
                                 "unreadable", "zero")},
    "skipped": "",
    "missing": "define the function with the name and signature of docs/grading.md; a "
               "backward runs on the cache its own forward returns",
    "returned": "a forward returns (out, cache); a backward returns the gradients in the "
                "order of the signature (dx, dw, db)",
    "not_tensor": "return torch tensors (or numpy arrays) of numbers",
    "shape": "each gradient has exactly the shape of what it is the gradient of",
    "nan": "NaN or inf: look for a division by zero or a log of 0",
    "unstable": "subtract each row's maximum before exp: the logits are huge on this case",
    "wrong_sign": "the sign is reversed",
    "scale": "off by a constant factor: a 1/N or a factor that does not belong",
    "values": "wrong values: compare with the equations of the layer, one output at a time",
    "transposed": "dw = x.reshape(N, D).T @ dout, of w's shape (D, M)",
    "bias_not_summed": "sum the bias gradient over the batch (and, for a convolution, over "
                       "every position): db = dout.sum(0) / dout.sum((0, 2, 3))",
    "bias_mean": "sum the bias gradient; do not average it",
    "dx_not_reshaped": "dx has x's shape: dx = (dout @ w.T).reshape(x.shape)",
    "mask_from_dout": "the mask is where the INPUT was positive: dx = dout * (x > 0)",
    "mask_at_zero": "ReLU's derivative at 0 is 0 (as in autograd): use x > 0, not x >= 0",
    "no_mask": "multiply dout by the mask x > 0",
    "mask_inverted": "the gradient flows where x > 0",
    "no_mean_path": "μ depends on x: add the term of dL/dμ (with the compact formula, subtract "
                    "the mean of dx̂)",
    "no_variance_path": "σ² depends on x: add the term of dL/dσ² (subtract x̂ times the mean "
                        "of dx̂ · x̂)",
    "statistics_constant": "μ and σ² depend on x: dx = (dx̂ - mean(dx̂) - x̂ mean(dx̂ x̂)) / σ",
    "wrong_axis": "batchnorm reduces over the batch (axis 0), layernorm over the features of "
                  "each sample (axis 1)",
    "unbiased_variance": "normalise with the biased variance (divide by N): x.var(0, "
                         "unbiased=False), np.var",
    "eps_forgotten": "σ = √(σ² + eps) in the forward pass and in the backward pass",
    "dgamma_from_x": "dgamma = Σ dout · x̂ (the normalised input), dbeta = Σ dout",
    "momentum_reversed": "running = momentum · running + (1 - momentum) · batch statistic",
    "running_var_unbiased": "the running variance is updated with the batch's biased "
                            "variance (CS231n's convention)",
    "running_stats_not_updated": "store the updated running_mean and running_var in bn_param",
    "eval_batch_statistics": "in mode 'test', normalise with bn_param's running statistics",
    "p_as_drop_probability": "p is the probability of KEEPING a unit: mask = (rand < p) / p",
    "not_scaled": "inverted dropout divides the kept units by p, in forward and backward",
    "scaled_twice": "divide by p once: the mask already holds 1/p",
    "scaled_by_p": "inverted dropout divides by p (it does not multiply)",
    "seed_ignored": "seed the generator with dropout_param['seed'] when it is given",
    "eval_not_identity": "in mode 'test' dropout returns x unchanged",
    "kernel_flip": "dx is the full correlation of dout with the kernel flipped once: "
                   "dx_pad[window] += w[f] * dout[n, f, i, j] does it without any flip",
    "dw_flipped": "dw[f] += x_pad[window] * dout[n, f, i, j]: no flip",
    "padding_offset": "crop the padding symmetrically: dx = dx_pad[:, :, pad:-pad, pad:-pad]",
    "padding_not_removed": "crop the padding: dx = dx_pad[:, :, pad:pad+H, pad:pad+W]",
    "stride_ignored": "the window of output (i, j) starts at (i·stride, j·stride), in dx and "
                      "dw alike",
    "every_element": "only the maximum of each window receives its gradient",
    "average": "only the maximum of each window receives its gradient",
    "all_tied_maxima": "with tied maxima, the gradient goes to one of them: the first, as "
                       "autograd sends it (np.argmax / torch.argmax of the flattened window)",
    "other_tied_maximum": "with tied maxima, autograd sends the gradient to the first in "
                          "row-major order",
    "overlap_overwritten": "windows overlap: add (+=) into dx, do not assign",
    "no_mean": "the loss is the mean over the batch: divide the loss and dx by N",
    "shift_in_gradient": "the max-shift changes nothing in the gradient: dx = (softmax - "
                         "onehot) / N",
    "unnormalised": "softmax divides exp(x - max) by its row sum",
    "no_onehot": "subtract 1 at each sample's true class: dx = (softmax - onehot(y)) / N",
}
FORWARD_HINTS = {  # a kind named in a forward and in a backward: the forward's hint
    "kernel_flip": "a conv layer computes the correlation: out[n, f, i, j] = Σ x_pad[n, :, "
                   "window] · w[f] + b[f], with w as given (no flip)",
    "average": "max pooling keeps the maximum of each window: out[n, c, i, j] = "
               "x[n, c, window].max()",
}
GENERIC = ("values", "missing")  # named last (in this order): a specific kind is more useful


@dataclass
class LayersResult(Grade):
    """The grade of one layers submission: a verdict per function and case."""

    functions: tuple[str, ...]
    cases: list[Verdict]

    def of(self, function: str) -> list[Verdict]:
        return [v for v in self.cases if v.function == function]

    def groups(self) -> list[dict[str, Any]]:
        """Per function: name, score, max_score, cases passed and total."""
        out = []
        for f in self.functions:
            mine = self.of(f)
            passed = sum(v.passed for v in mine) if self.error is None else 0
            out.append({"name": f, "score": POINTS[f] * passed / (len(mine) or 1),
                        "max_score": float(POINTS[f]), "passed": passed, "cases": len(mine)})
        return out

    def points(self) -> list[dict[str, Any]]:
        return [{**g, "score": round(g["score"], 2)} for g in self.groups()]

    @property
    def max_score(self) -> float:
        return float(sum(POINTS[f] for f in self.functions))

    def diagnosis(self) -> Diagnosis | None:
        """None when passed; else the first failing function's first named mistake (a
        specific kind first, then values, then missing)."""
        if self.error is not None:
            kind = self.error_kind or "exited"
            return Diagnosis("", None, kind, self.error, HINTS.get(kind, ""))
        failing = [v for v in self.cases if not v.passed]
        if not failing:
            return None
        v = min(failing, key=lambda v: GENERIC.index(v.kind) + 1 if v.kind in GENERIC else 0)
        return Diagnosis(v.case.name, v.function, v.kind, v.detail, hint_of(v))

    def summary(self) -> str:
        d = self.diagnosis()
        head = f"score {self.score:g}/{self.max_score:g}"
        if self.error_kind == "skipped":
            return f"SKIPPED: {self.error}"
        if d is None:
            return f"PASS: all {len(self.functions)} functions match autograd ({head})"
        where = f"{d.layer}, case {d.case}: " if d.layer else ""
        return f"FAIL ({head}): {where}{d.kind}: {d.detail}\nhint: {d.hint}"

    def rows(self) -> list[list]:
        """[function, cases passed, score, first problem] per function."""
        rows = []
        for g in self.points():
            wrong = next((v for v in self.of(g["name"]) if not v.passed), None)
            note = "" if wrong is None else f"{wrong.kind} ({wrong.case.name})"
            rows.append([g["name"], f"{g['passed']}/{g['cases']}",
                         f"{g['score']:g}/{g['max_score']:g}", note])
        return rows

    def __str__(self) -> str:
        lines = [f"{'function':<20} {'cases':>5} {'points':>9}  first problem"]
        lines += [f"{f:<20} {c:>5} {p:>9}  {n}"[:110] for f, c, p, n in self.rows()]
        return "\n".join([*lines, self.summary()])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(f"<tr><td>{html.escape(f)}</td><td>{c}</td><td>{p}</td>"
                        f"<td>{html.escape(n)}</td></tr>" for f, c, p, n in self.rows())
        summary = html.escape(self.summary()).replace("\n", "<br>")
        return ("<table><tr><th>function</th><th>cases</th><th>points</th>"
                f"<th>first problem</th></tr>{cells}</table><p>{summary}</p>")

    def failure_lines(self, group: str) -> list[str]:
        """Gradescope's output of one function: what failed on which case."""
        return [f"{v.case.name}: {v.kind}: {v.detail}" for v in self.of(group)
                if not v.passed][:3]

    def to_json(self) -> dict[str, Any]:
        d = self.diagnosis()

        def number(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else x

        return {
            "submission": self.submission, "assignment": "layers",
            "verdict": "pass" if self.passed else "fail", "score": self.score,
            "max_score": self.max_score, "functions": list(self.functions),
            "error": self.error, "error_kind": self.error_kind,
            "diagnosis": None if d is None else vars(d).copy(),
            "groups": self.points(), "isolation": self.isolation,
            "wrong_digest": self.wrong_digest,
            "seconds": round(self.seconds, 3), "output": self.output,
            "cases": [{"function": v.function, "case": v.case.name, "passed": v.passed,
                       "kind": v.kind, "detail": v.detail,
                       "errors": {k: number(e) for k, e in v.errors.items()},
                       "hint": "" if v.passed else hint_of(v),
                       # the MLP's case keys, read by the class dashboard
                       "name": v.case.name, "group": v.function, "error": None,
                       "layers": [{"layer": v.function, "kind": v.kind, "detail": v.detail}]}
                      for v in self.cases]}


def hint_of(v: Verdict) -> str:
    """The hint for a verdict's kind, in the words of its function (forward or backward)."""
    forward = v.function.endswith("_forward") and v.kind in FORWARD_HINTS
    return FORWARD_HINTS[v.kind] if forward else HINTS.get(v.kind, "")
