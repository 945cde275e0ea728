"""Reliability (issue 6): checkpoints never execute code, names never become markup, every bad
input is one line and exit 2 with nothing half-written, the model comes back untouched, and
architectures nobody here wrote build complete reports."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nnviz_report import output
from nnviz_report.capture import capture_saliency, run_capture
from nnviz_report.cli import main
from nnviz_report.errors import CaptureError, CheckpointError, OutputError
from nnviz_report.graph import extract_graph
from nnviz_report.models import load_model, read_state_dict
from tests.conftest import write_image_folder
from tests.fixtures.hostile_models import (
    ANSI,
    ATTRIBUTE_BREAKOUT,
    JS_URL,
    SCRIPT,
    STYLE_BREAKOUT,
    hostile_names,
    save_marker_checkpoint,
    save_raw_marker_pickle,
)
from tests.fixtures.models import InplaceResidual, tiny_cnn

TINY = "tests.fixtures.models:tiny_cnn"
HOSTILE = "tests.fixtures.hostile_models"
CPU = torch.device("cpu")
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def run_cli(*args: str | Path) -> int:
    return main(["report", "--quiet", *map(str, args)])


def one_line_error(capsys: pytest.CaptureFixture[str], pattern: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nnviz-report: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), f"{pattern!r} not in {err!r}"
    return err


def staging_leftovers(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(".nnviz-report-")]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---- checkpoints never execute code ------------------------------------------------------------

@pytest.fixture()
def tiny_state() -> dict[str, torch.Tensor]:
    return tiny_cnn().state_dict()


def test_hostile_checkpoint_is_refused_and_its_payload_never_runs(tmp_path: Path, tiny_state) -> None:
    marker = tmp_path / "pwned"
    path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    with pytest.raises(CheckpointError, match=r"full unpickling.*arbitrary code.*state_dict.*--trust-checkpoint"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["zip-checkpoint", "legacy-pickle"])
def test_hostile_checkpoint_through_the_cli(tmp_path: Path, image_folder: Path, tiny_state, capsys, kind) -> None:
    marker = tmp_path / "pwned"
    if kind == "zip-checkpoint":
        path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    else:
        path = save_raw_marker_pickle(tmp_path / "hostile.pkl", marker)
    out = tmp_path / "out"
    assert run_cli("--model", TINY, "--weights", path, "--data", image_folder, "--per-class", "1", "-o", out) == 2
    one_line_error(capsys, r"hostile\.(pt|pkl) holds Python objects .*--trust-checkpoint")
    assert not marker.exists()
    assert not out.exists() and not staging_leftovers(tmp_path)


def test_trust_checkpoint_does_unpickle(tmp_path: Path, tiny_state) -> None:
    # What the flag means, and why it is off by default: the payload runs.
    marker = tmp_path / "pwned"
    path = save_marker_checkpoint(tmp_path / "hostile.pt", marker, tiny_state)
    assert set(read_state_dict(path, trust=True)) == set(tiny_state)
    assert marker.exists()


def test_every_untrusted_load_is_weights_only(tmp_path: Path, tiny_state, monkeypatch) -> None:
    calls: list[Any] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save({"model": tiny_state, "epoch": 3}, tmp_path / "plain.pt")
    load_model(TINY, weights=tmp_path / "plain.pt")
    with pytest.raises(CheckpointError):
        read_state_dict(save_marker_checkpoint(tmp_path / "h.pt", tmp_path / "m", tiny_state))
    assert calls == [True, True]


@pytest.mark.parametrize("trust", [False, True])
def test_torchscript_archive_as_weights_is_refused_not_executed(tmp_path: Path, image_folder: Path, capsys,
                                                                  monkeypatch, trust: bool) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_cnn()).save(str(path))
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    flags = ["--trust-checkpoint"] if trust else []
    assert run_cli("--model", TINY, "--weights", path, *flags, "--data", image_folder, "--per-class", "1",
                   "-o", tmp_path / "o") == 2
    one_line_error(capsys, r"scripted\.pt is a TorchScript archive .*--model torchscript:.*no --weights")
    monkeypatch.undo()
    assert load_model(f"torchscript:{path}").class_name == "TorchScript"  # the explicit spec loads it


# ---- names cannot inject markup ------------------------------------------------------------

CHECKPOINT_NAME = "w<script>alert(1)\x1b\"'&.pt"
DATA_NAME = "d<script>alert(1)\x1b\"q&"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    data = write_image_folder(root / DATA_NAME, per_class=2)
    torch.save(hostile_names().state_dict(), root / CHECKPOINT_NAME)
    out = root / "out"
    assert run_cli("--model", f"{HOSTILE}:{SCRIPT}", "--weights", root / CHECKPOINT_NAME, "--data", data,
                   "--per-class", "2", "--showcase", "2", "-o", out) == 0
    return out


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def assert_no_active_markup(elements: list[tuple[str, dict[str, str | None]]]) -> None:
    for tag, attrs in elements:
        assert tag.rpartition("}")[2].lower() not in {"script", "iframe", "object", "embed", "base", "link",
                                                      "form", "fc", "foreignobject"}, (tag, attrs)
        for name, value in attrs.items():
            local = name.rpartition("}")[2].lower()
            assert not local.startswith("on"), (tag, attrs)
            if local == "href":  # in-page links, and matplotlib's embedded raster images
                assert (value or "").startswith(("#", "data:image/")), (tag, attrs)
            if local == "src":
                assert (value or "").startswith("data:"), (tag, attrs)


def test_html_shows_names_as_text_never_as_markup(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert not re.search(r"""(?:href|src)\s*=\s*["']?\s*javascript:""", html, re.IGNORECASE)
    assert html.count("</style>") == len(re.findall(r"<style[\s>]", html)) == 1
    assert not CONTROL.search(html), "control characters reach the page"
    parser = _Elements()
    parser.feed(html)
    assert_no_active_markup(parser.elements)
    # The names are shown (escaped), not dropped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    title = re.search(r"<title>(.*?)</title>", html, re.DOTALL)
    assert title and "tests.fixtures.hostile_models:&lt;script&gt;" in title.group(1)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src 'none'" in csp.group(1)


