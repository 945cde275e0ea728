"""Every figure of a report, drawn from the report model alone: the one route from numbers and
recorded sources to figure bytes, taken by the pipeline's section builders and by ``render``.

``draw_figures`` redraws every figure of a report read back from report.json (where figures are
recorded by name only). The section builders call the same per-figure functions below with the
values they put into the report model, so a report rendered from its JSON has the bytes of the
one written with that JSON. Floats that may be non-finite pass through ``_as_json`` first: JSON
writes NaN and ±inf as null, which reads back as NaN (or None), so the pipeline draws NaN too.

Never imports torch: ``render`` must run without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import SchemaError
from ..report_model import (
    ActivationsSection,
    CompareSection,
    CorruptionThumbnail,
    FeatureGrid,
    Figure,
    GradientsSection,
    LayerMeasurements,
    PackedValues,
    ParamMeasurements,
    Performance,
    PredictionChange,
    Report,
    RobustnessSection,
    SaliencySection,
    SlicesSection,
    SummarySection,
    WeightsSection,
)
from .activations import distribution_figure, feature_grid_figure
from .common import png_figure, tile_mosaic
from .compare import cka_change_figure, weight_change_figure
from .gradients import gradient_flow_figure
from .robustness import corruption_accuracy_figure, reliability_figure
from .saliency import KIND_TITLES, overlay_levels_figure
from .slices import cka_figure, separability_figure, strip_figure
from .source import decode_pixels, decode_values
from .summary import confusion_figure, per_class_figure
from .weights import spectral_depth_figure, weight_distribution_figure

SHOWCASE_SCALE = 3
CHANGED_SCALE = 2
THUMBNAIL_SCALE = 3
SMALL_MOSAIC = 320  # a mosaic of a few small filters narrower than this is shown twice as large


def _as_json(value: float | None) -> float:
    """A float as it reads back from report.json: NaN for None and every non-finite value."""
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _optional(value: float | None) -> float | None:
    """An optional float as it reads back from report.json: None for None and non-finite values."""
    return float(value) if value is not None and math.isfinite(value) else None


# ---- per figure ------------------------------------------------------------------------------

def showcase_thumbnail(pixels: np.ndarray, slot: int, class_name: str) -> Figure:
    return png_figure(pixels, f"showcase-{slot}", f"Showcase sample {slot + 1}: a {class_name}",
                      scale=SHOWCASE_SCALE)


def summary_figures(perf: Performance, class_names: tuple[str, ...]) -> SummarySection:
    return SummarySection(
        confusion=confusion_figure(np.array(perf.confusion), class_names),
        per_class=per_class_figure(np.array([_as_json(a) for a in perf.per_class_accuracy]), class_names,
                                   _as_json(perf.accuracy)),
    )


def activation_distribution(layers: Sequence[LayerMeasurements]) -> Figure:
    return distribution_figure([r.name for r in layers], [r.histogram for r in layers],
                               [_as_json(r.mean) for r in layers])


def grid_image(layer: str, anchor: str, shown_channels: int, slot: int, levels: np.ndarray) -> Figure:
    return feature_grid_figure(levels, shown_channels, f"grid-{anchor}-{slot}",
                               f"{layer}: {shown_channels} most active channels for showcase sample {slot + 1}")


def gradient_flow(params: Sequence[ParamMeasurements], band: tuple[float, float]) -> Figure:
    weights = [p for p in params if len(p.shape) > 1]
    return gradient_flow_figure(
        [p.name for p in weights], [_optional(p.ratio) for p in weights], [_as_json(p.mean_abs_grad) for p in weights],
        [_as_json(p.max_abs_grad) for p in weights], low=band[0], high=band[1])


def gradient_mosaic(tiles: np.ndarray, layer: str) -> Figure:
    return tile_mosaic(tiles, "first-layer-gradients",
                       f"Gradients of the {len(tiles)} filters of {layer} as RGB tiles (grey = zero)")


def weight_mosaic(tiles: np.ndarray, layer: str) -> Figure:
    figure = tile_mosaic(tiles, "first-layer-filters",
                         f"The {len(tiles)} filters of {layer} as RGB tiles (grey = zero)")
    if figure.width and figure.width < SMALL_MOSAIC:  # a few small filters: show them larger, crisp
        figure = dataclasses.replace(figure, width=figure.width * 2)
    return figure


def weight_figures(section: WeightsSection, values: Sequence[np.ndarray]) -> tuple[Figure, Figure]:
    """The violins (from ``values``, one array per row) and the spectra across depth."""
    names = [r.name for r in section.rows]
    distribution = weight_distribution_figure(names, list(values))
    depth = spectral_depth_figure(names, [_optional(r.alpha) for r in section.rows],
                                  [_as_json(r.stable_rank) for r in section.rows],
                                  [_as_json(r.spectral_norm) for r in section.rows])
    return distribution, depth


def slice_strip(pixels: np.ndarray, slot: int, layers: Sequence[str], channels: Sequence[int],
                levels: Sequence[np.ndarray]) -> Figure:
    return strip_figure(
        pixels, [(name, c, lv) for name, c, lv in zip(layers, channels, levels, strict=True)], f"slice-{slot}",
        f"Showcase sample {slot + 1} through {len(layers)} layers: where in the image each layer "
        f"responds (mean |activation| over its channels) over the input")


def slices_cka(section: SlicesSection) -> Figure:
    matrix = np.array([[_as_json(v) for v in row] for row in section.cka], dtype=float).reshape(
        len(section.cka), len(section.cka_layers))
    return cka_figure(list(section.cka_layers), matrix)


def slices_separability(section: SlicesSection) -> Figure:
    rows = section.separability
    return separability_figure([s.layer for s in rows], [_optional(s.ncm_accuracy) for s in rows],
                               [_optional(s.fisher_ratio) for s in rows], section.chance)


def saliency_image(pixels: np.ndarray, slot: int, kind: str, levels: np.ndarray) -> Figure:
    return overlay_levels_figure(pixels, levels, f"saliency-{slot}-{kind}",
                                 f"Showcase sample {slot + 1}: {KIND_TITLES[kind]}")


def corruption_thumbnail(pixels: np.ndarray, corruption: str, title: str, severity: int) -> Figure:
    if corruption == "clean":
        return png_figure(pixels, "corruption-clean", "The thumbnail sample without corruption", scale=THUMBNAIL_SCALE)
    return png_figure(pixels, f"corruption-{corruption}",
                      f"The thumbnail sample under {title.lower()} at severity {severity}", scale=THUMBNAIL_SCALE)


def robustness_figures(section: RobustnessSection) -> tuple[Figure, Figure]:
    return (reliability_figure(section.calibration.reliability, section.calibration.ece),
            corruption_accuracy_figure(section.results, section.clean_accuracy))


def changed_thumbnail(pixels: np.ndarray, slot: int, label: str, base: str, head: str) -> Figure:
    """``label``, ``base``, ``head``: the class names of the truth and of both predictions."""
    return png_figure(pixels, f"changed-{slot}", f"A {label} predicted {base} by the base and {head} by the head",
                      scale=CHANGED_SCALE)


def compare_figures(section: CompareSection) -> tuple[Figure | None, Figure | None]:
    weight_rows = [p for p in section.params if len(p.shape) > 1]
    layer_cka = [(row.name, row.cka) for row in section.layers if row.cka is not None]
    weight = weight_change_figure([p.name for p in weight_rows], [_optional(p.relative) for p in weight_rows]) \
        if weight_rows else None
    cka = cka_change_figure([n for n, _ in layer_cka], [c for _, c in layer_cka]) if layer_cka else None
    return weight, cka


def mosaic_tiles(pixels: np.ndarray, shapes: dict[str, tuple[int, ...]], layer: str | None, where: str) -> np.ndarray:
    """Tiles stacked top to bottom, ``(n · kh, kw, 3)``, back to ``(n, kh, kw, 3)``; ``kh`` from
    the layer's weight shape in ``shapes`` (parameter name → shape), square where it is not there."""
    shape = shapes.get(f"{layer}.weight", ())
    kh = int(shape[2]) if len(shape) == 4 else pixels.shape[1]
    if kh < 1 or pixels.shape[0] % kh:
        raise SchemaError(f"report.json: {where} is not a stack of {kh}-pixel-high tiles; the file is damaged")
    return pixels.reshape(-1, kh, pixels.shape[1], 3)


