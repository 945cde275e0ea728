"""Figure plumbing: pixel-exact PNGs, deterministic SVGs, and the quantiles the fan chart reads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nnviz_report.figures.common import (
    _unique_rows,
    colourise,
    filter_mosaic,
    new_figure,
    png_figure,
    style,
    svg_figure,
    tile,
)
from nnviz_report.stats.moments import RunningMoments


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.parametrize("colours", ["mapped", "photo"])
def test_png_is_pixel_exact(colours: str) -> None:
    rng = np.random.default_rng(0)
    pixels = (
        colourise(rng.random((20, 30))) if colours == "mapped" else rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    )
    figure = png_figure(pixels, "x", "alt", scale=3)
    np.testing.assert_array_equal(decode(figure.data), np.kron(pixels, np.ones((3, 3, 1), dtype=np.uint8)))
    assert figure.width == 90


@pytest.mark.parametrize("channels", [3, 4])
def test_palette_colours_and_indices_equal_numpys_unique_rows(channels: int) -> None:
    """The palette PNG's packed-key shortcut gives np.unique(axis=0)'s colours, order and indices."""
    rng = np.random.default_rng(channels)
    flat = rng.integers(0, 256, (3000, channels), dtype=np.uint8)
    flat[::2] = flat[rng.integers(0, 40, 1500)]  # repeated colours, as in a colour-mapped grid
    flat[::7, 0] = 255  # high bytes: a signed or little-endian packing would sort these first
    colours, index = _unique_rows(flat)
    expected_colours, expected_index = np.unique(flat, axis=0, return_inverse=True)
    assert colours.dtype == np.uint8
    np.testing.assert_array_equal(colours, expected_colours)
    np.testing.assert_array_equal(index, expected_index.reshape(-1))


def test_svg_bytes_are_deterministic() -> None:
    def draw() -> bytes:
        fig = new_figure(3, 2)
        fig.add_subplot().plot([0, 1, 2], [1, 0, 2], label="<layer & co>")
        return svg_figure(fig, "f", "alt").data

    first, second = draw(), draw()
    assert first == second and first.startswith(b"<svg")
    assert b"<layer" not in first  # text from names is escaped inside the SVG


def test_filter_mosaic_draws_zero_as_grey() -> None:
    filters = np.zeros((2, 3, 3, 3), dtype=np.float32)
    filters[0, 0, 0, 0] = 1.0
    pixels = decode(filter_mosaic(filters, "m", "alt").data)
    assert tuple(pixels[-1, -1]) == (128, 128, 128)  # the all-zero filter in the corner


def test_histogram_quantiles_within_one_bin_of_numpy() -> None:
    values = np.random.default_rng(1).normal(size=50_000).astype(np.float32)
    import torch

    acc = RunningMoments()
    acc.update(torch.from_numpy(values))
    hist = acc.result().histogram
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        assert abs(hist.quantile(q) - np.quantile(values, q)) <= hist.width


def test_control_characters_in_labels_draw_as_question_marks_without_warnings() -> None:
    """Layer names can hold control characters; matplotlib has no glyph for them and warned once
    per character while measuring (the tick labels of set_ticks and of seaborn's heatmap alike)."""
    import warnings

    from nnviz_report.figures.slices import cka_figure, separability_figure

    names = ["body.a\x1bb", "body.c\x00d\x07", "fc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        line = separability_figure(names, [0.1, 0.2, 0.3], [1.0, 2.0, 3.0], 0.1)
        heat = cka_figure(names, np.eye(3))
    for figure in (line, heat):
        text = figure.data.decode("utf-8")
        assert "body.a?b" in text and "body.c?d?" in text
        assert not any(c in text for c in "\x00\x07\x1b")


def test_nan_weights_and_saliency_draw_without_an_invalid_cast() -> None:
    import warnings

    from nnviz_report.figures.saliency import overlay_figure

    filters = np.ones((2, 3, 3, 3))
    filters[0, 0, 0, 0] = np.nan
    heat = np.full((32, 32), 0.5)
    heat[0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mosaic = decode(filter_mosaic(filters, "f", "alt").data)
        overlay = decode(overlay_figure(np.zeros((32, 32, 3), dtype=np.uint8), heat, "s", "alt").data)
    assert tuple(mosaic[0, 0]) == (128, 255, 255)  # NaN drawn grey (zero); the finite weights keep their scale
    cold = heat.copy()
    cold[0, 0] = 0.0
    expected = decode(overlay_figure(np.zeros((32, 32, 3), dtype=np.uint8), cold, "s", "alt").data)
    np.testing.assert_array_equal(overlay, expected)  # NaN heat drawn as cold


def test_tile_gaps_are_transparent_and_tiles_exact() -> None:
    """Grids of feature maps and filters carry no white background of their own (a white slab in
    dark mode): gaps and empty cells are transparent, every tile pixel is kept exactly."""
    rng = np.random.default_rng(2)
    tiles = [colourise(rng.random((4, 5))) for _ in range(3)]
    figure = png_figure(tile(tiles, columns=2, gap=2), "t", "alt")
    rgba = np.asarray(Image.open(io.BytesIO(figure.data)).convert("RGBA"))
    assert rgba.shape == (10, 12, 4)
    np.testing.assert_array_equal(rgba[:4, :5, :3], tiles[0])
    np.testing.assert_array_equal(rgba[6:, :5, :3], tiles[2])
    assert (rgba[:4, :5, 3] == 255).all() and (rgba[6:, 7:, 3] == 255).sum() == 0  # the empty cell
    assert (rgba[:, 5:7, 3] == 0).all() and (rgba[4:6, :, 3] == 0).all()  # the gaps


def test_svg_takes_the_page_colours() -> None:
    """Chart text and axes are drawn in currentColor, set by the SVG's own light/dark stylesheet,
    and the background is transparent: no white slab in dark mode."""
    with style():
        fig = new_figure(3, 2)
        ax = fig.add_subplot()
        ax.plot([0, 1], [1, 2])
        ax.set_xlabel("depth")
        text = svg_figure(fig, "f", "alt").data.decode()
    assert "prefers-color-scheme: dark" in text and "currentColor" in text
    assert "#1d232b" not in text and "#ffffff" not in text.lower()


def test_markers_only_where_a_line_does_not_reach_on_deep_charts() -> None:
    """Past MARKED_POINTS points a marker per point only thickens the line and costs the PDF one
    drawn element each: then only isolated points (between missing ones) keep theirs."""
    from nnviz_report.figures.common import MARKED_POINTS, line_markers

    assert line_markers([1.0, 2.0, float("nan")], "o") == {"marker": "o"}  # few points: every marker
    deep = np.arange(MARKED_POINTS + 10, dtype=float)
    assert line_markers(deep, "o") == {"marker": ""}  # a continuous deep line: none, in the legend too
    deep[[5, 7, 8, 20]] = np.nan  # 6 is alone between two gaps; 19 and 21 are line ends
    chosen = line_markers(deep, "o")
    assert chosen["marker"] == "o" and np.flatnonzero(chosen["markevery"]).tolist() == [6]


def test_deep_depth_charts_draw_no_element_per_point_and_rasterise_their_violins() -> None:
    from nnviz_report.figures.gradients import gradient_flow_figure
    from nnviz_report.figures.weights import weight_distribution_figure

    def uses(n: int) -> int:
        names = [f"layer{i}.weight" for i in range(n)]
        values = [1e-3 * (1 + i % 7) for i in range(n)]
        figure = gradient_flow_figure(names, values, values, values, low=1e-5, high=1e-1)
        return figure.data.count(b"<use ")

    assert uses(20) >= 3 * 20  # three marked lines, and a tick per layer
    assert uses(200) < 150  # no markers, no minor tick per layer: the ~40 labelled ticks, y ticks, legend (was 880)

    rng = np.random.default_rng(0)
    for n, raster in ((20, False), (120, True)):
        figure = weight_distribution_figure([f"w{i}" for i in range(n)], [rng.normal(size=300) for _ in range(n)])
        assert (b"<image" in figure.data) is raster
        assert figure.data.count(b"<text") > 5  # labels stay text either way


# ---- bare groups: matplotlib's id-only <g> wrappers, removed before the SVG is stored ---------------

def _drawn_elements(svg: str) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    """Every element other than a group, in document order, with the attributes it inherits from
    its enclosing groups (ids left out: they draw nothing) and its own text: what a renderer draws."""
    import xml.etree.ElementTree as ET

    drawn = []

    def walk(node: ET.Element, inherited: tuple[tuple[str, str], ...]) -> None:
        tag = node.tag.split("}")[-1]
        own = tuple(sorted((k, v) for k, v in node.attrib.items() if k != "id" or tag != "g"))
        if tag == "g":
            inherited = (*inherited, *own)
        else:
            drawn.append((tag, (*inherited, *own), (node.text or "").strip()))
        for child in node:
            walk(child, inherited)

    walk(ET.fromstring(svg), ())
    return drawn


def test_bare_groups_go_and_nothing_drawn_changes() -> None:
    from matplotlib.figure import Figure as MplFigure

    from nnviz_report.figures.common import style, without_bare_groups

    fig = MplFigure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [1, 0, 2], marker="o", label="a line")  # markers: <use> of a <defs> path
    ax.bar([0, 1], [1, 2], hatch="//")  # hatches: a <pattern> referred to by url(#…)
    ax.legend()
    ax.set_title("title")
    buffer = io.StringIO()
    with style():
        fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    flat = without_bare_groups(svg)

    assert _drawn_elements(flat) == _drawn_elements(svg)
    assert flat.count("<g") < svg.count("<g") / 3
    assert 'id="' in flat  # the definitions that markers and hatches refer to stay


@pytest.mark.parametrize(("svg", "expected"), [
    ('<svg><g id="a"><path d="M0"/></g></svg>', '<svg><path d="M0"/></svg>'),
    ('<svg><g id="a"/><g style="x"/></svg>', '<svg><g style="x"/></svg>'),  # an empty bare group goes whole
    ('<svg><g id="t"> <title>tip</title><path/></g></svg>', '<svg><g id="t"> <title>tip</title><path/></g></svg>'),
    ('<svg><defs><g id="m"><path/></g></defs><use xlink:href="#m"/></svg>',
     '<svg><defs><g id="m"><path/></g></defs><use xlink:href="#m"/></svg>'),  # referred to: kept
    ('<svg><g id="c" clip-path="url(#p)"><g id="d"><path/></g></g></svg>',
     '<svg><g id="c" clip-path="url(#p)"><path/></g></svg>'),
])
def test_bare_groups_cases(svg: str, expected: str) -> None:
    from nnviz_report.figures.common import without_bare_groups

    assert without_bare_groups(svg) == expected


# ---- violins: seaborn's kernel density estimate, computed with numpy ---------------------------------

def test_violin_density_against_scipy() -> None:
    from scipy.stats import gaussian_kde

    from nnviz_report.figures.weights import VIOLIN_BANDWIDTH, VIOLIN_GRID, violin_density

    rng = np.random.default_rng(3)
    for values in (rng.normal(0, 0.05, 2000), rng.standard_t(3, 400), np.array([0.0, 1.0]),
                   np.concatenate([rng.normal(-1, 0.1, 300), rng.normal(2, 0.3, 100), [np.nan, np.inf]])):
        finite = values[np.isfinite(values)]
        kde = gaussian_kde(finite, bw_method="scott")
        kde.set_bandwidth(kde.factor * VIOLIN_BANDWIDTH)  # as seaborn's bw_adjust does
        grid = np.linspace(finite.min(), finite.max(), VIOLIN_GRID)
        expected = kde(grid) / kde(grid).max()
        got_grid, got = violin_density(values)
        np.testing.assert_allclose(got_grid, grid)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert violin_density(np.full(10, 0.25)) is None
    assert violin_density(np.array([1.0, np.nan])) is None


def test_violins_drawn_with_their_quartiles() -> None:
    from matplotlib.figure import Figure as MplFigure

    from nnviz_report.figures.weights import VIOLIN_WIDTH, draw_violins

    rng = np.random.default_rng(0)
    values = [rng.normal(0, 1, 500), np.zeros(20), rng.uniform(-2, 3, 300)]
    ax = MplFigure().add_subplot()
    draw_violins(ax, values, linewidth=0.6)
    bodies = ax.collections
    assert len(bodies) == 2  # the constant tensor is a line, not a body
    for body, position, array in zip(bodies, (0, 2), (values[0], values[2]), strict=True):
        vertices = body.get_paths()[0].vertices
        assert vertices[:, 1].min() == pytest.approx(array.min()) and vertices[:, 1].max() == pytest.approx(array.max())
        assert vertices[:, 0].max() == pytest.approx(position + VIOLIN_WIDTH / 2, abs=1e-3)  # widest at the mode
    levels = sorted(line.get_ydata()[0] for line in ax.lines if line.get_ydata()[0] != 0.0)
    expected = sorted([*np.percentile(values[0], [25, 50, 75]), *np.percentile(values[2], [25, 50, 75])])
    np.testing.assert_allclose(levels, expected)
    flat = [line for line in ax.lines if line.get_ydata()[0] == 0.0]
    assert len(flat) == 1 and list(flat[0].get_xdata()) == [1 - VIOLIN_WIDTH / 2, 1 + VIOLIN_WIDTH / 2]