def test_inline_flow_svg_is_valid_xml_with_escaped_names(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)
    assert svgs, "no inline flow diagram"
    titles: list[str] = []
    for svg in svgs:
        root = ET.fromstring(svg)  # valid XML: nothing broke out of a text node or attribute
        elements = [(el.tag, {k: v for k, v in el.attrib.items()}) for el in root.iter()]
        assert_no_active_markup(elements)
        titles += [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}title")]
    tooltips = "\n".join(titles)
    assert ATTRIBUTE_BREAKOUT in tooltips and STYLE_BREAKOUT in tooltips and JS_URL in tooltips


def test_svg_figures_are_valid_xml_without_scripts(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    figures = re.findall(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)", html)
    assert figures
    for payload in figures:
        root = ET.fromstring(base64.b64decode(payload))  # a control character would break the XML
        assert_no_active_markup([(el.tag, dict(el.attrib)) for el in root.iter()])
    alts = re.findall(r'alt="([^"]*)"', html)
    assert alts and not any(CONTROL.search(a) or "<" in a for a in alts)


def test_markdown_escapes_names(hostile_report: Path) -> None:
    md = (hostile_report / "report.md").read_text(encoding="utf-8")
    assert "<script" not in md.lower() and not CONTROL.search(md)
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in md  # the spec, escaped for HTML and Markdown


def test_json_round_trips_names_exactly(hostile_report: Path) -> None:
    record = json.loads((hostile_report / "report.json").read_text(encoding="utf-8"))
    assert record["model"]["class_name"] == SCRIPT
    assert record["model"]["spec"] == f"{HOSTILE}:{SCRIPT}"
    assert record["model"]["checkpoint_name"] == CHECKPOINT_NAME
    assert DATA_NAME in record["sample"]["source"]
    names = {layer["name"] for layer in record["activations"]["layers"]}
    assert {f"body.{ATTRIBUTE_BREAKOUT}", f"body.{ANSI}", f"body.block.layers.{STYLE_BREAKOUT}",
            "body.block.layers.\x00nul\x07bell"} <= names
    types = {layer["type"] for layer in record["activations"]["layers"]}
    assert "<img src=x onerror=alert(3)>" in types


def test_pdf_renders_names_as_inert_text(hostile_report: Path) -> None:
    pdf = (hostile_report / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    for active in (b"/JavaScript", b"/JS ", b"/Launch", b"/SubmitForm", b"javascript:"):
        assert active not in pdf
    import shutil
    import subprocess

    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(hostile_report / "report.pdf"), "-"], capture_output=True,
                              text=True, check=True).stdout
        assert "<script>alert(1)</script>" in text  # printed as the text it is


