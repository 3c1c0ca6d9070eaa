"""The exercise's report: report.md with its figures (and report.html, `report.html`), and the
same sections as text (the console) and HTML (a notebook). Sections are numbered as
`reproduce` numbers its phases: 1. gradient check, 2. engines, 3. sweep, 4. test set."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handgrad.report import figures, plots
from handgrad.report.html import page_table, write_reproduce
from handgrad.report.tables import (
    config_label,
    confusion_table,
    fixed_text,
    fmt,
    gap_table,
    html_table,
    markdown_table,
    selection_text,
    sweep_table,
    text_table,
)
from handgrad.run.rundir import atomic_write_bytes

TITLES = {1: "Gradient check (float64, a real batch)",
          2: "Hand-written vs autograd training, one start",
          3: "Sweep, selected by {select_by} (validation)",
          4: "Selected config on the test set"}
FIGURES = {2: [("engines", "engines")],  # section: [(alt text, key of `result.figures`)]
           3: [("every config", "sweep"), ("gradient health per layer", "health")],
           4: [("confusion matrix", "confusion")]}


def write_report(result: Any) -> dict[str, str]:
    """Draw the figures and write report.md and report.html in `result.out`; returns the
    figures' paths relative to it."""
    out, sel = Path(result.out), result.selected
    drawn = {"sweep": (figures.sweep_figure(result.results), "sweep_curves.png"),
             "engines": (figures.comparison_figure(result.comparison), "compare/engines.png"),
             "health": (figures.sweep_health_figure(result.results), "layers.png")}
    if sel:
        drawn["confusion"] = (figures.confusion_figure(sel), "confusion.png")
    for fig, name in drawn.values():
        plots.save(fig, out / name)
    paths = {key: name for key, (_, name) in drawn.items()}
    result.figures = paths
    atomic_write_bytes(out / "report.md", reproduce_markdown(result).encode())
    write_reproduce(result, sections(result, page_table, lambda t: f"**{t}**"), FIGURES)
    return paths


def sections(result: Any, table: Callable, strong: Callable[[str], str],
              ) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of the four sections, tables drawn by `table(headers, rows)`."""
    r, check = result.results, result.gradcheck
    engines, sel = r["engines"], result.selected
    verdict = "pass" if check.passed else "FAIL"
    s1 = [f"Pass lines: relative error ≤ {check.autograd_tolerance:g} against autograd, ≤ "
          f"{check.numeric_tolerance:g} against central differences (step {check.step:g}). "
          f"Result: {strong(verdict)}.", table(check.HEADERS, check.rows()),
          *[f"- {w}" for w in check.warnings]]
    settings = engines.get("settings", {})
    s2 = [f"SGD lr {settings.get('lr')}, momentum {settings.get('momentum')}, "
          f"{engines['dtype']}; largest gap in loss: {strong(fmt(engines['max_gap']))}. The "
          f"same start, the first {engines['float64_steps']} steps in float64: largest loss "
          f"gap {strong(fmt(engines['float64_max_loss_gap']))}, largest weight difference "
          f"{strong(fmt(engines['float64_max_weight_gap']))}. The two engines compute the "
          "same function; in float32 their different summation orders leave rounding-level "
          "differences that training can amplify over epochs, so the float64 gaps, at the "
          "level of float64 rounding, are the check and the float32 curves show the "
          "practical agreement.", table(*gap_table(engines["epochs"]))]
    s3 = [x for x in (fixed_text(r), table(*sweep_table(r))) if x]
    if sel:
        s4 = [f"Selected: {strong(config_label(sel, r['swept']))} "
              f"{selection_text(sel, r['select_by'])}.",
              f"Test loss {strong(fmt(sel['test_loss']))}, test accuracy "
              f"{strong(fmt(sel['test_accuracy']))}.",
              table(*confusion_table(sel["confusion_matrix"], sel["class_names"]))]
    else:
        s4 = ["No config completed; nothing was selected and the test set was not used."]
    titles = {n: t.format(select_by=r["select_by"]) for n, t in TITLES.items()}
    return [(titles[1], s1), (titles[2], s2), (titles[3], s3), (titles[4], s4)]


def reproduce_markdown(result: Any) -> str:
    r, figs = result.results, result.figures
    parts = ["# handgrad: the classic exercise, reproduced\n",
             f"Dataset: **{r['dataset']}**, classes {', '.join(r['class_names'])}.\n",
             "Reproduce with:\n\n```\n" + " ".join(r["command"]) + "\n```\n"]
    for n, (title, paragraphs) in enumerate(sections(result, markdown_table,
                                                     lambda t: f"**{t}**"), start=1):
        parts.append(f"## {n}. {title}\n")
        parts += [p + "\n" for p in paragraphs]
        parts += [f"![{alt}]({figs[key]})\n" for alt, key in FIGURES.get(n, []) if key in figs]
    return "\n".join(parts)


def reproduce_text(result: Any) -> str:
    """The four sections for a terminal, then where the report is."""
    out = []
    for n, (title, paragraphs) in enumerate(sections(result, text_table, str), start=1):
        wrapped = [p if "\n" in p else textwrap.fill(p, 100) for p in paragraphs]
        out += [f"== {n}. {title[0].lower()}{title[1:]}", *wrapped, ""]
    out.append(f"report: {result.report_path}")
    return "\n".join(out)


def reproduce_summary(result: Any) -> list[str]:
    """One line a section: what a reader wants first (`str(result)`)."""
    r, check, sel = result.results, result.gradcheck, result.selected
    e = r["engines"]
    bad = check.first_failure()
    lines = [
        f"handgrad reproduce on {r['dataset']} ({', '.join(r['class_names'])}): {result.out}",
        f"1. gradient check: {'pass' if bad is None else 'FAIL at ' + bad.name} "
        f"({len(check.tensors)} tensors, {check.dtype})",
        f"2. engines from one start: largest loss gap {fmt(e['max_gap'])} ({e['dtype']}); "
        f"float64, {e['float64_steps']} steps: {fmt(e['float64_max_loss_gap'])} (weights "
        f"{fmt(e['float64_max_weight_gap'])})"]
    if sel:
        lines += [f"3. sweep of {len(r['configs'])} configs: selected "
                  f"{config_label(sel, r['swept'])} {selection_text(sel, r['select_by'])}",
                  f"4. test set, once: loss {fmt(sel['test_loss'])}, accuracy "
                  f"{fmt(sel['test_accuracy'])}"]
    else:
        lines += [f"3. sweep of {len(r['configs'])} configs: none completed, nothing selected",
                  "4. test set: not used"]
    return [*lines, f"report: {result.report_path}"]


def reproduce_html(result: Any) -> str:
    """The summary, then the sweep's table (a notebook's view of the result)."""
    lines = [html.escape(x) for x in reproduce_summary(result)]
    return (f"<p><b>{lines[0]}</b></p><ul>" + "".join(f"<li>{x}</li>" for x in lines[1:-1])
            + f"</ul>{html_table(*sweep_table(result.results))}<p>{lines[-1]}</p>")
