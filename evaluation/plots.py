"""Figures of an evaluation, drawn with matplotlib's non-interactive Agg backend."""

from pathlib import Path


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str):
    """Counts per (reference, prediction) and the same rows normalised to 100% (each class's recall on the
    diagonal), side by side with colour bars, written as a PNG; returns the (closed) matplotlib figure.

    Each cell's number is white on dark cells and black on light ones (the cell colour's relative luminance).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = 2.5 + 0.45 * len(labels)
    figure, (left, right) = plt.subplots(1, 2, figsize=(2 * size + 1.5, size + 0.6))
    _matrix_panel(figure, left, counts, labels, "counts", lambda value: f"{value:.0f}")
    _matrix_panel(figure, right, shares, labels, "share of each reference row", lambda value: f"{100 * value:.0f}%",
                  limits=(0.0, 1.0))
    _save(figure, path, title)
    return figure


def _matrix_panel(figure, axes, values, labels, name: str, format_value, limits=(None, None)) -> None:
    image = axes.imshow(values, cmap="Blues", vmin=limits[0], vmax=limits[1])
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label=name)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("prediction")
    axes.set_ylabel("reference")
    axes.set_title(name)
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            red, green, blue, _ = image.cmap(image.norm(value))
            luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
            axes.text(c, r, format_value(value), ha="center", va="center", fontsize=8,
                      color="white" if luminance < 0.5 else "black")


def plot_reliability_diagram(points: dict, path: Path, title: str, n_bins: int = 15) -> None:
    """Accuracy against confidence over `n_bins` equal-width bins, one panel per variant (e.g. before/after
    calibration); `points[name] = (top-1 confidence array, correct array)`. The diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    figure, panels = plt.subplots(1, len(points), figsize=(4 * len(points), 4), squeeze=False)
    for axes, (name, (confidence, correct)) in zip(panels[0], points.items()):
        bins = np.clip(np.ceil(np.asarray(confidence) * n_bins).astype(int) - 1, 0, n_bins - 1)
        filled = [b for b in range(n_bins) if (bins == b).any()]
        accuracy = [np.asarray(correct)[bins == b].mean() for b in filled]
        axes.bar(edges[filled], accuracy, width=1 / n_bins, align="edge", edgecolor="black", label="accuracy")
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_xlabel("confidence (top-1 probability)")
        axes.set_ylabel("accuracy")
        axes.set_title(f"{name} ({len(confidence)} images)")
        axes.legend(loc="lower right", fontsize=8)
    _save(figure, path, title)


def _save(figure, path: Path, title: str) -> None:
    """Titles, lays out and writes the figure as a PNG, then frees it."""
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
