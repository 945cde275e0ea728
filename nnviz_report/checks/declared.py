"""The declared checks: one function per check over the statistics and sections, and ``CHECKS``,
the list the checklist runs in this order. Each returns its findings, its worst measured value and
where, or that it did not run and why.

Sampled numbers are judged with their 95 % Wilson interval, not the point value:

- ``min_accuracy`` fails when the interval's upper bound is below it (the sample shows the model
  is worse), warns when the interval straddles it (the sample cannot tell), passes when the
  lower bound reaches it;
- ``chance-level`` fails when the lower bound is at or below chance (1 / classes): the sample
  cannot tell the model from guessing.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence

from ..report_model import (
    CompareSection,
    Finding,
    LayerMeasurements,
    ParamMeasurements,
    Performance,
    RobustnessComparison,
    RobustnessSection,
    SaliencySection,
    WeightsSection,
)
from .robustness import calibration_findings, corruption_findings, robustness_loss_findings
from .thresholds import Thresholds


@dataclasses.dataclass(frozen=True)
class CheckInputs:
    """What the checks read: statistics always; the later sections when they were built."""

    layers: Sequence[LayerMeasurements]
    params: Sequence[ParamMeasurements]
    performance: Performance
    class_names: tuple[str, ...]
    weights: WeightsSection | None = None
    saliency: SaliencySection | None = None
    compare: CompareSection | None = None
    robustness: RobustnessSection | None = None
    robustness_compare: RobustnessComparison | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    findings: list[Finding]
    worst_value: float | None
    measured: str
    where: str | None = None
    anchor: str | None = None
    note: str = ""
    ran: bool = True


@dataclasses.dataclass(frozen=True)
class Check:
    id: str
    title: str
    tests: str
    threshold: Callable[[Thresholds], str]
    run: Callable[[CheckInputs, Thresholds], Outcome]



def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _interval(low: float, high: float) -> str:
    return f"[{100 * low:.1f}–{100 * high:.1f} %]"


# ---- the checks ------------------------------------------------------------------------------

def _non_finite(inputs: CheckInputs, t: Thresholds) -> Outcome:
    found = []
    for p in inputs.params:
        if p.nonfinite_weights:
            found.append(Finding("non-finite", "fail", p.owner, float(p.nonfinite_weights), "0",
                                 f"{p.name} holds {p.nonfinite_weights} NaN or infinite weights.", p.anchor))
        if p.nonfinite_grads:
            found.append(Finding("non-finite", "fail", p.owner, float(p.nonfinite_grads), "0",
                                 f"The gradient of {p.name} has {p.nonfinite_grads} NaN or infinite entries.",
                                 p.anchor))
    for layer in inputs.layers:
        if layer.nonfinite:
            found.append(Finding("non-finite", "fail", layer.name, float(layer.nonfinite), "0",
                                 f"{layer.name} output {layer.nonfinite} NaN or infinite values.", layer.anchor))
        if layer.grad_nonfinite:
            found.append(Finding("non-finite", "fail", layer.name, float(layer.grad_nonfinite), "0",
                                 f"The gradient reaching {layer.name} has {layer.grad_nonfinite} NaN or infinite "
                                 "values.", layer.anchor))
    total = sum(f.value or 0 for f in found)
    first = found[0] if found else None
    return Outcome(found, total, f"{int(total)} non-finite values",
                    first.layer if first else None, first.anchor if first else None)


def _dead_channels(inputs: CheckInputs, t: Thresholds) -> Outcome:
    found = []
    # dead_channels is counted only after rectifiers (None elsewhere)
    rectified = [layer for layer in inputs.layers if layer.dead_channels is not None and layer.channels]
    for layer in rectified:
        fraction = layer.dead_fraction
        severity = "fail" if fraction > t.dead_channels_fail else "warn" if fraction > t.dead_channels_warn else None
        if severity:
            limit = t.dead_channels_fail if severity == "fail" else t.dead_channels_warn
            found.append(Finding(
                "dead-channels", severity, layer.name, fraction, f"≤ {limit:.0%}",
                f"{layer.dead_channels} of {layer.channels} channels after {layer.name} are zero for every "
                f"sample ({fraction:.0%}); they pass nothing on and learn nothing.", layer.anchor))
    if not rectified:
        return Outcome(found, None, "no rectifier layer", note="nothing to judge: no ReLU-like layer with channels")
    worst = max(rectified, key=lambda layer: layer.dead_fraction)
    return Outcome(found, worst.dead_fraction,
                    f"{worst.dead_fraction:.0%} ({worst.dead_channels} of {worst.channels} channels)",
                    worst.name, worst.anchor)


def _weight_params(params: Sequence[ParamMeasurements]) -> list[ParamMeasurements]:
    """Weight matrices and kernels with a finite ratio: biases and norm scales say little about gradient flow."""
    return [p for p in params if len(p.shape) > 1 and p.ratio is not None and math.isfinite(p.ratio)]


def _vanishing(inputs: CheckInputs, t: Thresholds) -> Outcome:
    weights = _weight_params(inputs.params)
    found = [
        Finding("vanishing-gradient", "warn", p.owner, p.ratio, f"≥ {t.grad_ratio_low:g}",
                f"The gradient of {p.name} is {p.ratio:.2g} of its weight norm: this layer barely learns.", p.anchor)
        for p in weights if p.ratio is not None and p.ratio < t.grad_ratio_low
    ]
    if not weights:
        return Outcome(found, None, "no weight tensor", note="nothing to judge: no weight with a gradient")
    worst = min(weights, key=lambda p: p.ratio or 0.0)
    return Outcome(found, worst.ratio, f"lowest ‖g‖/‖w‖ {worst.ratio:.2g}", worst.owner,
                    worst.anchor)


def _exploding(inputs: CheckInputs, t: Thresholds) -> Outcome:
    weights = _weight_params(inputs.params)
    found = [
        Finding("exploding-gradient", "warn", p.owner, p.ratio, f"≤ {t.grad_ratio_high:g}",
                f"The gradient of {p.name} is {p.ratio:.2g} times its weight norm: one step could overwrite the "
                "layer.", p.anchor)
        for p in weights if p.ratio is not None and p.ratio > t.grad_ratio_high
    ]
    if not weights:
        return Outcome(found, None, "no weight tensor", note="nothing to judge: no weight with a gradient")
    worst = max(weights, key=lambda p: p.ratio or 0.0)
    return Outcome(found, worst.ratio, f"highest ‖g‖/‖w‖ {worst.ratio:.2g}", worst.owner,
                    worst.anchor)


def _gradient_spread(inputs: CheckInputs, t: Thresholds) -> Outcome:
    positive = [p.ratio for p in _weight_params(inputs.params) if p.ratio is not None and p.ratio > 0]
    if len(positive) < 2:
        return Outcome([], None, "fewer than two weights", note="nothing to judge: fewer than two weight tensors")
    spread = math.log10(max(positive) / min(positive))
    found = []
    if spread > t.grad_spread_orders:
        found.append(Finding(
            "gradient-spread", "warn", None, spread, f"≤ {t.grad_spread_orders:g} orders",
            f"‖gradient‖/‖weight‖ spans {spread:.1f} orders of magnitude across depth: layers learn at very "
            "different speeds.", "gradient-flow"))
    return Outcome(found, spread, f"{spread:.1f} orders of magnitude", None, "gradient-flow")


def _saturation(inputs: CheckInputs, t: Thresholds) -> Outcome:
    bounded = [layer for layer in inputs.layers if layer.saturation is not None]
    found = [
        Finding("saturation", "warn", layer.name, layer.saturation, f"≤ {t.saturation_warn:.0%}",
                f"{layer.saturation:.0%} of the outputs of {layer.name} ({layer.type}) sit at its limits, where its "
                "gradient is nearly zero.", layer.anchor)
        for layer in bounded if layer.saturation is not None and layer.saturation > t.saturation_warn
    ]
    if not bounded:
        return Outcome(found, None, "no sigmoid or tanh layer", note="nothing to judge: no sigmoid or tanh layer")
    worst = max(bounded, key=lambda layer: layer.saturation or 0.0)
    return Outcome(found, worst.saturation, f"{worst.saturation:.0%} of outputs at a limit", worst.name, worst.anchor)


def _min_accuracy(inputs: CheckInputs, t: Thresholds) -> Outcome:
    perf = inputs.performance
    ci = perf.accuracy_interval
    measured = f"{_pct(perf.accuracy)} {_interval(ci.low, ci.high)}, n = {len(perf.labels)}"
    if t.min_accuracy is None:
        return Outcome([], perf.accuracy, measured, None, "summary-accuracy",
                        note="off: set --min-accuracy or min_accuracy in the [thresholds] of --config", ran=False)
    floor = t.min_accuracy
    found = []
    if ci.high < floor:
        found.append(Finding("accuracy", "fail", None, perf.accuracy, f"≥ {floor:.1%}",
                             f"Accuracy on the sample is {perf.accuracy:.1%} (95 % interval "
                             f"{_interval(ci.low, ci.high)}): even its upper bound is below the required "
                             f"{floor:.1%}.", "summary-accuracy"))
    elif ci.low < floor:
        found.append(Finding("accuracy", "warn", None, perf.accuracy, f"≥ {floor:.1%}",
                             f"Accuracy on the sample is {perf.accuracy:.1%}, but its 95 % interval "
                             f"{_interval(ci.low, ci.high)} straddles the required {floor:.1%}: this sample cannot "
                             "tell; use a larger --per-class.", "summary-accuracy"))
    return Outcome(found, perf.accuracy, measured, None, "summary-accuracy",
                    note="fail when the interval's upper bound is below the threshold, warn when it straddles it")


def _chance_level(inputs: CheckInputs, t: Thresholds) -> Outcome:
    perf = inputs.performance
    n = len(perf.labels)
    classes = len(perf.per_class_accuracy)
    chance = 1 / classes
    ci = perf.accuracy_interval
    top_class, top_count = Counter(perf.predictions).most_common(1)[0] if n else (0, 0)
    share = top_count / n if n else 0.0
    measured = (f"{_pct(perf.accuracy)} {_interval(ci.low, ci.high)} against chance {_pct(chance)}; "
                f"{share:.0%} of predictions are {inputs.class_names[top_class]}")
    found = []
    if ci.low <= chance:
        found.append(Finding(
            "chance-level", "fail", None, perf.accuracy, f"95 % interval above {_pct(chance)}",
            f"Accuracy {_pct(perf.accuracy)} {_interval(ci.low, ci.high)} cannot be told from guessing "
            f"({_pct(chance)} with {classes} classes): the weights look untrained or not loaded.", "summary-accuracy"))
    if share > t.chance_collapse_share:
        found.append(Finding(
            "chance-level", "fail", None, share, f"≤ {t.chance_collapse_share:.0%} in one class",
            f"{share:.0%} of the {n} samples are predicted {inputs.class_names[top_class]}: the predictions have "
            "collapsed onto one class; the weights look untrained or not loaded.", "summary-accuracy"))
    return Outcome(found, ci.low, measured, None, "summary-accuracy",
                    note="fail when the 95 % interval's lower bound is at or below chance")


SALIENCY_KINDS = (("grad-cam-predicted", "Grad-CAM"), ("input-gradient", "input gradient"))


def _saliency_sanity(inputs: CheckInputs, t: Thresholds) -> Outcome:
    section = inputs.saliency
    if section is None or not section.samples:
        why = section.note if section is not None and section.note else "no showcase sample"
        return Outcome([], None, "not measured", note=f"off: {why}", ran=False)
    names = inputs.class_names
    found, parts, worst_share, worst_where = [], [], -1.0, None
    for kind, label in SALIENCY_KINDS:
        judged = [(s, m) for s in section.samples for m in s.maps if m.kind == kind]
        if not judged:
            continue
        worse = [s for s, m in judged if m.salient_drop <= m.random_drop]
        share = len(worse) / len(judged)
        where = ", ".join(f"#{s.slot + 1} {names[s.label]}" for s in worse) or None
        parts.append(f"{label} no better than random on {len(worse)} of {len(judged)}")
        if share > worst_share:
            worst_share, worst_where = share, where
        if share > t.saliency_worse_share:
            found.append(Finding(
                "saliency-sanity", "warn", None, share, f"≤ {t.saliency_worse_share:.0%} of samples",
                f"Masking the pixels {label} marks most removes no more of the class's probability than masking as "
                f"many random pixels on {len(worse)} of {len(judged)} showcase samples ({where}): there the map "
                "does not show what the model uses.", "saliency"))
    if not parts:
        return Outcome([], None, "not measured", note="off: no saliency map was computed", ran=False)
    return Outcome(found, worst_share, "; ".join(parts), worst_where, "saliency")


def _weight_spectra(inputs: CheckInputs, t: Thresholds) -> Outcome:
    section = inputs.weights
    fitted = [row for row in section.rows if row.alpha is not None] if section is not None else []
    if not fitted:
        return Outcome([], None, "no tensor fitted",
                        note="off: no weight tensor has enough eigenvalues for a power-law fit", ran=False)
    found = []

    def outside(alpha: float) -> float:
        return max(t.alpha_low - alpha, alpha - t.alpha_high)

    for row in fitted:
        assert row.alpha is not None
        if outside(row.alpha) <= 0:
            continue
        good = row.alpha_ks_distance is not None and row.alpha_ks_distance <= t.alpha_ks_max
        side = "heavy-tailed: over-fitted or damaged" if row.alpha < t.alpha_low else "close to random: under-trained"
        ks = "—" if row.alpha_ks_distance is None else f"{row.alpha_ks_distance:.3f}"
        message = (f"The eigenvalue spectrum of {row.name} has power-law exponent α = {row.alpha:.2f}, outside "
                   f"{t.alpha_low:g}–{t.alpha_high:g} ({side})")
        message += (f"; the fit is good (KS distance {ks})." if good else
                    f"; the fit is loose (KS distance {ks} > {t.alpha_ks_max:g}), so this is a hint, not a finding.")
        found.append(Finding("weight-spectra", "warn" if good else "info", row.module_path, row.alpha,
                             f"{t.alpha_low:g} ≤ α ≤ {t.alpha_high:g}", message, row.anchor))
    worst = max(fitted, key=lambda row: outside(row.alpha or 0.0))
    return Outcome(found, worst.alpha, f"α = {worst.alpha:.2f} ({len(found)} of {len(fitted)} fitted tensors outside)",
                    worst.name, worst.anchor)


def _accuracy_drop(inputs: CheckInputs, t: Thresholds) -> Outcome:
    c = inputs.compare
    if c is None:
        return Outcome([], None, "not measured", note="off: runs in compare mode", ran=False)
    measured = (f"{_pct(c.accuracy.base or 0.0)} → {_pct(c.accuracy.head or 0.0)}, McNemar p = {c.mcnemar_p:.2g} "
                f"({c.changed_fixed} fixed, {c.changed_broken} broken)")
    found = []
    dropped = c.changed_broken > c.changed_fixed
    if dropped and c.mcnemar_p < t.compare_p_value:
        found.append(Finding(
            "accuracy-drop", "fail", None, c.mcnemar_p, f"p ≥ {t.compare_p_value:g} or no drop",
            f"The head gets {c.changed_broken} samples wrong that the base got right and fixes only "
            f"{c.changed_fixed}: accuracy drops {_pct(c.accuracy.base or 0.0)} → {_pct(c.accuracy.head or 0.0)}, "
            f"significant by McNemar's exact test (p = {c.mcnemar_p:.2g}).", "compare"))
    return Outcome(found, c.mcnemar_p, measured, None, "compare",
                    note="fail when the head is worse and McNemar's exact test is significant")


def _calibration(inputs: CheckInputs, t: Thresholds) -> Outcome:
    r = inputs.robustness
    if r is None:
        return Outcome([], None, "not measured", note="off: the calibration probe did not run", ran=False)
    cal = r.calibration
    excess = cal.ece - cal.ece_calibrated_reference
    return Outcome(calibration_findings(r, t.ece_warn), excess,
                    f"ECE {cal.ece:.3f}, sampling floor {cal.ece_calibrated_reference:.3f}", None, "calibration")


def _corruption_drop(inputs: CheckInputs, t: Thresholds) -> Outcome:
    r = inputs.robustness
    if r is None or not r.summaries:
        return Outcome([], None, "not measured", note="off: the corruption probe did not run", ran=False)
    worst = max(r.summaries, key=lambda s: s.drop_at_check)
    return Outcome(corruption_findings(r, t.corruption_drop_warn), worst.drop_at_check,
                    f"largest drop {100 * worst.drop_at_check:.0f} points ({worst.title.lower()})", worst.title,
                    "corruption-summary")


def _robustness_loss(inputs: CheckInputs, t: Thresholds) -> Outcome:
    k = inputs.robustness_compare
    if k is None or k.mean_corruption_accuracy.delta is None:
        return Outcome([], None, "not measured", note="off: runs in compare mode with both probes", ran=False)
    delta = k.mean_corruption_accuracy.delta
    p = f", McNemar p = {k.p_value:.2g}" if k.p_value is not None else ""
    return Outcome(robustness_loss_findings(k, t.robustness_loss_warn), -delta,
                    f"{100 * delta:+.1f} points{p}", None, "robustness-compare")


def _class_drop(inputs: CheckInputs, t: Thresholds) -> Outcome:
    c = inputs.compare
    if c is None:
        return Outcome([], None, "not measured", note="off: runs in compare mode", ran=False)
    names = inputs.class_names
    drops = [(-(ch.delta or 0.0), i, ch) for i, ch in enumerate(c.per_class_accuracy) if ch.delta is not None]
    counts = inputs.performance.per_class_count
    found = [
        Finding("class-drop", "warn", None, ch.delta, f"drop ≤ {t.class_drop_warn * 100:.0f} pp",
                f"Accuracy on {names[i]} drops {_pct(ch.base or 0.0)} → {_pct(ch.head or 0.0)} "
                f"({100 * drop:.0f} pp, {round(drop * counts[i])} of {counts[i]} images).", "compare-classes")
        for drop, i, ch in drops
        if drop > t.class_drop_warn + 1e-12 and round(drop * counts[i]) >= t.class_drop_min_images
    ]
    if not drops:
        return Outcome(found, None, "no class on both sides")
    drop, i, _ = max(drops)
    return Outcome(found, -drop, f"largest change {-100 * drop:+.0f} pp", names[i], "compare-classes")


CHECKS = (
    Check("non-finite", "Non-finite values", "NaN or infinite values in weights, activations or gradients",
          lambda t: "none allowed (fail)", _non_finite),
    Check("dead-channels", "Dead channels", "channels after a rectifier that are zero for every sample",
          lambda t: f"warn > {t.dead_channels_warn:.0%}, fail > {t.dead_channels_fail:.0%} of a layer", _dead_channels),
    Check("vanishing-gradient", "Vanishing gradient", "a weight's ‖gradient‖/‖weight‖ too small to learn",
          lambda t: f"warn < {t.grad_ratio_low:g}", _vanishing),
    Check("exploding-gradient", "Exploding gradient", "a weight's ‖gradient‖/‖weight‖ so large one step overwrites it",
          lambda t: f"warn > {t.grad_ratio_high:g}", _exploding),
    Check("gradient-spread", "Gradient spread", "how many orders of magnitude ‖gradient‖/‖weight‖ spans across depth",
          lambda t: f"warn > {t.grad_spread_orders:g} orders", _gradient_spread),
    Check("saturation", "Saturation", "sigmoid/tanh outputs within 0.01 of their limits",
          lambda t: f"warn > {t.saturation_warn:.0%} of a layer's outputs", _saturation),
    Check("accuracy", "Minimum accuracy", "accuracy on the sample, judged by its 95 % Wilson interval",
          lambda t: "off" if t.min_accuracy is None else f"≥ {t.min_accuracy:.1%}: fail if the upper bound is below, "
          "warn if the interval straddles", _min_accuracy),
    Check("chance-level", "Better than chance", "accuracy above guessing, predictions spread over the classes",
          lambda t: f"fail if the interval reaches chance or > {t.chance_collapse_share:.0%} of predictions are one "
          "class", _chance_level),
    Check("saliency-sanity", "Saliency sanity", "masking the most salient pixels hurts more than masking random ones",
          lambda t: f"warn if no better than random on > {t.saliency_worse_share:.0%} of showcase samples",
          _saliency_sanity),
    Check("weight-spectra", "Weight spectra", "power-law exponent α of each weight's eigenvalue spectrum",
          lambda t: f"{t.alpha_low:g} ≤ α ≤ {t.alpha_high:g}; warn with a good fit (KS ≤ {t.alpha_ks_max:g}), info "
          "otherwise", _weight_spectra),
    Check("calibration-ece", "Calibration", "expected calibration error (15 equal-width bins) beyond its floor",
          lambda t: f"warn > {t.ece_warn:.2f} above the floor", _calibration),
    Check("corruption-drop", "Corruption robustness", "accuracy lost under each corruption at severity 3",
          lambda t: f"warn > {t.corruption_drop_warn * 100:.0f} points lost", _corruption_drop),
    Check("accuracy-drop", "No significant accuracy drop", "base → head on the same samples, exact McNemar test",
          lambda t: f"fail if the head is worse with p < {t.compare_p_value:g}", _accuracy_drop),
    Check("class-drop", "No large class drop", "per-class accuracy base → head",
          lambda t: f"warn if a class drops > {t.class_drop_warn * 100:.0f} pp and ≥ {t.class_drop_min_images:g} "
          "images", _class_drop),
    Check("robustness-loss", "No robustness loss", "mean corruption accuracy base → head, exact McNemar test",
          lambda t: f"warn if it falls > {t.robustness_loss_warn * 100:g} points with p < 0.05", _robustness_loss),
)
