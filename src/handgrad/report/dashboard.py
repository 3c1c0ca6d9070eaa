"""The class dashboard: DIR/report.html of `handgrad grade --out DIR`, from the grades
(grades.json's `submissions`: one entry a submission, its CheckResult as `result`).

At a glance: the score histogram, the pass rate per group of cases, the mistakes by kind
and by first wrong layer (counts, one anonymised example diagnosis each), the submissions
not graded and why, the isolation that held; then every student in one sortable table,
each linked to their details (diagnosis, every case, what they printed) folded in a
<details> so that a class of 500 stays one readable page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handgrad.report.html import REPORT, Cell, page_table, write
from handgrad.report.templating import render

Entry = Mapping[str, Any]
BINS = 10
ISOLATION = (("process", "own child process"), ("no_network", "no network"),
             ("read_only_files", "read-only files"), ("own_processes", "own PID namespace"))
# Kinds that mean no grade could be given (handgrad's failure, or no function to grade); a
# submission that crashed, exited or hung is graded (it fails).
NOT_GRADED = ("internal", "unreadable", "not_graded", "not graded", "no_function")


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    share: float  # of the tallest bar, 0..1


def graded(e: Entry) -> bool:
    """Whether the submission got a grade (`NOT_GRADED`: it did not)."""
    return e.get("kind") not in NOT_GRADED


def why_not_graded(e: Entry) -> str:
    r = e.get("result") or {}
    kind = e.get("kind") or r.get("error_kind") or "unknown"
    return f"{kind}: {e.get('error') or r.get('error') or 'no case ran'}"


def histogram(scores: Sequence[float], top: float, bins: int = BINS) -> list[Bar]:
    """Scores counted in `bins` equal bins over [0, top] (the last one closed)."""
    counts = [0] * bins
    for s in scores:
        counts[min(int(bins * s / top), bins - 1) if top > 0 else 0] += 1
    peak = max(counts) or 1
    step = top / bins
    return [Bar(f"{i * step:g}–{(i + 1) * step:g}", c, c / peak) for i, c in enumerate(counts)]


def group_rates(entries: Sequence[Entry]) -> list[list[Any]]:
    """[group, students with every case of it right, of graded, rate, mean points, max]."""
    rows: dict[str, list[float]] = {}
    for e in filter(graded, entries):
        for g in (e.get("result") or {}).get("groups", []):
            row = rows.setdefault(g["name"], [0, 0, 0.0, g["max_score"]])
            row[0] += g["cases"] > 0 and g["passed"] == g["cases"]
            row[1] += 1
            row[2] += g["score"]
    return [[name, int(ok), n, _percent(ok / n) if n else None,
             round(total / n, 2) if n else None, top]
            for name, (ok, n, total, top) in rows.items()]


def _percent(share: float) -> Cell:
    return Cell(f"{100 * share:.1f} %", repr(share), True)


def anonymise(text: str, e: Entry) -> str:
    """`text` without the student's id or path."""
    for secret in (e.get("path"), Path(e["path"]).name if e.get("path") else None, e["id"]):
        if secret:
            text = text.replace(str(secret), "<student>")
    return text


def example(e: Entry) -> str:
    d = (e.get("result") or {}).get("diagnosis") or {}
    where = f"layer {d['layer']}, case {d['case']}: " if d.get("layer") else (
        f"case {d['case']}: " if d.get("case") else "")
    text = f"{where}{d.get('detail') or e.get('error') or ''}"
    return anonymise(text, e) + (f" (hint: {d['hint']})" if d.get("hint") else "")


def mistakes(entries: Sequence[Entry], key: str) -> list[list[Any]]:
    """Failed submissions counted by `key` ("kind" or "first_wrong_layer"), most common
    first, each with one anonymised example (and by layer, the most common kind there)."""
    failed = [e for e in entries if not e["passed"] and graded(e)
              and e.get(key) not in (None, "")]
    counts = Counter(e[key] for e in failed)
    rows = []
    for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        these = [e for e in failed if e[key] == value]
        kind = Counter(e["kind"] for e in these).most_common(1)[0][0]
        rows.append([value, n, *([] if key == "kind" else [kind]), example(these[0])])
    return rows


def isolation_rows(entries: Sequence[Entry]) -> list[list[Any]]:
    """[what, submissions where it held, of those that report it]: the known protections
    by name, then any other yes/no the grader reports, by its key."""
    isolations = [(e.get("result") or {}).get("isolation") or {} for e in entries]
    names = dict(ISOLATION)
    keys = list(names) + [k for i in isolations for k, v in i.items()
                          if isinstance(v, bool) and k not in names]
    rows = []
    for key in dict.fromkeys(keys):
        reported = [i[key] for i in isolations if isinstance(i.get(key), bool)]
        if reported:
            rows.append([names.get(key, key), sum(reported), len(reported)])
    return rows


def student_rows(entries: Sequence[Entry]) -> list[list[Any]]:
    return [[Cell(e["id"], e["id"]), e["score"], "yes" if e["passed"] else "no",
             e.get("kind") or "-", e.get("first_wrong_layer"), e.get("seconds")]
            for e in entries]


def case_rows(e: Entry) -> list[list[Any]]:
    rows = []
    for c in (e.get("result") or {}).get("cases", []):
        wrong = next((x for x in reversed(c["layers"]) if x["kind"] != "ok"), None)
        note = (f"{c['error_kind']}: {c['error']}" if c.get("error") else
                f"layer {wrong['layer']}: {wrong['kind']}: {wrong['detail']}" if wrong
                and not c["passed"] else "")
        rows.append([c["name"], c["group"], "yes" if c["passed"] else "no", note])
    return rows


def dashboard_page(entries: Sequence[Entry], title: str = "handgrad: the class") -> str:
    """The dashboard of `entries` (grades.json's `submissions`)."""
    top = max((e["max_score"] for e in entries), default=100.0)
    scores = [e["score"] for e in entries if graded(e)]
    not_graded = [[e["id"], why_not_graded(e)] for e in entries if not graded(e)]
    return render(
        "dashboard.html.j2", title=title, n=len(entries), graded=len(scores),
        passed=sum(bool(e["passed"]) for e in entries),
        mean=sum(scores) / len(scores) if scores else None, top=top,
        bars=histogram(scores, top), anchors={e["id"]: f"s-{i}" for i, e in enumerate(entries)},
        groups=page_table(["group of cases", "all right", "graded", "pass rate",
                           "mean points", "of"], group_rates(entries)),
        kinds=page_table(["mistake", "submissions", "an example"],
                         mistakes(entries, "kind")),
        layers=page_table(["first wrong layer", "submissions", "most common kind",
                           "an example"], mistakes(entries, "first_wrong_layer")),
        not_graded=page_table(["submission", "why"], not_graded),
        isolation=page_table(["isolation", "held for", "of"], isolation_rows(entries)),
        students=page_table(["student", "score", "passed", "kind", "first wrong layer",
                             "seconds"], student_rows(entries)),
        details=[(e, page_table(["case", "group", "passed", "what went wrong"], case_rows(e)))
                 for e in entries])


def write_dashboard(out: str | Path, entries: Sequence[Entry]) -> Path:
    """DIR/report.html of a graded class; returns its path."""
    return write(Path(out) / REPORT, dashboard_page(entries))
