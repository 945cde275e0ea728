"""Findings from statistics: a declared list of checks, each with thresholds a TOML file can override.

Checks read the report model's plain statistics and return findings; they never look at the
model itself. Every finding names the check, the layer, the measured value, the threshold and
a sentence a person understands.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import tomllib

from .errors import ConfigError
from .report_model import Finding, LayerStats, ParamStats, RobustnessSection
from .robustness_checks import calibration_findings, corruption_findings

# Layers whose zeros mean "switched off": dead channels are judged only after these.
RECTIFIERS = {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "Hardtanh", "CELU", "ELU"}
SEVERITY_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    dead_channels_warn: float = 0.25
    dead_channels_fail: float = 0.50
    grad_ratio_low: float = 1e-6
    grad_ratio_high: float = 10.0
    grad_spread_orders: float = 4.0
    saturation_warn: float = 0.30
    min_accuracy: float | None = None
    # Calibration and robustness; the rationale for each default is in robustness_checks.py.
    ece_warn: float = 0.10
    corruption_drop_warn: float = 0.25
    robustness_loss_warn: float = 0.02


@dataclasses.dataclass(frozen=True)
class Check:
    id: str
    severity: str
    description: str


CHECKS = (
    Check("non-finite", "fail", "NaN or infinite values in weights, activations or gradients"),
    Check(
        "dead-channels",
        "warn/fail",
        "channels after a rectifier that are zero for every sample "
        "(warn above dead_channels_warn, fail above dead_channels_fail)",
    ),
    Check("vanishing-gradient", "warn", "a weight's ‖gradient‖/‖weight‖ below grad_ratio_low"),
    Check("exploding-gradient", "warn", "a weight's ‖gradient‖/‖weight‖ above grad_ratio_high"),
    Check(
        "gradient-spread",
        "warn",
        "‖gradient‖/‖weight‖ across depth spans more than grad_spread_orders orders of magnitude",
    ),
    Check("saturation", "warn", "sigmoid/tanh outputs within 0.01 of their limits above saturation_warn"),
    Check("accuracy", "fail", "accuracy on the sample below min_accuracy (off unless set)"),
    Check("calibration-ece", "warn", "expected calibration error (15 equal-width bins) above its sampling floor "
          "by more than ece_warn"),
    Check("corruption-drop", "warn", "accuracy lost under a corruption at severity 3 above corruption_drop_warn"),
    Check("robustness-loss", "warn", "compare: mean corruption accuracy fell by more than robustness_loss_warn "
          "with McNemar p < 0.05"),
)


def load_thresholds(path: Path | None, *, min_accuracy: float | None = None) -> Thresholds:
    """Defaults, overridden by a TOML file's ``[thresholds]`` table, then by --min-accuracy."""
    values: dict[str, object] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; check the --config path") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML ({exc})") from None
        table = document.get("thresholds", {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [thresholds] must be a table")
        known = {f.name for f in dataclasses.fields(Thresholds)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown thresholds {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for key, value in table.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"config file {path}: threshold {key} must be a number, got {value!r}")
            values[key] = float(value)
    if min_accuracy is not None:
        values["min_accuracy"] = min_accuracy
    thresholds = Thresholds(**values)  # type: ignore[arg-type]
    if thresholds.dead_channels_warn > thresholds.dead_channels_fail:
        raise ConfigError("dead_channels_warn must not exceed dead_channels_fail")
    if thresholds.grad_ratio_low >= thresholds.grad_ratio_high:
        raise ConfigError("grad_ratio_low must be below grad_ratio_high")
    for name in ("ece_warn", "corruption_drop_warn", "robustness_loss_warn"):
        if not 0.0 <= getattr(thresholds, name) <= 1.0:
            raise ConfigError(f"{name} is a fraction and must lie between 0 and 1")
    return thresholds


def run_checks(
    layers: Sequence[LayerStats], params: Sequence[ParamStats], accuracy: float, thresholds: Thresholds,
    *, robustness: RobustnessSection | None = None,
) -> list[Finding]:
    findings: list[Finding] = []
    findings += calibration_findings(robustness, thresholds.ece_warn)
    findings += corruption_findings(robustness, thresholds.corruption_drop_warn)
    findings += _non_finite(layers, params)
    findings += _dead_channels(layers, thresholds)
    findings += _gradient_ratios(params, thresholds)
    findings += _saturation(layers, thresholds)
    if thresholds.min_accuracy is not None and accuracy < thresholds.min_accuracy:
        findings.append(
            Finding(
                "accuracy",
                "fail",
                None,
                accuracy,
                f"≥ {thresholds.min_accuracy:.1%}",
                f"Accuracy on the sample is {accuracy:.1%}, below the required {thresholds.min_accuracy:.1%}.",
                "summary",
            )
        )
    # Worst first, then in the order the checks are declared and the layers run.
    order = {c.id: i for i, c in enumerate(CHECKS)}
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], order[f.check]))


