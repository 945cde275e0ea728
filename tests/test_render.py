"""nnviz-report render: a report rebuilt from its report.json alone has the bytes of the one
written with that JSON, without importing torch; older and damaged archives are refused in one
line with exit 2, and nothing is written."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnviz_report.cli import main
from nnviz_report.errors import SchemaError
from nnviz_report.figures.source import (
    MAX_SOURCE_PIXELS,
    VALUE_LEVELS,
    decode_pixels,
    decode_values,
    encode_pixels,
    encode_values,
)
from nnviz_report.report_model import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.parent for p in (ROOT / "example_reports").glob("*/report.json"))
# What render may load: nothing that computes (torch) or loads data (torchvision).
FORBIDDEN_MODULES = ("torch", "torchvision")


@pytest.fixture(scope="module")
def lenet_report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("render") / "report"
    code = main(["report", "--quiet", "--model", "lenet", "--data", str(image_folder), "--per-class", "2",
                 "--format", "html,pdf,json,md", "-o", str(out)])
    assert code == 0
    return out


def render_in_subprocess(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``main(['render', *args])`` in a fresh interpreter that then asserts no torch was imported."""
    script = (
        "import sys\n"
        "from nnviz_report.cli import main\n"
        f"code = main(['render', *{args!r}])\n"
        f"loaded = [m for m in {FORBIDDEN_MODULES!r} if m in sys.modules]\n"
        "assert not loaded, f'render imported {loaded}'\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False,
                          timeout=300)


