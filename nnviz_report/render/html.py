"""report.html through Jinja: autoescape on, StrictUndefined, formatting as filters.

Every asset is inlined (CSS in a <style>, figures as data: URIs or inline SVG), and a
Content-Security-Policy forbids scripts and every remote load, so the page makes no request
when it is opened, today or years from now.
"""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..errors import ConfigError, OutputError, one_line
from ..figures.source import MARKED_POINTS, VALUE_LEVELS
from ..report_model import Figure, Report

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "script-src 'none'; base-uri 'none'; form-action 'none'"
)
# C0/C1 control characters (tab, newline and carriage return aside) are not allowed in HTML or
# XML text; a module named "\x1b[31m" or "\x00" would make the page or an SVG figure invalid.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def printable(value: Any) -> Any:
    """Every ``{{ value }}`` passes through here before autoescaping: control characters become '?'.
    Markup (our own, already safe HTML) is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _CONTROL.sub("?", value)
    return value


def builtin_template_dir() -> Path:
    return Path(str(resources.files("nnviz_report") / "templates"))


def environment(template_dir: Path | None = None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        if not template_dir.is_dir():
            raise ConfigError(f"--template-dir {template_dir} is not a folder")
        loaders.append(jinja2.FileSystemLoader(str(template_dir)))
    loaders.append(jinja2.FileSystemLoader(str(builtin_template_dir())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=printable,
    )
    env.filters.update(num=fmt_number, pct=fmt_percent, int=fmt_int, shape=fmt_shape, figure=embed_figure,
                       short=fmt_short_hash, ranges=fmt_ranges, delta=fmt_delta)
    # What a caption must say about how report.json keeps a figure's values (the violins' rounding).
    env.globals["value_levels"] = VALUE_LEVELS
    env.globals["marked_points"] = MARKED_POINTS  # and when the violins are one image
    return env


# (anchor, title, template, report field that must be present; None: always shown)
SECTIONS = (
    ("summary", "Summary", "sections/summary.html.j2", None),
    ("compare", "Comparison", "sections/compare.html.j2", "compare"),
    ("flow", "Flow", "sections/flow.html.j2", "flow"),
    ("activations", "Activations", "sections/activations.html.j2", None),
    ("gradients", "Gradients", "sections/gradients.html.j2", None),
    ("saliency", "Saliency", "sections/saliency.html.j2", "saliency"),
    ("slices", "Slices", "sections/slices.html.j2", "slices"),
    ("weights", "Weights", "sections/weights.html.j2", "weights"),
    ("robustness", "Calibration and robustness", "sections/robustness.html.j2", "robustness"),
    ("appendix", "Appendix", "sections/appendix.html.j2", None),
)


def present_sections(report: Report) -> list[dict[str, str]]:
    return [
        {"id": anchor, "title": title, "template": template}
        for anchor, title, template, field in SECTIONS
        if field is None or getattr(report, field) is not None
    ]


# A section's sub-headings, read back from its rendered (already escaped) HTML for the table of contents.
_SUBHEADING = re.compile(r'<h3 id="([^"]+)"[^>]*>(.*?)</h3>', re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def subheadings(section_html: str) -> list[dict[str, Markup]]:
    return [
        {"id": Markup(anchor), "title": Markup(_TAG.sub("", inner).strip())}
        for anchor, inner in _SUBHEADING.findall(section_html)
    ]


def render_html(report: Report, *, template_dir: Path | None = None) -> str:
    env = environment(template_dir)
    try:
        return _render_page(report, env)
    except jinja2.TemplateError as exc:
        if template_dir is None:
            raise  # a built-in template failing is our bug: keep the traceback
        # A user's template is input like any other: a one-line error, exit 2, nothing written.
        where = f" ({exc.name}, line {exc.lineno})" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
        raise ConfigError(f"a template in --template-dir {template_dir} failed{where}: {exc}") from exc


def _render_page(report: Report, env: jinja2.Environment) -> str:
    css = env.get_template("report.css").render()
    context = {"report": report, "verdict": report.verdict.status}
    # Each section is rendered on its own first so that the table of contents can list its sub-headings.
    sections: list[dict[str, Any]] = []
    for section in present_sections(report):
        body = env.get_template(section["template"]).render(context)
        sections.append({**section, "html": Markup(body), "subsections": subheadings(body)})
    html = env.get_template("report.html.j2").render(
        context, css=Markup(css), csp=Markup(CONTENT_SECURITY_POLICY), sections=sections)
    assert_self_contained(html)
    return html


def assert_self_contained(html: str) -> None:
    """Anything a browser would fetch is an error, not a warning: the report must open offline.

    The document is parsed, not searched: attribute values are read after entity decoding (so
    ``&#104;ttp:`` is ``http:``) and CSS (``<style>``, ``style=""``) after removing comments and
    CSS escapes, where ``url()`` and ``@import`` are checked. Text is never checked, so a module
    named ``background-url(x)`` or ``src=http:x`` shown on the page is harmless and accepted."""
    problem = _SelfContainedCheck.first_problem(html)
    if problem:
        raise OutputError(f"the report would load an external resource ({one_line(problem, 120)}); "
                          "refusing to write it: the report must be self-contained (check --template-dir)")


# Attributes whose value the browser (or WeasyPrint) fetches or navigates to.
_URL_ATTRIBUTES = frozenset({
    "src", "href", "xlink:href", "data", "poster", "background", "action", "formaction", "codebase", "archive",
    "manifest", "ping", "lowsrc", "dynsrc", "longdesc", "icon", "profile", "cite", "usemap", "classid",
})
_SRCSET_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})
_URL_STRIP = re.compile(r"[\x00-\x20]+")  # browsers drop ASCII whitespace and controls from URLs
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|(.))", re.DOTALL)
_CSS_URL = re.compile(r"(?:url|src|image-set|image)\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import", re.IGNORECASE)


def _allowed_url(value: str) -> bool:
    url = _URL_STRIP.sub("", value).lower()
    return url == "" or url.startswith(("data:", "#"))


def _css_decoded(css: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        return match.group(2)

    return _CSS_ESCAPE.sub(unescape, _CSS_COMMENT.sub(" ", css))


def _css_problem(css: str) -> str | None:
    decoded = _css_decoded(css)
    if _CSS_IMPORT.search(decoded):
        return "CSS @import"
    for match in _CSS_URL.finditer(decoded):
        if not _allowed_url(match.group(2)):
            return f"CSS url({match.group(2)})"
    # url( with an unbalanced quote or parenthesis, which the pattern above would not match
    if re.search(r"url\(\s*(?![\s'\"]*data:|[\s'\"]*#)", decoded, re.IGNORECASE):
        return "CSS url() that is not a data: URI"
    return None


class _SelfContainedCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = 0

    @classmethod
    def first_problem(cls, html: str) -> str | None:
        check = cls()
        check.feed(html)
        check.close()
        return check.problems[0] if check.problems else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style += 1
        for name, value in attrs:
            if value is None:
                continue
            if name in _URL_ATTRIBUTES and not _allowed_url(value):
                self.problems.append(f"<{tag} {name}={value}>")
            elif name in _SRCSET_ATTRIBUTES:
                for candidate in value.split(","):
                    url = candidate.strip().split(" ")[0] if candidate.strip() else ""
                    if not _allowed_url(url):
                        self.problems.append(f"<{tag} {name}={url}>")
            elif name == "style":
                problem = _css_problem(value)
                if problem:
                    self.problems.append(f"<{tag} style>: {problem}")
            elif name == "srcdoc":
                inner = _SelfContainedCheck.first_problem(value)
                if inner:
                    self.problems.append(f"<{tag} srcdoc>: {inner}")
            elif name == "http-equiv" and value.strip().lower() == "refresh":
                self.problems.append(f"<{tag} http-equiv=refresh>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self._in_style -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._in_style:
            self._in_style -= 1

    def handle_data(self, data: str) -> None:
        if self._in_style:
            problem = _css_problem(data)
            if problem:
                self.problems.append(problem)


# ---- filters -------------------------------------------------------------------------------

def fmt_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return fmt_int(value)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}".replace("-", "−")
    return f"{x:.{digits}g}".replace("-", "−")


def fmt_percent(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    x = float(value)
    return "NaN" if math.isnan(x) else f"{100 * x:.{digits}f} %"


def fmt_delta(value: Any, unit: str = "") -> str:
    """A signed change: "+0.012", "−3", "±0"; unit "pp" reads a fraction as percentage points."""
    if value is None:
        return "—"
    x = float(value)
    if unit == "pp":
        text = "NaN" if math.isnan(x) else f"{100 * abs(x):.1f} pp"
    else:
        whole = isinstance(value, int) and not isinstance(value, bool)
        text = fmt_int(abs(value)) if whole else fmt_number(abs(x))
    if x > 0:
        return f"+{text}"
    if x < 0:
        return f"−{text}"
    return f"±{text}" if unit == "pp" else "±0"


def fmt_int(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}".replace(",", "\u202f")


def fmt_shape(shape: Any) -> str:
    return "—" if shape is None else "×".join(str(int(s)) for s in shape) or "scalar"


def fmt_ranges(values: Any, limit: int = 40) -> str:
    """Sorted runs of consecutive integers as "a–b": the fixed sample is the first K of each
    class, so an ImageFolder sample of any size reads as ten runs. Long lists are cut (the full
    list is in report.json): a page-wide cell of thousands of numbers is slow to lay out."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = [f"{a}–{b}" if b > a else f"{a}" for a, b in runs[:limit]]
    if len(runs) > limit:
        text.append(f"… ({len(values)} indices in all; every one is in report.json)")
    return ", ".join(text)


def fmt_short_hash(value: str | None, length: int = 12) -> str:
    return "—" if not value else value[:length]


def embed_figure(figure: Figure | None, css_class: str = "figure") -> Markup:
    if figure is None:
        return Markup("")
    if not figure.data:  # Figure.undrawn: known by name only, never passed through figures.draw
        raise AssertionError(f"figure {figure.name!r} was never drawn")
    if figure.inline and figure.media_type == "image/svg+xml":
        # Our own SVG (the flow diagram): its text was escaped when it was drawn.
        width = f' style="max-width: {figure.width}px"' if figure.width else ""
        opening = Markup(f'<div class="{escape(css_class)} inline-svg"{width}>')
        return opening + Markup(figure.data.decode("utf-8")) + Markup("</div>")
    # A width attribute, not an inline max-width: the stylesheet's max-width: 100% must still
    # win, so that a figure shrinks with a narrow window or a flex row instead of overflowing.
    width = f' width="{int(figure.width)}"' if figure.width else ""
    payload = base64.b64encode(figure.data).decode("ascii")
    return Markup(
        f'<img class="{escape(css_class)}" src="data:{escape(figure.media_type)};base64,{payload}" '
        f'alt="{escape(printable(figure.alt))}"{width}>'
    )