# ---- a matrix of bad inputs ------------------------------------------------------------------

Case = Callable[[Path, Path, dict[str, torch.Tensor]], tuple[list[str | Path], str]]


def _checkpoint(tmp: Path, payload: Any, name: str = "ckpt.pt") -> Path:
    torch.save(payload, tmp / name)
    return tmp / name


def _truncated(tmp: Path, state: dict[str, torch.Tensor]) -> Path:
    good = _checkpoint(tmp, state, "good.pt")
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[:300])
    return tmp / "truncated.pt"


def _folder(tmp: Path, *names: str) -> Path:
    for name in names:
        (tmp / "data" / name).mkdir(parents=True)
    (tmp / "data").mkdir(exist_ok=True)
    return tmp / "data"


def _with_bad_file(tmp: Path, name: str, write: Callable[[Path], None]) -> Path:
    data = write_image_folder(tmp / "data", per_class=2)
    write(data / "cat" / name)  # sorts before 0000.png, so it is among the first images read
    return data


def _edited(state: dict[str, torch.Tensor], drop: str = "", add: str = "", reshape: str = "") -> dict[str, Any]:
    edited = dict(state)
    if drop:
        del edited[drop]
    if add:
        edited[add] = torch.zeros(1)
    if reshape:
        edited[reshape] = torch.zeros(3)
    return edited


