"""Shared figure plumbing: one style, deterministic SVG and PNG bytes."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.category import StrCategoryFormatter
from matplotlib.figure import Figure as MplFigure
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FuncFormatter, NullFormatter
from PIL import Image

from ..report_model import Figure
from .source import MARKED_POINTS, quantise_unit

matplotlib.use("Agg")  # no display is ever needed; pyplot is never used for drawing

INK = "#1d232b"  # a colour no chart uses for data; replaced by currentColor in every SVG
# The chart's own stylesheet: the page's text colours (report.css), for each colour scheme. An SVG
# shown through <img> cannot inherit from the page, but it sees the same prefers-color-scheme.
SVG_THEME = ("<style>svg{color:#1d232a}"
             "@media (prefers-color-scheme: dark){svg{color:#e3e7eb}}</style>")
STYLE: dict[str, Any] = {
    "svg.hashsalt": "nnviz-report",  # fixed ids inside SVGs: the same figure gives the same bytes
    "svg.fonttype": "none",  # text stays text: small files, crisp at any zoom, searchable
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "image.cmap": "viridis",
    # Text, axes, ticks and grid in one ink colour that svg_figure turns into currentColor, and no
    # background: the chart takes the page's text colour and background in light and dark mode.
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "grid.color": INK,
    "figure.facecolor": "none",
    "axes.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.transparent": True,
}
CATEGORICAL = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SEVERITY_COLOURS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828"}

# Charts across depth have a fixed width instead of one that grows with the layer count: a wider
# chart is shrunk to its column, and its labels with it. 7 in is 672 CSS px, so at an 800 px
# viewport (768 px column) it is shown at its natural size, and it fits A4's 7.17 in text width.
DEPTH_WIDTH = 7.0
# 7 pt labels are 9.3 CSS px at natural size and 7 pt in the PDF.
DEPTH_LABEL_PT = 7.0
# Rotated labels stand side by side: each needs about one line height along the axis.
DEPTH_LABEL_PITCH_PT = 10.0
DEPTH_LABEL_CHARS = 24  # longer names keep their tail ("…denselayer16.conv2"), where the layer is told apart


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Our rcParams for the duration of a drawing, the user's own restored afterwards."""
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Control characters (they come from layer names) have no glyph: matplotlib warned about each one
# while measuring text and wrote it into the SVG. Labels show "?" in their place instead.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ufffe\uffff]")


def plain_label(text: str) -> str:
    """``text`` with every control character (newline excepted) replaced by "?"."""
    return _CONTROL.sub("?", text)


def _plain_texts(fig: MplFigure) -> None:
    """plain_label on every text of a figure, tick labels included (those are made from the
    axis formatter's strings at draw time, so the formatter's strings are replaced too)."""
    for artist in fig.findobj(Text):
        text = artist.get_text()
        if _CONTROL.search(text):
            artist.set_text(plain_label(text))
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            formatter = axis.get_major_formatter()
            if isinstance(formatter, FixedFormatter):
                formatter.seq = [plain_label(str(label)) for label in formatter.seq]
            elif isinstance(formatter, FuncFormatter | StrCategoryFormatter):
                # FuncFormatter: what set_ticks(ticks, labels) makes; StrCategoryFormatter: bars over names.
                axis.set_major_formatter(FuncFormatter(_plain_formatter(formatter)))


def _plain_formatter(formatter: Callable[[Any, Any], Any]) -> Callable[[Any, Any], str]:
    return lambda x, pos: plain_label(str(formatter(x, pos)))


