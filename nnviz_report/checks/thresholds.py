"""The checklist's thresholds: defaults with the reason for each, overridden by the
``[thresholds]`` table of a TOML file (--config) and by --min-accuracy, validated once."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import tomllib

from ..errors import ConfigError, one_line


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Defaults and why (README "Checks and thresholds" lists the same)."""

    # A quarter of a layer's channels silent is capacity lost; half is a layer that mostly does nothing.
    dead_channels_warn: float = 0.25
    dead_channels_fail: float = 0.50
    # One SGD step at a usual learning rate (1e-3 … 1e-1) moves a layer by lr·ratio of its norm.
    grad_ratio_low: float = 1e-6
    grad_ratio_high: float = 10.0
    grad_spread_orders: float = 4.0
    saturation_warn: float = 0.30
    min_accuracy: float | None = None
    # On CIFAR-10's balanced sample each class is 10 % of the images: a model that puts half of
    # them into one class is ignoring its input (untrained, or weights not loaded).
    chance_collapse_share: float = 0.5
    # A saliency map that removes no more of the class's probability than as many random pixels
    # does not show what the model uses; "most samples" is more than this share of them.
    saliency_worse_share: float = 0.5
    # WeightWatcher's empirical band (Martin & Mahoney, 2021): well-trained layers have a power-law
    # exponent α between 2 and 6; below 2 is over-fitted or damaged, above 6 is near random. A
    # fit whose Kolmogorov–Smirnov distance exceeds alpha_ks_max is too loose to judge (info only).
    alpha_low: float = 2.0
    alpha_high: float = 6.0
    alpha_ks_max: float = 0.1
    # Compare: the usual 5 % level for McNemar's test; with 10 images per class one image moves
    # a class's accuracy by 10 pp, so a drop beyond 20 pp is three or more images of one class.
    compare_p_value: float = 0.05
    class_drop_warn: float = 0.20
    # ...and at least this many images of the class lost: on a small sample (--per-class 2) one
    # image is 50 pp, and one or two images flip between any two checkpoints.
    class_drop_min_images: float = 3
    # Calibration and robustness; the rationale for each default is in checks/robustness.py.
    ece_warn: float = 0.10
    corruption_drop_warn: float = 0.25
    robustness_loss_warn: float = 0.02


# Thresholds that are fractions (shares, probabilities), checked to lie in [0, 1].
_FRACTIONS = ("dead_channels_warn", "dead_channels_fail", "saturation_warn", "min_accuracy", "chance_collapse_share",
              "saliency_worse_share", "alpha_ks_max", "compare_p_value", "class_drop_warn", "ece_warn",
              "corruption_drop_warn", "robustness_loss_warn")



def load_thresholds(path: Path | None, *, min_accuracy: float | None = None) -> Thresholds:
    """Defaults, overridden by a TOML file's ``[thresholds]`` table, then by --min-accuracy."""
    values: dict[str, object] = {}
    if path is not None:
        if path.exists() and not path.is_file() and not path.is_dir():  # /dev/zero, a FIFO: never ends
            raise ConfigError(f"config file {one_line(path)} is not a regular file; pass a TOML file with --config")
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {one_line(path)} does not exist; check the --config path") from None
        except OSError as exc:  # a folder, a file without read permission
            raise ConfigError(f"config file {one_line(path)} cannot be read ({one_line(exc.strerror)}); "
                              "pass a TOML file with --config") from None
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
                raise ConfigError(f"config file {path}: threshold {key} must be a number, got {one_line(value, 60)}")
            # nan would make every comparison false and silently disable its check; a 5000-digit
            # integer does not fit a float.
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"config file {path}: threshold {key} must be a finite number, "
                                  f"got {one_line(value, 40)}")
            values[key] = number
    if min_accuracy is not None:
        values["min_accuracy"] = min_accuracy
    thresholds = Thresholds(**values)  # type: ignore[arg-type]
    for name in _FRACTIONS:
        value = getattr(thresholds, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"threshold {name} must be between 0 and 1, got {value:g}")
    if thresholds.dead_channels_warn > thresholds.dead_channels_fail:
        raise ConfigError("dead_channels_warn must not exceed dead_channels_fail")
    if thresholds.grad_ratio_low >= thresholds.grad_ratio_high:
        raise ConfigError("grad_ratio_low must be below grad_ratio_high")
    if thresholds.alpha_low >= thresholds.alpha_high:
        raise ConfigError("alpha_low must be below alpha_high")
    return thresholds