W = "--weights"
BAD_INPUTS: dict[str, Case] = {
    "checkpoint missing": lambda t, d, s: ([W, t / "nope.pt"], r"nope\.pt does not exist; check the --weights path"),
    "checkpoint is a folder": lambda t, d, s: ([W, t], r"is a folder, not a file; pass the \.pt file"),
    "checkpoint corrupt": lambda t, d, s: (
        [W, (t / "junk.pt", (t / "junk.pt").write_bytes(b"\x80\x02 not a checkpoint" * 9))[0]],
        r"junk\.pt is corrupt or not a PyTorch file .*; re-save it"),
    "checkpoint truncated": lambda t, d, s: ([W, _truncated(t, s)], r"corrupt or truncated .*re-save or re-download"),
    "checkpoint not a state_dict": lambda t, d, s: ([W, _checkpoint(t, [1, 2, 3])], r"holds no state_dict"),
    "checkpoint non-tensor entries": lambda t, d, s: (
        [W, _checkpoint(t, {**s, "epoch": 3})], r"entries that are not tensors: epoch"),
    "state_dict missing keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, drop="conv1.weight"))], r"missing keys conv1\.weight; check that --model"),
    "state_dict unexpected keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, add="extra.weight"))], r"unexpected keys extra\.weight"),
    "state_dict mis-shaped keys": lambda t, d, s: (
        [W, _checkpoint(t, _edited(s, reshape="fc.bias"))], r"mis-shaped keys fc\.bias \(3,\) vs \(10,\)"),
    "torchscript as weights": lambda t, d, s: (
        [W, (t / "ts.pt", torch.jit.script(tiny_cnn()).save(str(t / "ts.pt")))[0]],
        r"TorchScript archive.*--model torchscript:"),
    "spec does not import": lambda t, d, s: (["--model", "no_such_pkg_xyz:build"], r"cannot import 'no_such_pkg_xyz'"),
    "spec attribute missing": lambda t, d, s: (
        ["--model", "tests.fixtures.models:nope"], r"has no attribute 'nope'; check the name after the colon"),
    "spec not a module": lambda t, d, s: (
        ["--model", "tests.fixtures.models:NOT_A_MODULE"], r"neither an nn\.Module nor callable; point the spec at"),
    "factory returns non-module": lambda t, d, s: (
        ["--model", f"{HOSTILE}:returns_not_a_module"], r"returned dict, not an nn\.Module"),
    "unknown model name": lambda t, d, s: (["--model", "alexnet2"], r"unknown model 'alexnet2'; use one of"),
    "unknown torchvision model": lambda t, d, s: (["--model", "torchvision:nope_net"], r"torchvision has no model"),
    "output not (N, 10) logits": lambda t, d, s: (
        ["--model", "tests.fixtures.models:wrong_output"], r"shape \(\d+, 7\).*expected \(\d+, 10\) logits"),
    "output not a tensor": lambda t, d, s: (
        ["--model", f"{HOSTILE}:returns_tuple"], r"returned tuple, not a tensor of \(N, 10\) logits"),
    "model rejects 32x32": lambda t, d, s: (
        ["--model", f"{HOSTILE}:wants_large_input"], r"RuntimeError .*after layers flatten: .*3×32×32"),
    "model raises in forward": lambda t, d, s: (
        ["--model", "tests.fixtures.models:raises_in_forward"], r"ValueError .*after layers conv1, relu1: boom"),
    "data folder missing": lambda t, d, s: (["--data", t / "nope"], r"data folder .*nope does not exist"),
    "data is a file": lambda t, d, s: (
        ["--data", (t / "f.txt", (t / "f.txt").write_text("x"))[0]], r"is a file, not a folder"),
    "data folder empty": lambda t, d, s: (["--data", _folder(t)], r"is empty; it needs the ten CIFAR-10 class"),
    "no CIFAR-10 class folders": lambda t, d, s: (
        ["--data", _folder(t, "cats", "dogs")], r"lacks the CIFAR-10 class folders airplane, .*truck"),
    "extra class folder": lambda t, d, s: (
        ["--data", (write_image_folder(t / "data", 2), (t / "data" / "zebra").mkdir())[0]],
        r"folders that are not CIFAR-10 classes: zebra; move them out"),
    "non-image file": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.txt", lambda p: p.write_text("notes"))], r"000\.txt is not an image file"),
    "image not 32x32": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.png", lambda p: Image.new("RGB", (64, 48)).save(p))],
        r"000\.png is 64×48, not 32×32; resize"),
    "unreadable image": lambda t, d, s: (
        ["--data", _with_bad_file(t, "000.png", lambda p: p.write_bytes(b"not a png"))],
        r"000\.png cannot be read as an image .*remove or replace it"),
    "empty class folder": lambda t, d, s: (
        ["--data", (write_image_folder(t / "data", 2), [f.unlink() for f in (t / "data" / "cat").iterdir()])[0]],
        r"class folder .*cat is empty; put at least 2 images of cat in it"),
    "template dir missing": lambda t, d, s: (
        ["--template-dir", t / "nope", "--format", "html"], r"--template-dir .*nope is not a folder"),
    "per-class 0": lambda t, d, s: (["--per-class", "0"], r"--per-class must be at least 1, got 0"),
    "per-class negative": lambda t, d, s: (["--per-class", "-3"], r"--per-class must be at least 1, got -3"),
    "per-class above the data": lambda t, d, s: (
        ["--per-class", "7"], r"more than .* holds \(6 files\); use --per-class 6"),
    "unknown format": lambda t, d, s: (["--format", "html,docx"], r"unknown output format 'docx'; choose from"),
    "no format": lambda t, d, s: (["--format", ","], r"no output format given"),
    "unknown device": lambda t, d, s: (["--device", "tpu"], r"unknown device 'tpu'; use cpu or cuda"),
    "batch size 0": lambda t, d, s: (["--batch-size", "0"], r"--batch-size must be at least 1"),
    "min-accuracy above 1": lambda t, d, s: (["--min-accuracy", "2"], r"--min-accuracy must be between 0 and 1"),
    "config file missing": lambda t, d, s: (
        ["--config", t / "nope.toml"], r"config file .*nope\.toml does not exist; check the --config path"),
    "output path is a file": lambda t, d, s: (
        ["-o", (t / "taken", (t / "taken").write_text("keep"))[0]], r"output path .*taken is a file; pass a folder"),
    "output path under a file": lambda t, d, s: (
        ["-o", (t / "f" / "out", (t / "f").write_text("keep"))[0]],
        r"lies under .*f, which is a file; choose another folder with -o"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, image_folder: Path, tmp_path: Path,
                                                          tiny_state, capsys) -> None:
    args, pattern = BAD_INPUTS[case](tmp_path, image_folder, tiny_state)
    options = {"--model": TINY, "--data": image_folder, "--per-class": "2", "-o": tmp_path / "out"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[str(flag)] = value
    before = sorted(p.name for p in tmp_path.iterdir())
    code = run_cli(*[x for pair in options.items() for x in pair])
    one_line_error(capsys, pattern)
    assert code == 2
    out = Path(options["-o"])
    assert not out.is_dir() or not any(out.iterdir()), "files left in the output folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was created beside the output"
    assert not staging_leftovers(tmp_path, out)


def test_cuda_without_cuda(image_folder: Path, tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert run_cli("--model", TINY, "--data", image_folder, "--device", "cuda", "-o", tmp_path / "o") == 2
    one_line_error(capsys, r"--device cuda .*CUDA is not available here; use --device cpu")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500; the os.access test covers the path")
def test_unwritable_output_directory(image_folder: Path, tmp_path: Path, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run_cli("--model", TINY, "--data", image_folder, "-o", locked / "out") == 2
        one_line_error(capsys, r"cannot write into .*locked; choose another folder with -o")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_output_directory_access_check(image_folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    checked: list[Path] = []

    def no_access(path: Any, mode: int) -> bool:
        checked.append(Path(path))
        return False

    monkeypatch.setattr(output.os, "access", no_access)
    assert run_cli("--model", TINY, "--data", image_folder, "-o", tmp_path / "a" / "b") == 2
    one_line_error(capsys, r"cannot write into .*; choose another folder with -o")
    assert checked == [tmp_path]  # the nearest folder that exists
    assert not (tmp_path / "a").exists()


def test_nan_weights_are_a_failing_finding_not_an_error(image_folder: Path, tmp_path: Path) -> None:
    args = ["--model", f"{HOSTILE}:nan_weights", "--data", image_folder, "--per-class", "1", "--format", "json,html"]
    assert run_cli(*args, "-o", tmp_path / "a") == 0
    record = json.loads((tmp_path / "a" / "report.json").read_text())
    non_finite = [f for f in record["findings"] if f["check"] == "non-finite"]
    assert non_finite and all(f["severity"] == "fail" for f in non_finite)
    assert any("conv1.weight holds 1 NaN" in f["message"] for f in non_finite)
    assert run_cli(*args, "-o", tmp_path / "b", "--fail-on", "fail") == 1
    assert (tmp_path / "b" / "report.json").exists() and (tmp_path / "b" / "report.html").exists()


# ---- nothing half-written ---------------------------------------------------------------------

@pytest.fixture()
def existing_report(image_folder: Path, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "out"
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,json,md",
                   "-o", out) == 0
    (out / "notes.txt").write_text("the user's own file")
    return out, snapshot(out)


RENDER_FAILURES = {
    "bad input": ("nnviz_report.render.markdown.render_markdown", OutputError("cannot write report.md here"), 2),
    "Ctrl-C while rendering": ("nnviz_report.render.json_record.render_json", signal.SIGINT, 130),
}


@pytest.mark.parametrize("failure", list(RENDER_FAILURES))
def test_failed_render_leaves_the_existing_report_unchanged(existing_report, image_folder: Path, capsys,
                                                            monkeypatch, failure: str) -> None:
    out, before = existing_report
    target, error, expected = RENDER_FAILURES[failure]

    def fail(*_args: Any, **_kwargs: Any) -> str:
        if isinstance(error, signal.Signals):
            os.kill(os.getpid(), error)  # a real Ctrl-C: the handler raises KeyboardInterrupt here
        raise error

    monkeypatch.setattr(target, fail)
    capsys.readouterr()
    # md is rendered after HTML and JSON, json after HTML: earlier files already sit in the staging folder
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "2", "--format", "html,json,md",
                   "-o", out) == expected
    assert snapshot(out) == before
    assert not staging_leftovers(out, out.parent)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("interrupted; no files were written" in err if expected == 130 else True)


@pytest.mark.parametrize("bad", [["--model", "tests.fixtures.models:raises_in_forward"], ["--weights", "/nope.pt"]])
def test_failed_run_leaves_the_existing_report_unchanged(existing_report, image_folder: Path, bad) -> None:
    out, before = existing_report
    options = {"--model": TINY, "--data": str(image_folder), "-o": str(out)} | dict([bad])
    assert run_cli(*[x for pair in options.items() for x in pair]) == 2
    assert snapshot(out) == before and not staging_leftovers(out, out.parent)


def test_ctrl_c_into_a_new_folder_leaves_nothing(image_folder: Path, tmp_path: Path, monkeypatch) -> None:
    def interrupt(*_args: Any, **_kwargs: Any) -> bytes:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal handler did not raise")

    monkeypatch.setattr("nnviz_report.render.pdf.render_pdf", interrupt)
    out = tmp_path / "new" / "out"
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,pdf",
                   "-o", out) == 130
    assert not out.exists() or not any(out.iterdir())
    assert not staging_leftovers(tmp_path / "new", out)


def test_an_unexpected_error_still_leaves_nothing_behind(existing_report, image_folder: Path, monkeypatch,
                                                         capsys) -> None:
    # A bug is not the user's fault: exit 3 with one line, and the output is still all-or-nothing.
    out, before = existing_report

    def bug(*_args: Any, **_kwargs: Any) -> str:
        raise RuntimeError("a bug in a renderer")

    monkeypatch.setattr("nnviz_report.render.markdown.render_markdown", bug)
    capsys.readouterr()
    assert run_cli("--model", TINY, "--data", image_folder, "--per-class", "1", "--format", "html,md",
                   "-o", out) == 3
    assert capsys.readouterr().err == ("nnviz-report: internal error: RuntimeError: a bug in a renderer — rerun "
                                       "with --debug and report it\n")
    assert snapshot(out) == before and not staging_leftovers(out, out.parent)


# ---- the model is left untouched -------------------------------------------------------------

class FailsAfterBN(InplaceResidual):
    """Runs the stem and the first BatchNorm, then raises: a failure after state could have moved."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.relu(self.bn0(self.stem(x)))
        raise ValueError("fails after bn0")


def prepared(model_class: type[InplaceResidual] = InplaceResidual) -> nn.Module:
    """Train mode with one BatchNorm frozen, moved running statistics, .grad on some parameters,
    requires_grad off on others, and the user's own hooks."""
    torch.manual_seed(0)
    model = model_class()
    model.train()
    model.bn0.eval()  # a frozen BatchNorm inside a training model (fine-tuning)
    with torch.no_grad():
        for bn in (model.bn0, model.bn1):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.num_batches_tracked.fill_(17)
    model.stem.weight.requires_grad_(False)
    model.conv.weight.grad = torch.randn_like(model.conv.weight)
    model.bn1.bias.grad = torch.ones_like(model.bn1.bias)
    model.head.register_forward_hook(lambda *_: None)
    model.bn1.register_forward_pre_hook(lambda *_: None)
    return model


def model_state(model: nn.Module) -> dict[str, Any]:
    hook_kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                  "_state_dict_hooks", "_load_state_dict_pre_hooks")
    return {
        "tensors": {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()},
        "params": {n: id(p) for n, p in model.named_parameters()},
        "grads": {n: (id(p.grad), p.grad.clone()) if p.grad is not None else None for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "devices": {n: p.device for n, p in model.named_parameters()},
        "hooks": {(n, kind): list(getattr(m, kind)) for n, m in model.named_modules() for kind in hook_kinds},
    }


def assert_same_state(before: dict[str, Any], model: nn.Module) -> None:
    after = model_state(model)
    assert before["tensors"].keys() == after["tensors"].keys()
    for key, value in before["tensors"].items():
        assert torch.equal(value, after["tensors"][key]), f"{key} moved"  # BN running statistics included
    for key in ("params", "requires_grad", "training", "devices", "hooks"):
        assert before[key] == after[key], key
    for name, saved in before["grads"].items():
        now = after["grads"][name]
        assert (saved is None) == (now is None), name
        if saved is not None:
            assert saved[0] == now[0] and torch.equal(saved[1], now[1]), f"{name}.grad changed"


def batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10


def test_capture_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch()
    run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0, 1))
    assert_same_state(before, model)


