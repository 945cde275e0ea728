"""Templates: a --template-dir overrides the built-in templates file by file; autoescaping and
StrictUndefined hold for built-in and user templates alike."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from nnviz_report.cli import main
from nnviz_report.errors import ConfigError
from nnviz_report.render.html import builtin_template_dir, environment

TINY = "tests.fixtures.models:tiny_cnn"


def report_with(template_dir: Path, image_folder: Path, out: Path) -> int:
    return main(["report", "--quiet", "--model", TINY, "--data", str(image_folder), "--per-class", "2",
                 "--format", "html", "--template-dir", str(template_dir), "-o", str(out)])


def test_a_user_template_replaces_one_file_and_the_rest_stay_built_in(image_folder: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "sections").mkdir(parents=True)
    (templates / "sections" / "appendix.html.j2").write_text(
        '<section id="appendix" class="report-section">\n<h2>Our own appendix</h2>\n'
        '<h3 id="release">Release notes</h3>\n<p class="model-spec">{{ report.model.spec }}</p>\n</section>\n',
        encoding="utf-8")
    assert report_with(templates, image_folder, tmp_path / "out") == 0
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Our own appendix</h2>" in html and f'<p class="model-spec">{TINY}</p>' in html
    assert "Appendix: reproducibility" not in html  # the built-in appendix is gone ...
    assert '<h2>Summary</h2>' in html and '<h2>Activations</h2>' in html  # ... every other section is built in
    assert '<a href="#release">Release notes</a>' in html  # and the contents list follows the user's headings
    assert html.count('<section id="appendix"') == 1


def test_a_user_stylesheet_is_inlined(image_folder: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    builtin_css = (builtin_template_dir() / "report.css").read_text(encoding="utf-8")
    (templates / "report.css").write_text(builtin_css + "\n:root { --accent: #7a1fa2; }\n", encoding="utf-8")
    assert report_with(templates, image_folder, tmp_path / "out") == 0
    assert "--accent: #7a1fa2;" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_autoescape_is_on_for_built_in_and_user_templates(tmp_path: Path) -> None:
    assert environment().from_string("{{ name }}").render(name="<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    (tmp_path / "probe.html.j2").write_text("<p>{{ name }}</p>", encoding="utf-8")
    rendered = environment(tmp_path).get_template("probe.html.j2").render(name='"><img src=x onerror=alert(1)>')
    assert rendered == "<p>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"


def test_strict_undefined_raises_on_a_missing_variable() -> None:
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        environment().from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ report.no_such_field }}").render(report=object())


def test_a_broken_user_template_is_a_one_line_error_and_nothing_is_written(image_folder: Path, tmp_path: Path,
                                                                             capsys) -> None:
    templates = tmp_path / "templates"
    (templates / "sections").mkdir(parents=True)
    (templates / "sections" / "summary.html.j2").write_text("<h2>{{ report.no_such_field }}</h2>\n", encoding="utf-8")
    assert report_with(templates, image_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--template-dir" in err and "no_such_field" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_template_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        environment(tmp_path / "nowhere")


def test_sample_indices_read_as_runs() -> None:
    from nnviz_report.render.html import fmt_ranges

    assert fmt_ranges([0, 1, 2, 1000, 1001, 5]) == "0–2, 1000–1001, 5"
    long = list(range(0, 200, 2))
    text = fmt_ranges(long, limit=3)
    assert text.startswith("0, 2, 4, …") and "100 indices in all" in text
