"""report.md: a short summary for $GITHUB_STEP_SUMMARY or a pull-request comment."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from ..report_model import Report
from .html import environment


def escape_markdown(value: object) -> str:
    """Names from the model are text, never markup: HTML and Markdown control characters are
    escaped and control characters dropped, so a module called `<script>` stays harmless."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)


def render_markdown(report: Report, *, template_dir: Path | None = None) -> str:
    env: jinja2.Environment = environment(template_dir).overlay(autoescape=False)
    env.filters["md"] = escape_markdown
    return env.get_template("report.md.j2").render(report=report)
