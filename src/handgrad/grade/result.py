"""What grading a submission produces: per case and per layer verdicts, the diagnosis, the
points, and their renderings (a short text table, HTML for Jupyter, JSON)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from handgrad.grade.cases import POINTS, Case

HINTS = {
    "missing": "set model.dL_dw[l] and model.dL_db[l] for every layer l = 1..L",
    "not_tensor": "store torch tensors (torch.from_numpy(array) or torch.as_tensor(array, "
                  "dtype=model.fc[str(l)].weight.dtype)), not numpy arrays or lists",
    "shape": "dL_dw[l] must have exactly the weight's shape (H_l, H_{l-1}) and dL_db[l] the "
             "bias's shape (H_l,): sum the bias gradient over the batch with .sum(dim=0), "
             "without keepdim",
    "transposed": "dL_dw[l] is transposed: use dL_dz.T @ a[l-1], shape (H_l, H_{l-1}), "
                  "not a[l-1].T @ dL_dz",
    "dtype": "keep the gradients in the weights' dtype (create buffers with torch.zeros_like"
             "(weight), convert numpy results back with .to(weight.dtype))",
    "nan": "the gradient contains NaN or inf: look for a division by zero or a log of 0",
    "zero": "zero / not computed: the gradient is all zeros; fill it with the computed values "
            "(assign the result, do not only create a zero buffer)",
    "wrong_sign": "the gradient has the wrong sign: dL/dy of (y - t)² is 2 (y - t), "
                  "not 2 (t - y)",
    "mean": "mean instead of sum: the loss sums over the batch, so dL_dw and dL_db sum the "
            "samples' contributions (.sum(dim=0), not .mean(dim=0), and no division by N)",
    "batch_sum": "right for one sample, wrong for a batch: keep dL/da one row per sample "
                 "(dL_da = dL_dz @ W); sum over the batch only in dL_dw and dL_db",
    "activation": "multiply dL/da[l] by the derivative of the same layer's activation at its "
                  "pre-activation, model.df[l](model.z[l]), before forming dL_dw[l]",
    "scale": "off by a constant factor: check the derivative of the loss (the 2 of (y - t)², "
             "a 1/N that does not belong)",
    "values": "wrong values: recheck dL/dz = dL/da ⊙ f'(z), dL/dW = dL/dzᵀ a[l-1], "
              "dL/db = Σ_n dL/dz, dL/da[l-1] = dL/dz W, layer by layer from the top",
    "error": "the function raised an exception on this case: see the message and line",
    "modified": "compute the gradients only: do not change the model's weights, biases or "
                "layers (the optimizer updates them later)",
    "autograd": "compute the gradients by hand: the check does not allow autograd "
                "(.backward(), torch.autograd.grad) nor handgrad's own backward pass",
    "exited": "the program ended before returning: remove sys.exit(), exit() and os._exit()",
    "timeout": "the function did not finish in time: look for an endless loop",
    "cpu": "the function used too much CPU time: look for an endless loop",
    "memory": "the function asked for more memory than the grader allows (--memory): look "
              "for a tensor far larger than the layers need (N x N instead of N x H …)",
    "load": "the file could not be run: fix the error shown (its line is given)",
    "no_function": "define the function with the name the assignment asks for",
    "forged": "return the gradients only by filling model.dL_dw and model.dL_db: a result "
              "sent to the grader any other way fails",
    "not_graded": "the grader failed (not the submission): it is graded again on the next run",
    "unreadable": "the submission's results could not be read back",
}
ONE_D = " (this case passes one sample as a 1-D x of shape (D,): then y_pred and every " \
        "model.a[l] are 1-D too)"


@dataclass
class LayerResult:
    layer: int
    dw_error: float | None  # err against the truth; None when not comparable
    db_error: float | None
    kind: str  # "ok" or a kind of mistake
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.kind == "ok"



@dataclass
class CaseResult:
    case: Case
    layers: list[LayerResult] = field(default_factory=list)
    error: str | None = None  # the whole case failed: raised, modified the model, autograd
    error_kind: str | None = None
    loss: str = "sse"
    show_loss: bool = False  # several losses graded: the loss is part of names

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.layers) and all(x.passed for x in self.layers)

    @property
    def name(self) -> str:
        return f"{self.case.name} {self.loss}" if self.show_loss else self.case.name

    @property
    def group(self) -> str:
        return f"{self.case.group} ({self.loss})" if self.show_loss else self.case.group

    @property
    def batch(self) -> int:
        """N, or 0 for one 1-D sample."""
        return self.case.batch

    @property
    def sizes(self) -> list[int]:
        return list(self.case.sizes)

    def first_wrong(self) -> LayerResult | None:
        """The first wrong layer going backward (L down to 1): where the mistake starts."""
        return next((x for x in reversed(self.layers) if not x.passed), None)


@dataclass(frozen=True)
class Diagnosis:
    case: str
    layer: int | None
    kind: str
    detail: str
    hint: str


@dataclass(kw_only=True)
class Grade:
    """What every grade of a submission holds beside its cases (`CheckResult` for the MLP,
    `layers.result.LayersResult` for the layers): the error that stopped it before any case
    ran and its kind, what the program printed, the isolation that held, the seconds, the
    path, and the digest of its wrong answers on the salted cases ("" when none), which
    pairs two submissions that made one mistake with the same numbers (similar.csv).
    Subclasses give `cases` (each with `passed`) and `groups()` (each with a "score")."""

    error: str | None = None
    error_kind: str | None = None
    output: str = ""
    isolation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    submission: str | None = None
    wrong_digest: str = ""

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.cases) and all(c.passed for c in self.cases)

    @property
    def score(self) -> float:
        return round(sum(g["score"] for g in self.groups()), 2)


@dataclass
class CheckResult(Grade):
    """The grade of one MLP submission: a verdict per case and loss."""

    loss: str
    cases: list[CaseResult]

    HEADERS = ("case", "layer", "dL_dw error", "dL_db error", "result")

    def groups(self) -> list[dict[str, Any]]:
        """Per group of cases (and loss, when several are graded): name, score, max_score,
        cases passed and total. A group's points are shared among the losses."""
        losses = self.loss.split(",")
        out = []
        for loss in losses:
            for group, points in POINTS.items():
                name = group if len(losses) == 1 else f"{group} ({loss})"
                cases = [c for c in self.cases if c.group == name]
                share = points / len(losses)
                passed = sum(c.passed for c in cases) if self.error is None else 0
                out.append({"name": name, "score": share * passed / (len(cases) or 1),
                            "max_score": share, "passed": passed, "cases": len(cases)})
        return out

    def points(self) -> list[dict[str, Any]]:
        """`groups()` with its points rounded to 2 decimals, for display."""
        return [{**g, "score": round(g["score"], 2), "max_score": round(g["max_score"], 2)}
                for g in self.groups()]

    @property
    def max_score(self) -> float:
        return float(sum(POINTS.values()))

    def diagnosis(self) -> Diagnosis | None:
        """None when passed. Otherwise, in this order: the first failing 2-D case that
        names a kind of mistake, the first failing 2-D case ("values"), then the same for
        the 1-D case (x of shape (D,)): a 1-D exception never hides a wrong 2-D gradient."""
        if self.error is not None:
            kind = self.error_kind or "exited"
            return Diagnosis("", None, kind, self.error, HINTS.get(kind, ""))
        for one_d in (False, True):
            found = [_case_diagnosis(c) for c in self.cases
                     if not c.passed and (c.batch == 0) is one_d]
            if found:
                return _headline(found)
        return None

    def failure_lines(self, group: str) -> list[str]:
        """Gradescope's output of one group: its first three failing cases and why."""
        lines = []
        for c in [c for c in self.cases if c.group == group and not c.passed][:3]:
            wrong = c.first_wrong()
            what = f"{c.error_kind}: {c.error}" if c.error else (
                f"layer {wrong.layer}: {wrong.kind}: {wrong.detail}" if wrong else "failed")
            lines.append(f"{c.name}: {what}")
        return lines

    def rows(self) -> list[list]:
        rows = []
        for c in self.cases:
            if c.error is not None:
                rows.append([c.name, "-", None, None, f"{c.error_kind}: {c.error}"[:80]])
            rows += [[c.name, x.layer, x.dw_error, x.db_error, x.kind] for x in c.layers]
        return rows

    def summary(self) -> str:
        d = self.diagnosis()
        head = f"score {self.score:g}/{self.max_score:g}"
        if d is None:
            return f"PASS: all {len(self.cases)} cases match autograd ({head})"
        where = f"layer {d.layer}, case {d.case}: " if d.layer is not None else (
            f"case {d.case}: " if d.case else "")
        return f"FAIL ({head}): {where}{d.kind}: {d.detail}\nhint: {d.hint}"

    def __str__(self) -> str:
        lines = [f"{'case':<28} {'passed':>6}  first wrong layer"]
        for c in self.cases:
            wrong = c.first_wrong()
            note = "" if c.passed else (c.error_kind if c.error else
                                        f"{wrong.layer}: {wrong.kind}" if wrong else "")
            lines.append(f"{c.name:<28} {'yes' if c.passed else 'NO':>6}  {note}")
        return "\n".join([*lines, self.summary()])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td>{'✔' if c.passed else '✘'}</td>"
            f"<td>{html.escape(_note(c))}</td></tr>" for c in self.cases)
        summary = html.escape(self.summary()).replace("\n", "<br>")
        return (f"<table><tr><th>case</th><th>passed</th><th>first wrong layer</th></tr>"
                f"{cells}</table><p>{summary}</p>")

    def to_json(self) -> dict[str, Any]:
        d = self.diagnosis()
        return {
            "submission": self.submission, "verdict": "pass" if self.passed else "fail",
            "score": self.score, "max_score": self.max_score, "loss": self.loss,
            "error": self.error, "error_kind": self.error_kind,
            "diagnosis": None if d is None else vars(d).copy(),
            "groups": self.points(), "isolation": self.isolation,
            "wrong_digest": self.wrong_digest,
            "seconds": round(self.seconds, 3), "output": self.output,
            "cases": [_case_json(c) for c in self.cases]}