def depth_labels(names: list[str], axis_inches: float) -> tuple[int, list[int], list[str]]:
    """Which layers a depth axis of ``axis_inches`` can label legibly: every ``step``-th one,
    first included. Returns the step, the labelled positions and their (shortened) labels."""
    capacity = max(1, int(axis_inches * 72 / DEPTH_LABEL_PITCH_PT))
    step = max(1, -(-len(names) // capacity))
    positions = list(range(0, len(names), step))
    labels = [names[i] if len(names[i]) <= DEPTH_LABEL_CHARS else "…" + names[i][-(DEPTH_LABEL_CHARS - 1):]
              for i in positions]
    return step, positions, labels


def depth_axis(ax: Axes, names: list[str], *, axis_inches: float = DEPTH_WIDTH - 1.3,
               pad: float = 0.5) -> None:
    """Layer names along the x axis, rotated, at a size that stays legible: when they do not all
    fit, every k-th layer is labelled (with a minor tick at each layer, up to MARKED_POINTS
    layers) and the axis says so."""
    step, positions, labels = depth_labels(drawable_names(names), axis_inches)
    ax.set_xticks(positions, labels, rotation=90, fontsize=DEPTH_LABEL_PT)
    if step > 1:
        if len(names) <= MARKED_POINTS:
            ax.set_xticks(np.arange(len(names)), minor=True)
        ax.set_xlabel(f"layer, input to output (every {ordinal(step)} of {len(names)} labelled)",
                      fontsize=DEPTH_LABEL_PT)
    ax.set_xlim(-pad, max(len(names), 1) - 1 + pad)  # no layer (a TorchScript model): an empty axis


def line_markers(values: Sequence[float] | np.ndarray, marker: str) -> dict[str, Any]:
    """``marker`` and ``markevery`` for a line of ``values``: every point marked when they are few
    (MARKED_POINTS); otherwise only the points no line segment reaches (a finite value between
    missing ones), which would vanish without their marker, and no marker at all, in the legend
    too, when there is no such point."""
    values = np.asarray(values, dtype=float)
    if values.size <= MARKED_POINTS:
        return {"marker": marker}
    finite = np.isfinite(values)
    before = np.concatenate([[False], finite[:-1]])
    after = np.concatenate([finite[1:], [False]])
    isolated = finite & ~before & ~after
    return {"marker": marker, "markevery": isolated} if isolated.any() else {"marker": ""}


def plain_log_labels(ax: Axes) -> None:
    """Tick labels of a log or symlog y axis as plain numbers ("0.01", "1e-05"): matplotlib's
    10^n sets the exponent at 70 % of the label size, below what stays legible on paper."""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}".replace("-", "−")))
    ax.yaxis.set_minor_formatter(NullFormatter())


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def new_figure(width: float, height: float) -> MplFigure:
    return MplFigure(figsize=(width, height), layout="constrained")


def svg_figure(fig: MplFigure, name: str, alt: str, *, width: int | None = None,
               raster_dpi: int | None = None) -> Figure:
    """``raster_dpi``: the resolution of the artists drawn as embedded images (``set_rasterized``),
    by default the figure's."""
    buffer = io.StringIO()
    _plain_texts(fig)
    with style():
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, dpi=raster_dpi or "figure")
    text = buffer.getvalue()
    # The XML prolog and DOCTYPE are noise inside a data: URI and an HTML page alike.
    text = text[text.index("<svg") :]
    # matplotlib writes label text as given; a control character from a layer name would make
    # the SVG invalid XML, and the browser would then show no figure at all.
    text = _XML_INVALID.sub("?", text)
    text = without_bare_groups(text.replace(INK, "currentColor"))
    opening = text.index(">") + 1
    text = text[:opening] + SVG_THEME + text[opening:]
    return Figure(name, "image/svg+xml", text.encode("utf-8"), alt, width)


_GROUP_TAG = re.compile(r"<g\b[^>]*>|</g>")
_ID_ONLY_GROUP = re.compile(r'<g id="([^"]*)"\s*/?>')
_ID_REFERENCE = re.compile(r'(?:href="#|url\(#)([^")]+)')
_SPACE = re.compile(r"\s*")