def test_failed_capture_leaves_the_model_untouched() -> None:
    model = prepared(FailsAfterBN)
    before = model_state(model)
    x, y = batch()
    with pytest.raises(CaptureError, match="after layers stem, bn0, relu: fails after bn0"):
        run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0,))
    assert_same_state(before, model)


def test_interrupted_capture_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch()

    def interrupt(_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after a full forward and backward of the first batch
        run_capture(model, x, y, batch_size=5, device=CPU, showcase_positions=(0,), progress=interrupt)
    assert_same_state(before, model)


def test_saliency_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    x, y = batch(4)
    result = capture_saliency(model, x, y, layer="conv", device=CPU)
    assert result.gradients.shape == (4, 8, 32, 32)
    assert_same_state(before, model)
    failing = prepared(FailsAfterBN)
    before = model_state(failing)
    with pytest.raises(ValueError, match="fails after bn0"):
        capture_saliency(failing, x, y, layer="stem", device=CPU)
    assert_same_state(before, failing)


def test_graph_extraction_leaves_the_model_untouched() -> None:
    model = prepared()
    before = model_state(model)
    graph = extract_graph(model, batch(2)[0])
    assert graph.nodes
    assert_same_state(before, model)
    failing = prepared(FailsAfterBN)
    before = model_state(failing)
    with pytest.raises(Exception, match="fails after bn0"):
        extract_graph(failing, batch(2)[0])
    assert_same_state(before, failing)


# ---- architectures nobody here wrote ---------------------------------------------------------

TORCHVISION_MODELS = ("resnet18", "vgg11_bn", "mobilenet_v3_small", "densenet121", "efficientnet_b0",
                      "shufflenet_v2_x0_5", "squeezenet1_0", "regnet_x_400mf")


@pytest.mark.slow
def test_torchvision_architectures_build_complete_reports(tmp_path: Path) -> None:
    data = write_image_folder(tmp_path / "data", per_class=1)
    timings: dict[str, float] = {}
    for name in TORCHVISION_MODELS:
        out = tmp_path / name
        formats = "json,html" if name == "resnet18" else "json"
        started = time.perf_counter()
        code = run_cli("--model", f"torchvision:{name}", "--data", data, "--per-class", "1", "--batch-size", "10",
                       "--showcase", "1", "--format", formats, "-o", out)
        timings[name] = time.perf_counter() - started
        assert code in (0, 1), name
        record = json.loads((out / "report.json").read_text())
        for section in ("summary", "activations", "gradients", "flow"):
            assert record[section], f"{name}: no {section} section"
        assert record["activations"]["layers"], name
        assert record["gradients"]["params"], name
        assert record["flow"]["graph"]["nodes"], name
        assert record["sample"]["count"] == 10
        assert np.isfinite(record["performance"]["loss"]), name
    assert (tmp_path / "resnet18" / "report.html").stat().st_size > 0
    print("torchvision report timings (s):", {k: round(v, 1) for k, v in timings.items()},
          "total", round(sum(timings.values()), 1))