def _note(c: CaseResult) -> str:
    if c.passed:
        return ""
    if c.error:
        return f"{c.error_kind}: {c.error}"
    wrong = c.first_wrong()
    return f"layer {wrong.layer}: {wrong.kind}" if wrong else ""


def _headline(found: list[Diagnosis]) -> Diagnosis:
    """The first named mistake among failing cases, else the first wrong values. `scale` is
    named only when no failing case says `values`: one constant factor is wrong on every
    case alike, while a factor that differs across elements looks constant only on a case
    whose layer has a single unit (the other cases show it varying)."""
    varies = any(d.kind == "values" for d in found)
    named = [d for d in found if d.kind != "values" and not (d.kind == "scale" and varies)]
    return named[0] if named else next((d for d in found if d.kind == "values"), found[0])


def _case_diagnosis(c: CaseResult) -> Diagnosis:
    suffix = ONE_D if c.case.batch == 0 else ""
    if c.error is not None:
        kind = c.error_kind or "error"
        return Diagnosis(c.name, None, kind, c.error, HINTS[kind] + suffix)
    wrong = c.first_wrong()
    return Diagnosis(c.name, wrong.layer, wrong.kind, wrong.detail,
                     HINTS[wrong.kind] + suffix)


def _case_json(c: CaseResult) -> dict[str, Any]:
    def number(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else x

    return {"name": c.name, "group": c.group, "loss": c.loss, "passed": c.passed,
            "error": c.error, "error_kind": c.error_kind,
            "layers": [{"layer": x.layer, "dw_error": number(x.dw_error),
                        "db_error": number(x.db_error), "kind": x.kind, "detail": x.detail,
                        "hint": "" if x.passed else HINTS[x.kind]} for x in c.layers]}