def without_bare_groups(svg: str) -> str:
    """``svg`` without the groups that carry nothing but an id. matplotlib wraps every artist in
    one: half the elements of a chart, and WeasyPrint walks each element in Python when it draws
    the PDF (resnet18's ten charts: 4 190 elements, 2 182 of them groups). Such a group changes
    nothing drawn, so it goes, its content staying in place, unless something refers to its id
    or it holds a tooltip (a <title> first); an empty one (``<g id="…"/>``) goes whole."""
    referenced = set(_ID_REFERENCE.findall(svg))
    kept: list[str] = []
    closing_kept: list[bool] = []  # per open group: whether its </g> stays
    position = 0
    for match in _GROUP_TAG.finditer(svg):
        kept.append(svg[position:match.start()])
        position = match.end()
        tag = match.group(0)
        if tag == "</g>":
            if closing_kept.pop():
                kept.append(tag)
            continue
        bare = _ID_ONLY_GROUP.fullmatch(tag)
        removable = bare is not None and bare.group(1) not in referenced
        if tag.endswith("/>"):  # an empty group: nothing inside, no </g> to come
            if not removable:
                kept.append(tag)
            continue
        removable = removable and not svg.startswith("<title", _SPACE.match(svg, position).end())  # type: ignore[union-attr]
        closing_kept.append(not removable)
        if not removable:
            kept.append(tag)
    kept.append(svg[position:])
    return "".join(kept)


def matrix_cells(ax: Axes, matrix: np.ndarray, *, cmap: str, vmin: float, vmax: float, colour_label: str,
                 shrink: float = 1.0, annotate: str | None = None, annotate_pt: float = 7.0,
                 cell_lines: bool = False) -> Any:
    """Cell (i, j) of ``matrix`` as the square from (j, i) to (j + 1, i + 1), row 0 at the top, with a
    colour bar: the geometry of seaborn's heatmap, drawn by matplotlib alone, so that a report does
    not import seaborn (with pandas and scipy.stats, about a second) for its two heatmaps.
    ``annotate``: the format of the value written in each cell, dark on light cells, white on dark
    ones (by the cell colour's relative luminance, as seaborn chooses). Returns the cells' mesh."""
    rows, columns = matrix.shape
    mesh = ax.pcolormesh(matrix, cmap=cmap, vmin=vmin, vmax=vmax, edgecolors="white" if cell_lines else "face",
                         linewidth=0.5 if cell_lines else 0.0)
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    for spine in ax.spines.values():
        spine.set_visible(False)
    if annotate is not None:
        rgb = np.asarray(mesh.cmap(mesh.norm(np.asarray(matrix, dtype=float))))[..., :3]
        linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        luminance = linear @ np.array([0.2126, 0.7152, 0.0722])
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j + 0.5, i + 0.5, format(value, annotate), ha="center", va="center", fontsize=annotate_pt,
                    color="#262626" if luminance[i, j] > 0.408 else "#ffffff")
    bar = ax.figure.colorbar(mesh, ax=ax, shrink=shrink)
    bar.set_label(colour_label)
    bar.outline.set_linewidth(0)
    return mesh


def drawable_names(names: list[str]) -> list[str]:
    """Names as FreeType can draw them: a lone surrogate (a non-UTF-8 byte in a module name, as
    Python decodes it) written out as ``\\udcff``, as every other output writes it."""
    return [n.encode("utf-8", "backslashreplace").decode("utf-8") for n in names]


def png_figure(pixels: np.ndarray, name: str, alt: str, *, scale: int = 1, width: int | None = None) -> Figure:
    """uint8 (H, W, 3) pixels, or (H, W, 4) with alpha, enlarged by ``scale`` with
    nearest-neighbour so pixels stay crisp."""
    image = _exact_palette_image(np.ascontiguousarray(pixels))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return Figure(name, "image/png", buffer.getvalue(), alt, width or image.width)


