"""report.md: a short summary for $GITHUB_STEP_SUMMARY or a pull-request comment.

Every string that comes from the model (module names), the data folder, the command line or an
archived report.json (finding ids, severities, messages) passes through one filter, ``md_escape``:
report.md lands in GitHub's step summary, where markup, links or a stray ``|`` from a pull
request's archive would otherwise become formatting, clickable links or a broken table."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from ..errors import one_line
from ..report_model import Report
from .html import environment

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~@])")
# GitHub turns bare URLs and www. names into links even without markup; an escaped ':' or '.'
# leaves the text as it reads but stops the autolink.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(:)(?=//)|(?<=www)(\.)")


def md_escape(value: object) -> str:
    """Text, never markup, on one line: control characters, newlines and ANSI escapes written
    out (``\\n``, ``\\x1b``), HTML tags and entities neutralised (``&lt;script&gt;``), Markdown
    specials and table pipes backslash-escaped, autolinks broken."""
    text = one_line(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), text)


# The name the templates used before md_escape; kept so that user templates keep working.
escape_markdown = md_escape


def render_markdown(report: Report, *, template_dir: Path | None = None) -> str:
    env: jinja2.Environment = environment(template_dir).overlay(autoescape=False)
    env.filters["md_escape"] = md_escape
    env.filters["md"] = md_escape
    return env.get_template("report.md.j2").render(report=report)
