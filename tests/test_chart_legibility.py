"""Charts across depth stay legible however deep the model: every text in them is at least 9 CSS px
when the page is 800 px wide and at least 6 pt in the PDF, for 6 and 300 layers with long
names. The rendered size is computed from the SVG itself: its width (in pt, the user unit of
matplotlib's SVGs) against the width the page gives it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from nnviz_report.figures.activations import distribution_figure
from nnviz_report.figures.common import depth_labels
from nnviz_report.figures.compare import cka_change_figure, weight_change_figure
from nnviz_report.figures.gradients import gradient_flow_figure
from nnviz_report.figures.slices import cka_figure, separability_figure
from nnviz_report.figures.weights import spectral_depth_figure, weight_distribution_figure
from nnviz_report.report_model import Figure, HistogramData

COLUMN_800_PX = 800 - 2 * 16  # the column at an 800 px viewport: main's padding is 1rem each side there
PDF_TEXT_WIDTH_PT = (210 - 2 * 14) / 25.4 * 72  # A4 less the page's 14 mm side margins
CSS = (Path(__file__).resolve().parents[1] / "templates" / "report.css").read_text(encoding="utf-8")


def print_share(selector: str) -> float:
    """The share of the text width report.css gives a chart in print (its max-width)."""
    return float(re.search(re.escape(selector) + r" \{ max-width: (\d+)%; \}", CSS).group(1)) / 100  # type: ignore[union-attr]


WIDE_PRINT_SHARE, CKA_PRINT_SHARE = print_share("figure.wide img.figure"), print_share("figure.cka img.figure")
PX_PER_PT = 96 / 72


def names_for(count: int) -> list[str]:
    return [f"features.denseblock{i // 50}.denselayer{i % 50}.conv{i % 2 + 1}" for i in range(count)]


def depth_figures(count: int) -> dict[str, Figure]:
    rng = np.random.default_rng(count)
    names = names_for(count)
    values = [float(v) for v in rng.uniform(0.1, 1.0, count)]
    histogram = HistogramData(-100, 0.05, tuple(int(c) for c in rng.integers(0, 50, 200)))
    matrix = np.clip(rng.random((min(count, 40), min(count, 40))), 0, 1)
    return {
        "activation distribution": distribution_figure(names, [histogram] * count, values),
        "gradient flow": gradient_flow_figure(names, values, values, values, low=1e-4, high=1.0),
        "weight distribution": weight_distribution_figure(names, [rng.normal(size=20) for _ in range(count)]),
        "weight spectra": spectral_depth_figure(names, [3.0] * count, values, values),
        "separability": separability_figure(names, values, values, 0.1),
        "cka": cka_figure(names[: min(count, 40)], matrix),
        "compare weight change": weight_change_figure(names, values),
        "compare cka": cka_change_figure(names, values),
    }


def svg_width_pt(figure: Figure) -> float:
    text = figure.data.decode()
    return float(re.search(r'<svg[^>]*\swidth="([\d.]+)pt"', text).group(1))  # type: ignore[union-attr]


def smallest_text_pt(figure: Figure) -> float:
    sizes = [float(s) for s in re.findall(r"font-size:\s*([\d.]+)px", figure.data.decode())]
    sizes += [float(s) for s in re.findall(r"font:\s*(?:[a-z]+\s+)*([\d.]+)px", figure.data.decode())]
    assert sizes, "the chart has text"
    return min(sizes)


@pytest.mark.parametrize("count", [6, 300])
def test_depth_chart_text_is_legible_on_screen_and_paper(count: int) -> None:
    for name, figure in depth_figures(count).items():
        width_pt = svg_width_pt(figure)
        shown_px = min(figure.width or width_pt * PX_PER_PT, width_pt * PX_PER_PT, COLUMN_800_PX)
        screen_px = smallest_text_pt(figure) * shown_px / width_pt
        print_width = PDF_TEXT_WIDTH_PT * (CKA_PRINT_SHARE if name == "cka" else WIDE_PRINT_SHARE)
        paper_pt = smallest_text_pt(figure) * min(1.0, print_width / width_pt)
        assert screen_px >= 9, f"{name}, {count} layers: {screen_px:.1f} px at 800 px"
        assert paper_pt >= 6, f"{name}, {count} layers: {paper_pt:.1f} pt in the PDF"


def test_labels_thin_out_with_depth_and_name_the_step() -> None:
    step, positions, labels = depth_labels(names_for(300), 5.7)
    assert step > 1 and positions == list(range(0, 300, step)) and len(labels) * 10 <= 5.7 * 72
    assert labels[1] == "…" + names_for(300)[step][-23:]  # long names keep their tail, where layers differ
    text = depth_figures(300)["activation distribution"].data.decode()
    assert f"every {step}" in text  # the axis says that not every layer is labelled
    assert depth_labels(names_for(12), 5.7)[0] == 1  # a short model has every layer labelled