def packed_values(packed: PackedValues, where: str) -> np.ndarray:
    return decode_values(packed.low, packed.high, packed.count, packed.data, where)


# ---- the whole report ------------------------------------------------------------------------

def draw_figures(report: Report) -> Report:
    """``report`` with every figure drawn from the rest of the model (figures present stay
    present, absent ones stay None). A source that is missing or damaged is a one-line
    SchemaError naming its field."""
    class_names = report.sample.class_names
    pixels = [decode_pixels(s.pixels, f"showcase[{i}].pixels", channels=3) for i, s in enumerate(report.showcase)]

    def showcase_pixels(slot: int, where: str) -> np.ndarray:
        if not 0 <= slot < len(pixels):
            raise SchemaError(f"report.json: {where} is {slot}, but there are {len(pixels)} showcase samples")
        return pixels[slot]

    def name_of(index: int, where: str) -> str:
        if not 0 <= index < len(class_names):
            raise SchemaError(f"report.json: {where} is {index}, not a class number below {len(class_names)}")
        return class_names[index]

    showcase = tuple(
        dataclasses.replace(s, thumbnail=showcase_thumbnail(pixels[i], i, name_of(s.label, f"showcase[{i}].label")))
        for i, s in enumerate(report.showcase))
    changes: dict[str, object] = {
        "showcase": showcase,
        "summary": summary_figures(report.performance, class_names),
        "activations": _activations(report.activations),
        "gradients": _gradients(report.gradients),
    }
    if report.weights is not None:
        changes["weights"] = _weights(report.weights)
    if report.slices is not None:
        changes["slices"] = slices_figures(report.slices, showcase_pixels)
    if report.saliency is not None:
        changes["saliency"] = _saliency(report.saliency, showcase_pixels)
    if report.robustness is not None:
        changes["robustness"] = _robustness(report.robustness)
    if report.flow is not None:
        from ..sections.flow import flow_figures  # torch-free at import: extraction is imported where it runs

        diagram, pages = flow_figures(report.flow.graph, report.flow.direction, report.activations.layers,
                                      report.gradients.params)
        changes["flow"] = dataclasses.replace(report.flow, diagram=diagram, print_pages=pages)
    if report.compare is not None:
        changes["compare"] = _compare(report.compare, name_of)
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