def worst_severity(findings: Sequence[Finding]) -> str:
    return max((f.severity for f in findings), key=SEVERITY_RANK.__getitem__, default="pass")


def _non_finite(layers: Sequence[LayerStats], params: Sequence[ParamStats]) -> list[Finding]:
    found = []
    for p in params:
        if p.nonfinite_weights:
            found.append(
                Finding(
                    "non-finite",
                    "fail",
                    p.module_path,
                    float(p.nonfinite_weights),
                    "0",
                    f"{p.name} holds {p.nonfinite_weights} NaN or infinite weights.",
                    p.anchor,
                )
            )
        if p.nonfinite_grads:
            found.append(
                Finding(
                    "non-finite",
                    "fail",
                    p.module_path,
                    float(p.nonfinite_grads),
                    "0",
                    f"The gradient of {p.name} has {p.nonfinite_grads} NaN or infinite entries.",
                    p.anchor,
                )
            )
    for layer in layers:
        if layer.nonfinite:
            found.append(
                Finding(
                    "non-finite",
                    "fail",
                    layer.name,
                    float(layer.nonfinite),
                    "0",
                    f"{layer.name} output {layer.nonfinite} NaN or infinite values.",
                    layer.anchor,
                )
            )
        if layer.grad_nonfinite:
            found.append(
                Finding(
                    "non-finite",
                    "fail",
                    layer.name,
                    float(layer.grad_nonfinite),
                    "0",
                    f"The gradient reaching {layer.name} has {layer.grad_nonfinite} NaN or infinite values.",
                    layer.anchor,
                )
            )
    return found


def _dead_channels(layers: Sequence[LayerStats], t: Thresholds) -> list[Finding]:
    found = []
    for layer in layers:
        if layer.type not in RECTIFIERS or not layer.channels:
            continue
        fraction = layer.dead_fraction
        severity = "fail" if fraction > t.dead_channels_fail else "warn" if fraction > t.dead_channels_warn else None
        if severity:
            limit = t.dead_channels_fail if severity == "fail" else t.dead_channels_warn
            found.append(
                Finding(
                    "dead-channels",
                    severity,
                    layer.name,
                    fraction,
                    f"≤ {limit:.0%}",
                    f"{layer.dead_channels} of {layer.channels} channels after {layer.name} are zero for every "
                    f"sample ({fraction:.0%}); they pass nothing on and learn nothing.",
                    layer.anchor,
                )
            )
    return found


def _weight_params(params: Sequence[ParamStats]) -> list[ParamStats]:
    """Weight matrices and kernels: biases and norm scales say little about gradient flow."""
    return [p for p in params if len(p.shape) > 1 and p.ratio is not None]


def _gradient_ratios(params: Sequence[ParamStats], t: Thresholds) -> list[Finding]:
    found = []
    weights = _weight_params(params)
    for p in weights:
        assert p.ratio is not None
        if not math.isfinite(p.ratio):
            continue
        if p.ratio < t.grad_ratio_low:
            found.append(
                Finding(
                    "vanishing-gradient",
                    "warn",
                    p.module_path,
                    p.ratio,
                    f"≥ {t.grad_ratio_low:g}",
                    f"The gradient of {p.name} is {p.ratio:.2g} of its weight norm: this layer barely learns.",
                    p.anchor,
                )
            )
        elif p.ratio > t.grad_ratio_high:
            found.append(
                Finding(
                    "exploding-gradient",
                    "warn",
                    p.module_path,
                    p.ratio,
                    f"≤ {t.grad_ratio_high:g}",
                    f"The gradient of {p.name} is {p.ratio:.2g} times its weight norm: one step could "
                    "overwrite the layer.",
                    p.anchor,
                )
            )
    positive = [p.ratio for p in weights if p.ratio is not None and math.isfinite(p.ratio) and p.ratio > 0]
    if len(positive) >= 2:
        spread = math.log10(max(positive) / min(positive))
        if spread > t.grad_spread_orders:
            found.append(
                Finding(
                    "gradient-spread",
                    "warn",
                    None,
                    spread,
                    f"≤ {t.grad_spread_orders:g} orders",
                    f"‖gradient‖/‖weight‖ spans {spread:.1f} orders of magnitude across depth: layers "
                    "learn at very different speeds.",
                    "gradient-flow",
                )
            )
    return found


def _saturation(layers: Sequence[LayerStats], t: Thresholds) -> list[Finding]:
    return [
        Finding(
            "saturation",
            "warn",
            layer.name,
            layer.saturation,
            f"≤ {t.saturation_warn:.0%}",
            f"{layer.saturation:.0%} of the outputs of {layer.name} ({layer.type}) sit at its limits, "
            "where its gradient is nearly zero.",
            layer.anchor,
        )
        for layer in layers
        if layer.saturation is not None and layer.saturation > t.saturation_warn
    ]
