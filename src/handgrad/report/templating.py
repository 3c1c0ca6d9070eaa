"""The Jinja2 environment of handgrad's HTML and SVG (templates in report/templates/, package
data): autoescaped, with the filters the templates use."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from handgrad.report.tables import fmt


def _strong(text: str) -> Markup:
    """Escape `text`, then **x** -> <strong>x</strong> (the report sections' emphasis)."""
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(text))))


def environment() -> Environment:
    env = Environment(loader=PackageLoader("handgrad.report", "templates"),
                      autoescape=select_autoescape(["html", "j2", "svg"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["strong"] = _strong
    env.filters["fmt"] = fmt
    return env


def render(template: str, **context: Any) -> str:
    """templates/`template` rendered with `context` and handgrad's version."""
    try:
        handgrad_version = version("handgrad")
    except PackageNotFoundError:
        handgrad_version = "(not installed)"
    return environment().get_template(template).render(version=handgrad_version, **context)