def _activations(section: ActivationsSection) -> ActivationsSection:
    grids = []
    for g, grid in enumerate(section.grids):
        grids.append(_grid(grid, f"activations.grids[{g}]"))
    return dataclasses.replace(section, grids=tuple(grids), distribution=activation_distribution(section.layers))


def _grid(grid: FeatureGrid, where: str) -> FeatureGrid:
    if len(grid.levels) != len(grid.images) or grid.shown_channels < 1:
        raise SchemaError(f"report.json: {where}.levels holds {len(grid.levels)} sources for {len(grid.images)} "
                          "images; the file is damaged or was written before schema 1.2")
    images = []
    for s, text in enumerate(grid.levels):
        levels = decode_pixels(text, f"{where}.levels[{s}]", channels=1)
        if levels.shape[0] % grid.shown_channels:
            raise SchemaError(f"report.json: {where}.levels[{s}] does not stack {grid.shown_channels} maps")
        images.append(grid_image(grid.layer, grid.anchor, grid.shown_channels, s, levels))
    return dataclasses.replace(grid, images=tuple(images))


def _gradients(section: GradientsSection) -> GradientsSection:
    if section.ratio_band is None:
        raise SchemaError("report.json: gradients.ratio_band is missing; the file was written before schema 1.2")
    first = section.first_layer
    if first is not None:
        tiles = mosaic_tiles(decode_pixels(section.first_layer_tiles, "gradients.first_layer_tiles", channels=3),
                             {p.name: p.shape for p in section.params}, section.first_layer_name,
                             "gradients.first_layer_tiles")
        first = gradient_mosaic(tiles, section.first_layer_name or "")
    return dataclasses.replace(section, flow=gradient_flow(section.params, section.ratio_band), first_layer=first)


def _weights(section: WeightsSection) -> WeightsSection:
    if len(section.distribution_values) != len(section.rows):
        raise SchemaError(f"report.json: weights.distribution_values holds {len(section.distribution_values)} "
                          f"entries for {len(section.rows)} rows; the file is damaged or was written before 1.2")
    values = [packed_values(p, f"weights.distribution_values[{i}]") for i, p in enumerate(section.distribution_values)]
    distribution, depth = weight_figures(section, values)
    first = section.first_layer
    if first is not None:
        tiles = mosaic_tiles(decode_pixels(section.first_layer_tiles, "weights.first_layer_tiles", channels=3),
                             {r.name: r.shape for r in section.rows}, section.first_layer_name,
                             "weights.first_layer_tiles")
        first = weight_mosaic(tiles, section.first_layer_name or "")
    return dataclasses.replace(section, distribution=distribution, depth=depth, first_layer=first)


