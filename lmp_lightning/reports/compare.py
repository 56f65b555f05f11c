"""Per-class comparison of two runs: gains against pixel counts (Fig. 3 of Rota Bulò et al.
2017), a Tab. 3-style table, the Spearman correlation and the "worst classes" analysis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmp_lightning.reports.results import ClassResults

__all__ = ["gains", "markdown_table", "match_analysis", "plot_gains", "spearman"]


def _check(baseline: ClassResults, run: ClassResults) -> None:
    if baseline.class_names != run.class_names:
        raise ValueError(
            f"the runs have different classes: {baseline.class_names} and {run.class_names}"
        )


def gains(baseline: ClassResults, run: ClassResults) -> np.ndarray:
    """Per-class IoU gain of ``run`` over ``baseline``, in IoU points (NaN where either is)."""
    _check(baseline, run)
    return np.asarray(run.iou, dtype=float) - np.asarray(baseline.iou, dtype=float)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=float)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's correlation of average ranks) over the pairs where
    both are finite; NaN with fewer than 3 pairs or a constant side.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 25, 100])
        1.0
        >>> spearman([1, 2, 3], [3, 1, 2])
        -0.5
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return math.nan
    rx, ry = _ranks(x[keep]), _ranks(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return math.nan if denominator == 0 else float((rx * ry).sum() / denominator)


def match_analysis(baseline: ClassResults, run: ClassResults) -> list[tuple[int, float, bool]]:
    """How much would the baseline's ``k`` worst classes each have to improve to match the run's
    mIoU (Sect. 5.2: "improve the worst 7 categories by 5% each")?

    Returns:
        For k = 1 .. C: ``(k, points each, feasible)``, points in IoU percent, feasible when
        none of the k classes would pass 100%.
    """
    _check(baseline, run)
    base = np.asarray(baseline.iou, dtype=float)
    present = np.isfinite(base)
    gap = 100 * (run.miou - baseline.miou)
    worst = np.sort(base[present])
    out = []
    for k in range(1, len(worst) + 1):
        each = gap * len(worst) / k
        out.append((k, each, bool(100 * worst[:k].max() + each <= 100)))
    return out


def markdown_table(
    baseline: ClassResults, run: ClassResults, names: tuple[str, str] = ("baseline", "run")
) -> str:
    """A Tab. 3-style table: one column per class and mIoU, rows baseline, run and gain (%)."""
    delta = gains(baseline, run)

    def row(label: str, values: list[float] | np.ndarray, miou: float, sign: bool = False) -> str:
        fmt = "{:+.1f}" if sign else "{:.1f}"
        cells = ["-" if math.isnan(v) else fmt.format(100 * v) for v in values]
        return f"| {label} | " + " | ".join(cells) + f" | {fmt.format(100 * miou)} |"

    header = "| | " + " | ".join(baseline.class_names) + " | mIoU |"
    rule = "|---|" + "---:|" * (len(baseline.class_names) + 1)
    return "\n".join(
        [
            header,
            rule,
            row(names[0], baseline.iou, baseline.miou),
            row(names[1], run.iou, run.miou),
            row("gain", delta, run.miou - baseline.miou, sign=True),
        ]
    )


def plot_gains(
    baseline: ClassResults,
    run: ClassResults,
    path: str | Path,
    title: str = "Per-class IoU gain against pixel count",
) -> Path:
    """Fig. 3: gain (IoU %, y) against the pixel count of the class in the evaluated split (x,
    log scale, the run's counts), with labelled points.

    Written as a 1200x800 PNG with matplotlib's Agg backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delta = 100 * gains(baseline, run)
    counts = np.asarray(run.pixel_counts, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=200)
    keep = np.isfinite(delta) & (counts > 0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.scatter(counts[keep], delta[keep], color=np.where(delta[keep] >= 0, "tab:green", "tab:red"))
    for name, x, y in zip(
        np.asarray(baseline.class_names)[keep], counts[keep], delta[keep], strict=True
    ):
        ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("pixels of the class (log scale)")
    ax.set_ylabel("IoU gain (%)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
