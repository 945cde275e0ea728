"""The history's files: history.html (the report's stylesheet and filters, autoescaped, checked
self-contained), history.md (every archived string through md_escape), history.json (the
history model through to_jsonable). The PDF is render.pdf's, from the same HTML."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..errors import ConfigError
from ..history_model import History
from ..report_model import to_jsonable
from .html import CONTENT_SECURITY_POLICY, assert_self_contained, environment
from .markdown import md_escape


def render_history_html(history: History, *, template_dir: Path | None = None) -> str:
    env = environment(template_dir)
    try:
        css = env.get_template("report.css").render() + "\n" + env.get_template("history.css").render()
        html = env.get_template("history.html.j2").render(h=history, css=Markup(css),
                                                         csp=Markup(CONTENT_SECURITY_POLICY))
    except jinja2.TemplateError as exc:
        if template_dir is None:
            raise
        raise ConfigError(f"a template in --template-dir {template_dir} failed: {exc}") from exc
    assert_self_contained(html)
    return html


def render_history_markdown(history: History, *, template_dir: Path | None = None) -> str:
    env: jinja2.Environment = environment(template_dir).overlay(autoescape=False)
    env.filters["md_escape"] = md_escape
    env.filters["md"] = md_escape
    return env.get_template("history.md.j2").render(h=history)


def render_history_json(history: History) -> str:
    return json.dumps(to_jsonable(history), indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