PixelsOf = Callable[[int, str], np.ndarray]  # (showcase slot, field path for errors) → its RGB pixels
NameOf = Callable[[int, str], str]  # (class number, field path for errors) → class name


def slices_figures(section: SlicesSection, get: PixelsOf) -> SlicesSection:
    """The strips and charts of ``section`` drawn from its numbers (``get``: a showcase slot's pixels)."""
    strips = []
    for i, strip in enumerate(section.strips):
        where = f"slices.strips[{i}]"
        if not (len(strip.levels) == len(section.strip_layers) == len(section.strip_channels)):
            raise SchemaError(f"report.json: {where}.levels, slices.strip_layers and slices.strip_channels differ "
                              "in length; the file is damaged or was written before schema 1.2")
        levels = [decode_pixels(t, f"{where}.levels[{j}]", channels=1) for j, t in enumerate(strip.levels)]
        image = slice_strip(get(strip.slot, f"{where}.slot"), strip.slot, section.strip_layers,
                            section.strip_channels, levels)
        strips.append(dataclasses.replace(strip, image=image))
    return dataclasses.replace(
        section, strips=tuple(strips),
        cka_figure=slices_cka(section) if section.cka_figure is not None else None,
        separability_figure=slices_separability(section) if section.separability_figure is not None else None)


def _saliency(section: SaliencySection, get: PixelsOf) -> SaliencySection:
    samples = []
    for i, sample in enumerate(section.samples):
        maps = []
        for j, m in enumerate(sample.maps):
            where = f"saliency.samples[{i}].maps[{j}]"
            if m.kind not in KIND_TITLES:
                raise SchemaError(f"report.json: {where}.kind is {m.kind!r}, not one of {', '.join(KIND_TITLES)}")
            image = get(sample.slot, f"saliency.samples[{i}].slot")
            levels = decode_pixels(m.heat, f"{where}.heat", channels=1)
            if levels.shape != image.shape[:2]:
                raise SchemaError(f"report.json: {where}.heat is {levels.shape[0]}×{levels.shape[1]}, not the "
                                  f"image's {image.shape[0]}×{image.shape[1]}")
            maps.append(dataclasses.replace(m, image=saliency_image(image, sample.slot, m.kind, levels)))
        samples.append(dataclasses.replace(sample, maps=tuple(maps)))
    return dataclasses.replace(section, samples=tuple(samples))


def _robustness(section: RobustnessSection) -> RobustnessSection:
    reliability, accuracy = robustness_figures(section)
    thumbnails = tuple(_thumbnail(t, section.check_severity, f"robustness.thumbnails[{i}].pixels")
                       for i, t in enumerate(section.thumbnails))
    return dataclasses.replace(section, reliability_figure=reliability, accuracy_figure=accuracy, thumbnails=thumbnails)


def _thumbnail(t: CorruptionThumbnail, severity: int, where: str) -> CorruptionThumbnail:
    image = corruption_thumbnail(decode_pixels(t.pixels, where, channels=3), t.corruption, t.title, severity)
    return dataclasses.replace(t, image=image)


def _compare(section: CompareSection, name_of: NameOf) -> CompareSection:
    weight, cka = compare_figures(section)
    changed = []
    for slot, c in enumerate(section.changed):
        where = f"compare.changed[{slot}]"
        names = [name_of(v, f"{where}.{k}") for k, v in (("label", c.label), ("base", c.base), ("head", c.head))]
        changed.append(_changed(c, slot, names, where))
    return dataclasses.replace(section, weight_figure=weight if section.weight_figure is not None else None,
                               cka_figure=cka if section.cka_figure is not None else None, changed=tuple(changed))


def _changed(c: PredictionChange, slot: int, names: list[str], where: str) -> PredictionChange:
    pixels = decode_pixels(c.pixels, f"{where}.pixels", channels=3)
    return dataclasses.replace(c, thumbnail=changed_thumbnail(pixels, slot, *names))