def test_render_reproduces_the_report_bytes_without_torch(lenet_report: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    done = render_in_subprocess([str(lenet_report / "report.json"), "-o", str(out), "--format", "html,pdf,json,md",
                                 "--quiet"])
    assert done.returncode == 0, done.stderr
    for name in ("report.html", "report.md", "report.json", "report.pdf"):
        assert (out / name).read_bytes() == (lenet_report / name).read_bytes(), name


def test_every_figure_is_redrawn_identically(lenet_report: Path) -> None:
    """Figure by figure, so that a difference names the figure (the byte test above only says the page differs)."""
    from nnviz_report.figures.draw import draw_figures
    from nnviz_report.report_json import from_jsonable
    from nnviz_report.report_model import Figure, Report, iter_figures

    record = json.loads((lenet_report / "report.json").read_text(encoding="utf-8"))
    redrawn = draw_figures(from_jsonable(Report, record))
    html = (lenet_report / "report.html").read_text(encoding="utf-8")
    figures = iter_figures(redrawn)
    assert len(figures) > 30 and all(f.data for f in figures)
    def shown(figure: Figure) -> str:
        return figure.data.decode("utf-8") if figure.inline else base64.b64encode(figure.data).decode("ascii")

    missing = [f.name for f in figures if shown(f) not in html]
    assert not missing


def test_render_writes_next_to_the_archive_by_default(lenet_report: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "releases" / "1.0"
    archive.mkdir(parents=True)
    (archive / "report.json").write_bytes((lenet_report / "report.json").read_bytes())
    assert main(["render", "--quiet", str(archive), "--format", "html,md"]) == 0
    assert capsys.readouterr().err == ""  # report.json is the source, not a file left from an earlier run
    assert sorted(p.name for p in archive.iterdir()) == ["report.html", "report.json", "report.md"]
    assert (archive / "report.html").read_bytes() == (lenet_report / "report.html").read_bytes()


@pytest.fixture(scope="module")
def compare_report(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A comparison whose predictions changed: tiny_cnn after 1 and after 6 SGD steps."""
    import torch

    from nnviz_report.data import load_sample, normalise
    from tests.fixtures.models import tiny_cnn

    folder = tmp_path_factory.mktemp("render-compare")
    sample = load_sample(str(image_folder), per_class=3)
    x, y = normalise(sample.images), sample.labels
    torch.manual_seed(0)
    model = tiny_cnn()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(6):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
        if step == 0:
            torch.save(model.state_dict(), folder / "base.pt")
    torch.save(model.state_dict(), folder / "head.pt")
    out = folder / "compare"
    assert main(["compare", "--quiet", "--model", "tests.fixtures.models:tiny_cnn", "--data", str(image_folder),
                 "--per-class", "3", "--base-weights", str(folder / "base.pt"), "--head-weights",
                 str(folder / "head.pt"), "--format", "html,json,md", "-o", str(out)]) == 0
    return out


def test_render_reproduces_a_comparison(compare_report: Path, tmp_path: Path) -> None:
    """Compare's own figures (weight change, CKA per layer, changed predictions) come back too."""
    record = json.loads((compare_report / "report.json").read_text(encoding="utf-8"))
    assert record["compare"]["changed"] and record["compare"]["weight_figure"] and record["compare"]["cka_figure"]
    out = tmp_path / "rendered"
    assert main(["render", "--quiet", str(compare_report / "report.json"), "-o", str(out), "--format", "html,md"]) == 0
    for name in ("report.html", "report.md"):
        assert (out / name).read_bytes() == (compare_report / name).read_bytes(), name


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_render_reproduces_each_example(example: Path, tmp_path: Path) -> None:
    """Every example's HTML and Markdown, byte for byte, from its report.json alone."""
    out = tmp_path / example.name
    assert main(["render", "--quiet", str(example / "report.json"), "-o", str(out), "--format", "html,md"]) == 0
    assert (out / "report.html").read_bytes() == (example / "report.html").read_bytes()
    assert (out / "report.md").read_bytes() == (example / "report.md").read_bytes()


def _damaged(lenet_report: Path, tmp_path: Path, change) -> Path:  # noqa: ANN001
    record = json.loads((lenet_report / "report.json").read_text(encoding="utf-8"))
    change(record)
    path = tmp_path / "archive" / "report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def _set(path: str, value: object):  # noqa: ANN202
    def change(record: dict) -> None:
        *parents, last = path.split(".")
        node = record
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value
    return change


@pytest.mark.parametrize(("change", "expected"), [
    (_set("schema_version", "1.1"), "was written by schema 1.1, which does not carry figure sources; re-run "
                                    "nnviz-report report to re-create it"),
    (_set("schema_version", "1.0"), "was written by schema 1.0, which does not carry figure sources"),
    (_set("schema_version", "9.9"), "has report schema version '9.9', which nnviz_report"),
    (_set("performance.accuracy", "high"), "performance.accuracy must be a number, but it is the text 'high'"),
    (_set("showcase.0.pixels", 5), "showcase[0].pixels must be text, but it is int 5"),
    (_set("showcase.1.pixels", "bm90IGEgcG5n"), "showcase[1].pixels is not a base64 PNG image"),
    (_set("showcase.1.pixels", "%%%"), "showcase[1].pixels is not a base64 PNG image"),
    (_set("activations.grids.0.levels.0", ""), "activations.grids[0].levels[0] is empty"),
    (_set("weights.distribution_values.0.data", "eJw="), "weights.distribution_values[0] does not hold"),
    (_set("gradients.ratio_band", None), "gradients.ratio_band is missing"),
    (_set("saliency.samples.0.slot", 40), "saliency.samples[0].slot is 40, but there are 4 showcase samples"),
    (_set("showcase.0.label", 12), "showcase[0].label is 12, not a class number below 10"),
    (_set("slices.cka.0", [0.5]), "its figures cannot be drawn (ValueError: "),
])
def test_damaged_or_older_archive_exits_2_with_one_line(lenet_report: Path, tmp_path: Path, capsys, change,
                                                         expected: str) -> None:
    path = _damaged(lenet_report, tmp_path, change)
    out = tmp_path / "out"
    assert main(["render", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], err
    assert not out.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def as_schema_1_1(record: dict) -> dict:
    """``record`` without the figure sources schema 1.2 added, as a 1.1 archive is."""
    record["schema_version"] = "1.1"
    for sample in record["showcase"]:
        del sample["pixels"]
    for grid in record["activations"]["grids"]:
        del grid["levels"]
    for key in ("ratio_band", "first_layer_tiles"):
        del record["gradients"][key]
    for key in ("distribution_values", "first_layer_tiles"):
        del record["weights"][key]
    del record["slices"]["strip_channels"]
    for strip in record["slices"]["strips"]:
        del strip["levels"]
    for sample in record["saliency"]["samples"]:
        for m in sample["maps"]:
            del m["heat"]
    for thumbnail in record["robustness"]["thumbnails"]:
        del thumbnail["pixels"]
    return record


def test_archives_of_schema_1_1_still_read_for_compare(lenet_report: Path, image_folder: Path, tmp_path: Path,
                                                      capsys) -> None:
    """Compare and the typed reader need no figure sources: a 1.1 archive reads, render refuses it."""
    from nnviz_report.report_json import from_jsonable
    from nnviz_report.report_model import Report

    record = as_schema_1_1(json.loads((lenet_report / "report.json").read_text(encoding="utf-8")))
    assert from_jsonable(Report, record).showcase[0].pixels == ""
    old = tmp_path / "old" / "report.json"
    old.parent.mkdir()
    old.write_text(json.dumps(record), encoding="utf-8")
    assert main(["compare", "--quiet", "--model", "lenet", "--data", str(image_folder), "--per-class", "2",
                 "--base-json", str(old), "--format", "json", "-o", str(tmp_path / "compare")]) == 0
    compared = json.loads((tmp_path / "compare" / "report.json").read_text(encoding="utf-8"))
    assert compared["compare"]["base"]["schema_version"] == "1.1" and compared["compare"]["accuracy"]["delta"] == 0
    assert main(["render", str(old), "-o", str(tmp_path / "rendered")]) == 2
    assert "was written by schema 1.1, which does not carry figure sources" in capsys.readouterr().err


def test_missing_archive_and_bad_format_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["render", str(tmp_path / "nothing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "nothing.json"), "--format", "docx"]) == 2
    assert "unknown output format 'docx'" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    assert main(["render", str(tmp_path / "report.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_schema_version_is_bumped_for_figure_sources() -> None:
    assert SCHEMA_VERSION == "1.2"
    assert (ROOT / "nnviz_report" / "schema" / f"report-{SCHEMA_VERSION}.schema.json").exists()


# ---- sources --------------------------------------------------------------------------------

def test_pixels_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    for shape, channels in (((32, 32, 3), 3), ((48, 7), 1)):
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.testing.assert_array_equal(decode_pixels(encode_pixels(pixels), "x", channels=channels), pixels)
    with pytest.raises(SchemaError, match="x is a L image where RGB was expected"):
        decode_pixels(encode_pixels(np.zeros((4, 4), dtype=np.uint8)), "x", channels=3)


def test_a_huge_claimed_image_is_refused_before_it_is_decoded() -> None:
    import io

    from PIL import Image

    side = int(MAX_SOURCE_PIXELS ** 0.5) + 1
    buffer = io.BytesIO()
    Image.new("L", (side, side)).save(buffer, format="PNG")
    with pytest.raises(SchemaError, match="at most"):
        decode_pixels(base64.b64encode(buffer.getvalue()).decode(), "x", channels=1)


def test_values_keep_their_multiset_to_half_a_step_of_the_range() -> None:
    values = np.random.default_rng(1).normal(0, 0.1, size=2000)
    values[[3, 10]] = [np.nan, np.inf]
    low, high, count, text = encode_values(values)
    decoded = decode_values(low, high, count, text, "x")
    finite = np.sort(values[np.isfinite(values)])
    assert count == finite.size == 1998
    assert (low, high) == (finite[0], finite[-1])
    assert np.max(np.abs(decoded - finite)) <= (high - low) / VALUE_LEVELS / 2 * 1.0001
    assert np.max(np.abs(decoded - finite)) > (high - low) / VALUE_LEVELS / 4  # quantised, not exact
    constant = encode_values(np.full(10, 0.25))
    np.testing.assert_array_equal(decode_values(*constant, "x"), np.full(10, 0.25))


@pytest.mark.parametrize("spec", [f"tests.fixtures.odd_models:{name}" for name in (
    "no_parameters", "integer_parameter", "token_batch_norm", "css_looking_names", "surrogate_names")]
    + ["tests.fixtures.hostile_models:nan_weights", "tests.fixtures.audit_models:nan_weight_net",
       "tests.fixtures.vit_models:tiny_vit",
       "tests.test_render:rectangular_kernels", "torchscript"])
def test_unusual_models_render_identically(spec: str, image_folder: Path, tmp_path: Path) -> None:
    """Odd names (control characters, lone surrogates, CSS-looking), no parameters, token layouts, a
    vision transformer (patch tokens on their grid, Grad-CAM through a norm), NaN weights (non-finite
    statistics, which report.json records as null) and a TorchScript model (no flow diagram, no
    saliency) come back byte for byte as well."""
    if spec == "torchscript":
        import torch

        from tests.fixtures.models import tiny_cnn

        path = tmp_path / "scripted.pt"
        torch.jit.script(tiny_cnn()).save(str(path))
        spec = f"torchscript:{path}"
    report = tmp_path / "report"
    assert main(["report", "--quiet", "--model", spec, "--data", str(image_folder), "--per-class", "1",
                 "--showcase", "2", "--format", "json,md,html", "-o", str(report)]) == 0
    out = tmp_path / "rendered"
    assert main(["render", "--quiet", str(report / "report.json"), "-o", str(out), "--format", "html,json,md"]) == 0
    for name in ("report.html", "report.json", "report.md"):
        assert (out / name).read_bytes() == (report / name).read_bytes(), name


def rectangular_kernels():  # noqa: ANN201 (torch is imported only where a test builds a model)
    """A first convolution with 3×5 kernels: its filter mosaic is redrawn with the tiles' own height."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 4, (3, 5)), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def test_the_violin_caption_states_the_rounding_report_json_keeps() -> None:
    from nnviz_report.render.html import fmt_int

    html = (ROOT / "example_reports" / "lenet" / "report.html").read_text(encoding="utf-8")
    caption = html[html.index('id="weight-distribution"'):html.index('id="weight-spectra"')]
    assert f"a grid of {fmt_int(VALUE_LEVELS)} equal steps" in caption
    assert f"at most 1/{fmt_int(2 * VALUE_LEVELS)} of that range off" in caption
    assert "non-finite values are left out" in caption