def _exact_palette_image(pixels: np.ndarray) -> Image.Image:
    """A palette PNG when the image has at most 256 colours (colour-mapped grids always do):
    pixel-for-pixel identical, and two to three times smaller than RGB. Transparent pixels
    share one palette entry."""
    channels = pixels.shape[2]
    flat = pixels.reshape(-1, channels).copy()
    if channels == 4:
        flat[flat[:, 3] == 0] = 0
    colours, index = _unique_rows(flat)
    if len(colours) > 256:
        return Image.fromarray(pixels, mode="RGBA" if channels == 4 else "RGB")
    image = Image.fromarray(index.reshape(pixels.shape[:2]).astype(np.uint8), mode="P")
    image.putpalette(colours[:, :3].astype(np.uint8).reshape(-1).tolist())
    if channels == 4:
        image.info["transparency"] = bytes(colours[:, 3].astype(np.uint8).tolist())
    return image


def _unique_rows(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(flat, axis=0, return_inverse=True)`` for uint8 rows of up to 4 channels, about
    ten times faster: each row packed big-endian into one uint32 sorts exactly as the rows do
    byte by byte, so colours and indices come out the same."""
    channels = flat.shape[1]
    keys = np.zeros(len(flat), dtype=np.uint32)
    for channel in range(channels):
        keys |= flat[:, channel].astype(np.uint32) << np.uint32(8 * (channels - 1 - channel))
    unique_keys, index = np.unique(keys, return_inverse=True)
    shifts = np.array([8 * (channels - 1 - c) for c in range(channels)], dtype=np.uint32)
    colours = ((unique_keys[:, None] >> shifts) & np.uint32(0xFF)).astype(flat.dtype)
    return colours, index.reshape(-1)


def colourise(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Values in [0, 1] → uint8 RGB through a perceptually uniform colour map. NaN (from a model
    with NaN weights) is drawn as the low end instead of indexing garbage."""
    return colour_levels(quantise_unit(values), cmap)


def colour_levels(levels: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """uint8 levels 0–255 → uint8 RGB through the colour map's 256 colours."""
    lut = (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    return lut[np.asarray(levels, dtype=np.int64)]


def tile(images: list[np.ndarray], columns: int, gap: int = 1) -> np.ndarray:
    """Equal-sized (h, w, 3) images in a grid with ``gap`` pixels between them, as (H, W, 4):
    the gaps and empty cells are transparent, so the grid sits on the page's own background
    in light and dark mode alike."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // columns)
    canvas = np.zeros((rows * (h + gap) - gap, columns * (w + gap) - gap, 4), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w, :3] = img
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w, 3] = 255
    return canvas


def filter_mosaic(filters: np.ndarray, name: str, alt: str) -> Figure:
    """(out, 3, k, k) filters as RGB tiles; grey is zero, and one symmetric scale for all
    filters keeps their strengths comparable."""
    return tile_mosaic(filter_tiles(filters), name, alt)


def filter_tiles(filters: np.ndarray) -> np.ndarray:
    """(out, 3, k, k) filters → uint8 (out, k, k, 3) RGB tiles on one symmetric scale."""
    finite = np.abs(filters[np.isfinite(filters)])
    limit = float(finite.max()) if finite.size else 0.0
    limit = limit or 1.0
    tiles = [np.transpose(0.5 + 0.5 * f / limit, (1, 2, 0)) for f in filters]
    # NaN or infinite weights (a broken checkpoint, reported as a finding) are drawn grey, as zero.
    return np.stack([(np.nan_to_num(np.clip(t, 0, 1), nan=0.5) * 255).round().astype(np.uint8) for t in tiles])


def tile_mosaic(tiles: np.ndarray, name: str, alt: str) -> Figure:
    """uint8 (out, k, k, 3) tiles enlarged to about 24 px each, 16 to a row."""
    pixels = list(tiles)
    k = tiles.shape[-2]
    scale = max(1, 24 // k)
    enlarged = [np.kron(p, np.ones((scale, scale, 1), dtype=np.uint8)) for p in pixels]
    mosaic = tile(enlarged, columns=min(16, len(pixels)), gap=2)
    return png_figure(mosaic, name, alt)


def image_pixels(image_chw: np.ndarray) -> np.ndarray:
    """uint8 (3, H, W) → (H, W, 3)."""
    return np.ascontiguousarray(np.transpose(image_chw, (1, 2, 0)))
