"""Settings for one report run: frozen, validated once, with the bad value in every message."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from enum import Enum
from pathlib import Path

from .errors import ConfigError


class OutputFormat(str, Enum):
    HTML = "html"
    PDF = "pdf"
    JSON = "json"
    MARKDOWN = "md"

    @classmethod
    def parse_list(cls, text: str | Iterable[str]) -> tuple[OutputFormat, ...]:
        names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
        names = [n for n in names if n]
        if not names:
            raise ConfigError("no output format given; use --format with any of html,pdf,json,md")
        known = {f.value: f for f in cls} | {"markdown": cls.MARKDOWN}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(
                f"unknown output format {', '.join(map(repr, unknown))}; choose from html, pdf, json, md"
            )
        # Keep a fixed order whatever order the user typed, so runs are comparable.
        chosen = {known[n] for n in names}
        return tuple(f for f in cls if f in chosen)


class Severity(str, Enum):
    """The one severity scale: findings, checklist rows, table rows, diagram marks and the
    --fail-on gate all rank through ``rank``. Declared mildest first; the order is the rank."""

    PASS = "pass"
    INFO = "info"  # worth knowing, never a reason to fail a build
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def worst(cls, values: Iterable[str | Severity]) -> Severity:
        """The most severe of ``values`` (plain strings such as a finding's ``severity`` included); PASS when empty."""
        return max((cls(v) for v in values), key=lambda s: s.rank, default=cls.PASS)

    @classmethod
    def rank_of(cls, value: str | Severity) -> int:
        return cls(value).rank


_RANK = {s: i for i, s in enumerate(Severity)}


DEFAULT_FORMATS = (OutputFormat.HTML, OutputFormat.PDF, OutputFormat.JSON, OutputFormat.MARKDOWN)
FAIL_ON_CHOICES = (Severity.WARN.value, Severity.FAIL.value)  # a run can fail on these; "pass" would always fail


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """Everything that decides what a report contains. Recorded in the report itself."""

    model: str
    weights: Path | None = None
    data: str = "cifar10"
    data_root: Path | None = None
    per_class: int = 10
    formats: tuple[OutputFormat, ...] = DEFAULT_FORMATS
    out_dir: Path = Path("nnviz-report")
    device: str = "cpu"
    batch_size: int = 100
    showcase: int = 4
    seed: int = 0
    download: bool = True
    trust_checkpoint: bool = False
    fail_on: Severity | None = None
    min_accuracy: float | None = None
    config_file: Path | None = None
    gradcam_layer: str | None = None
    graph_direction: str = "TB"
    graph_fold: str = "auto"
    graph_group_depth: int = 2
    template_dir: Path | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        # The Python API is called with plain strings as often as with Paths and enums; the
        # pipeline relies on the declared types, so accept both here, once.
        for name in ("weights", "data_root", "out_dir", "config_file", "template_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if isinstance(self.formats, str) or any(not isinstance(f, OutputFormat) for f in self.formats):
            object.__setattr__(self, "formats", OutputFormat.parse_list(self.formats))
        if self.fail_on is not None and not isinstance(self.fail_on, Severity):
            if self.fail_on not in FAIL_ON_CHOICES:
                raise ConfigError(f"fail_on must be warn or fail, got {self.fail_on!r}")
            object.__setattr__(self, "fail_on", Severity(self.fail_on))
        if self.per_class < 1:
            raise ConfigError(f"--per-class must be at least 1, got {self.per_class}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 1 <= self.showcase <= 10:
            raise ConfigError(f"--showcase must be between 1 and 10, got {self.showcase}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"unknown device {self.device!r}; use cpu or cuda")
        if self.graph_direction not in ("TB", "LR"):
            raise ConfigError(f"unknown graph direction {self.graph_direction!r}; use TB or LR")
        if self.graph_fold not in ("auto", "always", "never"):
            raise ConfigError(f"unknown fold setting {self.graph_fold!r}; use auto, always or never")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise ConfigError(f"--min-accuracy must be between 0 and 1, got {self.min_accuracy}")
        if not self.formats:
            raise ConfigError("no output format given; use --format with any of html,pdf,json,md")

    def describe(self) -> dict[str, str]:
        """The settings as they appear in the report: strings only, paths reduced to names so
        that the same inputs in another directory give the same bytes."""
        return {
            "model": self.model,
            "weights": self.weights.name if self.weights else "(shipped with the model)",
            "data": self.data if self.data == "cifar10" else Path(self.data).name,
            "per_class": str(self.per_class),
            "batch_size": str(self.batch_size),
            "device": self.device,
            "showcase": str(self.showcase),
            "seed": str(self.seed),
            "formats": ",".join(f.value for f in self.formats),
            "fail_on": self.fail_on.value if self.fail_on else "(none)",
            "min_accuracy": "(none)" if self.min_accuracy is None else f"{self.min_accuracy:g}",
            "gradcam_layer": self.gradcam_layer or "(auto)",
        }
