"""report.html of reproduce, sweep and train (report/html.py): self-contained (nothing to
fetch), the sections of report.md, the gradient check, the selected config, the settings,
the gradient-health figure and the backward-pass diagram."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

import handgrad
from handgrad.cli.main import main
from handgrad.report.html import page_table
from handgrad.report.templating import environment


class Resources(HTMLParser):
    """Every URL the page would load (src, href, url(...)), its tags and headings."""

    def __init__(self) -> None:
        super().__init__()
        self.urls, self.tags, self.headings, self._h = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "data", "poster", "srcset", "xlink:href"):
                self.urls.append(value or "")
        if tag in ("h1", "h2"):
            self._h = ""

    def handle_data(self, data):
        if self._h is not None:
            self._h += data

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._h is not None:
            self.headings.append(self._h.strip())
            self._h = None


def self_contained(page: str) -> Resources:
    parsed = Resources()
    parsed.feed(page)
    external = [u for u in parsed.urls if not u.startswith(("data:", "#"))]
    assert not external, external[:3]
    assert not re.findall(r"url\((?!#)", page) and "@import" not in page  # url(#id): local
    assert "link" not in parsed.tags
    return parsed


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "rep"
    handgrad.reproduce(dataset="digits", hidden=[16], epochs=3, out=out)
    return out


def test_reproduce_writes_a_self_contained_report_html(reproduced):
    page = (reproduced / "report.html").read_text()
    parsed = self_contained(page)
    markdown = (reproduced / "report.md").read_text()
    for heading in re.findall(r"^## (.+)$", markdown, flags=re.M):
        assert heading in parsed.headings
    assert "The network's backward pass" in parsed.headings
    assert page.count('<img src="data:image/png;base64,') == 4  # engines, sweep, health, confusion
    assert "<svg" in page and "dL/dW₁" in page
    assert page.count('class="sortable"') >= 3
    assert "W1" in page and "Result: <strong>pass</strong>" in page  # the gradient check
    assert "Selected: <strong>" in page and "dataset" in page  # the selection, the settings
    assert "![gradient health per layer](layers.png)" in markdown


def test_train_and_sweep_write_report_html(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet",
                 "--out", str(run)]) == 0
    page = (run / "report.html").read_text()
    parsed = self_contained(page)
    assert {"Every epoch", "Gradient health per layer", "Settings"} <= set(parsed.headings)
    assert page.count('<img src="data:image/png;base64,') == 2  # curves, health
    assert "report.html" in capsys.readouterr().out
    # the run directory stays reusable with its report in it
    assert main(["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet",
                 "--out", str(run)]) == 0
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--quiet",
                 "--lr", "0.01", "0.1", "--out", str(sweep)]) == 0
    parsed = self_contained((sweep / "report.html").read_text())
    assert {"Every config", "Selected config"} <= set(parsed.headings)


def test_templates_escape_what_they_show():
    env = environment()
    template = env.from_string('{% from "macros.html.j2" import table %}{{ table(t) }}')
    out = template.render(t=page_table(["<th>"], [["<script>x</script>", 1.5]]))
    assert "<script>x" not in out and "&lt;script&gt;x" in out and 'data-sort="1.5"' in out
