"""Figures of an evaluation, drawn with matplotlib's non-interactive Agg backend."""

from pathlib import Path


def plot_confusion_matrix(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> None:
    """Counts per (reference, prediction), written as a PNG with matplotlib's non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2 + 0.5 * len(labels)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("prediction")
    axes.set_ylabel("reference")
    axes.set_title(title)
    for r, row in enumerate(matrix):
        for c, count in enumerate(row):
            axes.text(c, r, str(count), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
