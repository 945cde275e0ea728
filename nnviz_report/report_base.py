"""The small value types every part of the report model uses: a figure's bytes and a 95 %
interval. Apart from report_model so that its section modules can use them without a cycle."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str
    media_type: str  # "image/svg+xml" or "image/png"
    data: bytes
    alt: str
    width: int | None = None  # CSS px the figure is meant to be shown at; None: the container's width
    inline: bool = False  # inline SVG (needed for links inside it) rather than an <img>

    @classmethod
    def undrawn(cls, name: str) -> Figure:
        """A figure known by its name only (as report.json records it), before figures.draw draws it."""
        return cls(name, "", b"", "")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A 95 % confidence interval of a number measured on the sample."""

    low: float
    high: float
    method: str  # "wilson-95": Wilson score interval of a proportion, 95 %
