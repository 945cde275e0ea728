"""Checks on calibration and corruption robustness, returning the report's Finding type.

Thresholds (defaults in checks.thresholds.Thresholds, overridable in the TOML's [thresholds] table):

- ``ece_warn`` = 0.10, on the ECE in excess of its sampling floor. Uncalibrated modern CIFAR-10
  networks show an ECE of about 0.03–0.05 on the full test split (Guo et al., 2017: ResNet-110
  4.5 %, DenseNet-40 3.3 %). Over few images the ECE is biased upward by sampling alone: a
  perfectly calibrated model shows 0.05–0.15 on 50–100 images (the floor, computed for the
  measured confidences and stated in the report). The check subtracts that floor, which, if
  anything, understates a real gap (the bias is largest for a calibrated model), so it warns
  only when the confidences are off by ten points on average beyond what sampling explains.
- ``corruption_drop_warn`` = 0.25. At severity 3 a CIFAR-10-C corruption is plainly visible but
  leaves the object easy to recognise for a person; standard-trained ResNets lose roughly
  5–40 accuracy points there, the most under noise (Hendrycks & Dietterich, 2019). A drop of
  more than 25 points — a quarter of the images — on such a perturbation is brittleness an
  audit should name. The drop is the clean accuracy of the images evaluated in that cell minus
  their accuracy under the corruption, in points (paired: nnviz_report.probes evaluates each
  cell on a balanced subset, 14–15 of 100 images, so the drop is a coarse screen; the cell's
  Wilson interval in the report says how coarse).
- ``robustness_loss_warn`` = 0.02, compare mode. The head's mean accuracy over the whole suite
  falls by more than two points against the base *and* an exact McNemar test on the paired
  (image, corruption, severity) predictions gives p < 0.05: a loss both material and unlikely
  to come from which images happened to flip.
"""

from __future__ import annotations

from ..report_model import Finding, RobustnessComparison, RobustnessSection

SIGNIFICANCE = 0.05


def calibration_findings(section: RobustnessSection | None, ece_warn: float) -> list[Finding]:
    if section is None:
        return []
    cal = section.calibration
    excess = cal.ece - cal.ece_calibrated_reference
    if not excess > ece_warn:
        return []
    direction = "over" if cal.mean_confidence > cal.accuracy else "under"
    return [Finding(
        "calibration-ece", "warn", None, excess, f"≤ {ece_warn:.2f} above the sampling floor",
        f"Expected calibration error is {cal.ece:.3f} ({cal.bins} bins; bootstrap {cal.ece_level:.0%} interval "
        f"{cal.ece_low:.3f}–{cal.ece_high:.3f}), {excess:.3f} above the {cal.ece_calibrated_reference:.3f} a "
        f"perfectly calibrated model would show on {cal.count} images: the model is {direction}confident, mean "
        f"confidence {cal.mean_confidence:.1%} against accuracy {cal.accuracy:.1%}.",
        "calibration")]


def corruption_findings(section: RobustnessSection | None, drop_warn: float) -> list[Finding]:
    if section is None:
        return []
    return [
        Finding(
            "corruption-drop", "warn", s.title, s.drop_at_check, f"≤ {drop_warn:.2f} (accuracy lost)",
            f"Under {s.title.lower()} at severity {section.check_severity} accuracy falls from "
            f"{s.accuracy_at_check + s.drop_at_check:.1%} to {s.accuracy_at_check:.1%} ({100 * s.drop_at_check:.0f} "
            f"points) on the {s.count_at_check} images evaluated there.",
            "corruption-summary")
        for s in section.summaries
        if s.drop_at_check > drop_warn
    ]


def robustness_loss_findings(comparison: RobustnessComparison | None, loss_warn: float) -> list[Finding]:
    if comparison is None or comparison.mean_corruption_accuracy.delta is None or comparison.p_value is None:
        return []
    delta = comparison.mean_corruption_accuracy.delta
    if not (delta < -loss_warn and comparison.p_value < SIGNIFICANCE):
        return []
    return [Finding(
        "robustness-loss", "warn", None, -delta, f"≤ {loss_warn:.2f} (accuracy lost), or p ≥ {SIGNIFICANCE}",
        f"Mean accuracy over the corruption suite fell by {100 * -delta:.1f} points against the base "
        f"({comparison.base_only_right} predictions right only in the base, {comparison.head_only_right} only in the "
        f"head; exact McNemar p = {comparison.p_value:.2g}).",
        "robustness-compare")]
