"""Summary figures: confusion matrix and per-class accuracy."""

from __future__ import annotations

import numpy as np

from ..report_model import Figure
from .common import CATEGORICAL, matrix_cells, new_figure, style, svg_figure


def confusion_figure(confusion: np.ndarray, class_names: tuple[str, ...]) -> Figure:
    with style():
        fig = new_figure(5.6, 4.6)
        ax = fig.add_subplot()
        matrix_cells(ax, confusion, cmap="cividis", vmin=float(confusion.min()), vmax=float(confusion.max()),
                     colour_label="images", annotate="d", cell_lines=True)
        centres = np.arange(len(class_names)) + 0.5
        ax.set_xticks(centres, class_names)
        ax.set_yticks(centres, class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(False)
        return svg_figure(fig, "confusion", "Confusion matrix: true class by row, predicted class by column", width=520)


def per_class_figure(per_class_accuracy: np.ndarray, class_names: tuple[str, ...], overall: float) -> Figure:
    with style():
        fig = new_figure(5.2, 2.6)
        ax = fig.add_subplot()
        positions = np.arange(len(class_names))
        ax.bar(positions, per_class_accuracy * 100, color=CATEGORICAL[0])
        ax.axhline(overall * 100, color=CATEGORICAL[5], linestyle="--", linewidth=1, label=f"overall {overall:.1%}")
        ax.set_xticks(positions, class_names, rotation=45, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.legend(loc="lower right", frameon=False)
        return svg_figure(fig, "per-class-accuracy", "Accuracy on the sample for each class", width=480)
