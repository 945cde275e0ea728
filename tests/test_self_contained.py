"""Self-contained is enforced, not only checked: the HTML check parses the document (entities
and CSS escapes decoded), WeasyPrint fetches nothing but data: URIs, and harmless text that
merely looks like a URL is never refused."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nnviz_report.cli import main
from nnviz_report.errors import OutputError
from nnviz_report.render.html import assert_self_contained
from nnviz_report.render.pdf import render_pdf

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAB"
       "JRU5ErkJggg==")

EXTERNAL = {
    "entity-encoded scheme": '<img src="&#104;ttp://{host}/a.png">',
    "hex entity in attribute": '<img src="&#x68;ttps://{host}/a.png">',
    "object data": '<object data="http://{host}/o"></object>',
    "CSS @import": "<style>@import 'http://{host}/a.css';</style>",
    "CSS @import escaped": "<style>@\\69mport 'http://{host}/a.css';</style>",
    "CSS url escaped": "<style>p{{background:u\\72l(http://{host}/b.png)}}</style>",
    "CSS url with comment": "<style>p{{background:url(/*x*/http://{host}/c.png)}}</style>",
    "style attribute with entities": '<p style="background:url(&quot;http://{host}/d.png&quot;)">x</p>',
    "srcset": f'<img srcset="{PNG} 1x, http://{{host}}/e.png 2x">',
    "svg image": ('<svg xmlns="http://www.w3.org/2000/svg">'
                  '<image href="http://{host}/f.png" width="4" height="4"/></svg>'),
    "link stylesheet": '<link rel="stylesheet" href="http://{host}/g.css">',
    "relative path": '<img src="secret.png">',
    "file URL": '<img src="file:///etc/hostname">',
    "iframe srcdoc": '<iframe srcdoc="&lt;img src=http://{host}/h.png&gt;"></iframe>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=http://{host}/">',
}

HARMLESS = {
    "module named background-url(x)": "<td>background-url(x)</td>",
    "text src=http:": "<td>src=http:x</td>",
    "escaped markup in text": "<td>&lt;img src=&quot;http://example.org/x.png&quot;&gt;</td>",
    "text @import": "<td>@import url(http://example.org/a.css)</td>",
    "title attribute with url(": '<span title="url(http://example.org)">x</span>',
    "data URI image": f'<img src="{PNG}">',
    "fragment link": '<a href="#flow">flow</a>',
    "CSS data URI": f"<style>p{{background:url('{PNG}')}}</style>",
}


@pytest.mark.parametrize("case", list(EXTERNAL))
def test_external_references_are_refused(case: str) -> None:
    with pytest.raises(OutputError, match="would load an external resource"):
        assert_self_contained(EXTERNAL[case].format(host="127.0.0.1:9"))


@pytest.mark.parametrize("case", list(HARMLESS))
def test_harmless_text_is_accepted(case: str) -> None:
    assert_self_contained(HARMLESS[case])


@pytest.fixture()
def server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


@pytest.mark.parametrize("case", ["object data", "CSS @import", "svg image", "link stylesheet"])
def test_weasyprint_fetches_nothing_but_data_uris(case: str, server) -> None:
    host, hits = server
    html = f'<html><body><p>x</p><img src="{PNG}">{EXTERNAL[case].format(host=host)}</body></html>'
    with pytest.raises(OutputError, match=rf"the PDF would load an external resource \(http://{host}/"):
        render_pdf(html)
    assert hits == []


def test_weasyprint_never_reads_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.css"
    secret.write_text("body { background: red }")
    with pytest.raises(OutputError, match="secret.css"):
        render_pdf(f'<html><head><link rel="stylesheet" href="file://{secret}"></head><body>x</body></html>')
    assert render_pdf(f'<html><body><img src="{PNG}"></body></html>').startswith(b"%PDF")


def test_template_dir_with_an_encoded_reference_is_refused(image_folder: Path, tmp_path: Path, capsys) -> None:
    templates = tmp_path / "templates" / "sections"
    templates.mkdir(parents=True)
    (templates / "appendix.html.j2").write_text('<object data="&#104;ttp://127.0.0.1:9/x"></object>\n')
    out = tmp_path / "out"
    assert main(["report", "--quiet", "--model", "tests.fixtures.models:tiny_cnn", "--data", str(image_folder),
                 "--per-class", "1", "--format", "html,json", "--template-dir", str(tmp_path / "templates"),
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would load an external resource (<object data=http://127.0.0.1:9/x>)" in err
    assert not out.exists()
