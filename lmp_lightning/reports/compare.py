"""Per-class comparison of two runs: gains against pixel counts (Fig. 3 of Rota Bulò et al.
2017), a Tab. 3-style table, the Spearman correlation and the "worst classes" analysis."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmp_lightning.reports.results import ClassResults

__all__ = [
    "SeedComparison",
    "compare_seeds",
    "gains",
    "markdown_table",
    "match_analysis",
    "mean_results",
    "plot_gains",
    "seed_table",
    "spearman",
]


def _check(baseline: ClassResults, run: ClassResults) -> None:
    if baseline.class_names != run.class_names:
        raise ValueError(
            f"the runs have different classes: {baseline.class_names} and {run.class_names}"
        )


def gains(baseline: ClassResults, run: ClassResults) -> np.ndarray:
    """Per-class IoU gain of ``run`` over ``baseline``, in IoU points (NaN where either is)."""
    _check(baseline, run)
    return np.asarray(run.iou, dtype=float) - np.asarray(baseline.iou, dtype=float)


def spearman(x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float]) -> float:
    """Spearman's rank correlation over the pairs where both are finite (``scipy.stats.spearmanr``:
    ties share their average rank); NaN with fewer than 3 pairs or a constant side.

    scipy rather than torchmetrics' ``spearman_corrcoef``, whose ``eps`` in the denominator
    turns a perfect 1.0 into 0.999999 (and which ranks in float32).

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 25, 100])
        1.0
        >>> spearman([1, 2, 3], [3, 1, 2])
        -0.5
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return round(float(spearmanr(x, y).statistic), 12)  # 1.0 stays 1.0 in tables


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


def mean_results(runs: Sequence[ClassResults]) -> ClassResults:
    """Per-class IoU and mIoU averaged over runs (seeds) of one configuration.

    Raises:
        ValueError: no run, or runs with different classes.
    """
    if not runs:
        raise ValueError("need at least one results file")
    for other in runs[1:]:
        _check(runs[0], other)
    if len(runs) == 1:
        return runs[0]
    iou = np.array([r.iou for r in runs], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from every run
        mean = np.nanmean(iou, axis=0)
    return ClassResults(
        class_names=list(runs[0].class_names),
        iou=mean.tolist(),
        pixel_counts=list(runs[0].pixel_counts),
        miou=float(np.mean([r.miou for r in runs])),
        split=runs[0].split,
        config={"mean_of": [r.checkpoint for r in runs]},
    )


@dataclass
class SeedComparison:
    """Two configurations, each evaluated over one or more seeds: per class and for the mIoU
    (the last entry of every array), the mean and standard deviation (``ddof=1``) of each side,
    the gain of the means and its confidence interval (Welch's t over seeds; NaN unless both
    sides have two or more values). IoU in [0, 1].
    """

    class_names: list[str]
    pixel_counts: np.ndarray
    n: tuple[int, int]
    baseline_mean: np.ndarray
    baseline_std: np.ndarray
    run_mean: np.ndarray
    run_std: np.ndarray
    gain: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float


def _table(runs: Sequence[ClassResults]) -> np.ndarray:
    """``(runs, C + 1)``: the per-class IoU of every run, its mIoU last."""
    return np.array([[*r.iou, r.miou] for r in runs], dtype=float)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(finite.std(ddof=1)) if finite.size > 1 else math.nan


def compare_seeds(
    baseline: Sequence[ClassResults], run: Sequence[ClassResults], confidence: float = 0.95
) -> SeedComparison:
    """Compares a baseline and a run, each given as the results of one or more seeds.

    The interval of each gain is Welch's t interval on the difference of the means
    (``scipy.stats.ttest_ind(..., equal_var=False)``), over the seeds where the class has an IoU.

    Raises:
        ValueError: a side without results, or results with different classes.

    Example:
        >>> a = [ClassResults(["x", "y"], [0.5, v], [10, 1], (0.5 + v) / 2) for v in (0.1, 0.2)]
        >>> b = [ClassResults(["x", "y"], [0.5, v], [10, 1], (0.5 + v) / 2) for v in (0.4, 0.5)]
        >>> c = compare_seeds(a, b)
        >>> [round(float(g), 3) for g in c.gain], c.n
        ([0.0, 0.3, 0.15], (2, 2))
    """
    from scipy import stats

    if not baseline or not run:
        raise ValueError("each side needs at least one results file")
    for other in (*baseline[1:], *run):
        _check(baseline[0], other)
    a, b = _table(baseline), _table(run)
    columns = a.shape[1]
    out = {k: np.full(columns, math.nan) for k in ("bm", "bs", "rm", "rs", "low", "high")}
    for j in range(columns):
        x, y = a[:, j][np.isfinite(a[:, j])], b[:, j][np.isfinite(b[:, j])]
        out["bm"][j], out["bs"][j] = _mean_std(x)
        out["rm"][j], out["rs"][j] = _mean_std(y)
        if x.size > 1 and y.size > 1 and (x.std() > 0 or y.std() > 0):
            interval = stats.ttest_ind(y, x, equal_var=False).confidence_interval(confidence)
            out["low"][j], out["high"][j] = float(interval.low), float(interval.high)
    return SeedComparison(
        class_names=list(baseline[0].class_names),
        pixel_counts=np.asarray(run[0].pixel_counts, dtype=float),
        n=(len(baseline), len(run)),
        baseline_mean=out["bm"],
        baseline_std=out["bs"],
        run_mean=out["rm"],
        run_std=out["rs"],
        gain=out["rm"] - out["bm"],
        low=out["low"],
        high=out["high"],
        confidence=confidence,
    )


def seed_table(comparison: SeedComparison, names: tuple[str, str] = ("baseline", "run")) -> str:
    """A markdown table, one row per class and one for the mIoU: pixels, each side's mean ± std
    over seeds and the gain with its confidence interval (IoU %)."""

    def pm(mean: float, std: float) -> str:
        if math.isnan(mean):
            return "-"
        return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")

    level = f"{100 * comparison.confidence:.0f}%"
    lines = [
        f"| class | pixels | {names[0]} (n={comparison.n[0]}) | {names[1]} (n={comparison.n[1]}) "
        f"| gain | {level} interval |",
        "|---|---:|---:|---:|---:|---|",
    ]
    labels = [*comparison.class_names, "mIoU"]
    counts = [f"{int(c)}" for c in comparison.pixel_counts] + [""]
    for j, label in enumerate(labels):
        gain = comparison.gain[j]
        low, high = comparison.low[j], comparison.high[j]
        interval = "-" if math.isnan(low) else f"[{100 * low:+.2f}, {100 * high:+.2f}]"
        base = pm(comparison.baseline_mean[j], comparison.baseline_std[j])
        lines.append(
            f"| {label} | {counts[j]} | {base}"
            f" | {pm(comparison.run_mean[j], comparison.run_std[j])} | "
            f"{'-' if math.isnan(gain) else f'{100 * gain:+.2f}'} | {interval} |"
        )
    return "\n".join(lines)


def plot_gains(
    baseline: ClassResults | Sequence[ClassResults],
    run: ClassResults | Sequence[ClassResults],
    path: str | Path,
    title: str = "Per-class IoU gain against pixel count",
) -> Path:
    """Fig. 3: gain (IoU %, y) against the pixel count of the class in the evaluated split (x,
    log scale, the run's counts), with labelled points. With several results files per side,
    the gain is that of the means over seeds, with its 95% interval as error bars.

    Written as a 1200x800 PNG with matplotlib's Agg backend (no display needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comparison = compare_seeds(
        [baseline] if isinstance(baseline, ClassResults) else baseline,
        [run] if isinstance(run, ClassResults) else run,
    )
    delta = 100 * comparison.gain[:-1]
    low, high = 100 * comparison.low[:-1], 100 * comparison.high[:-1]
    counts = comparison.pixel_counts
    fig, ax = plt.subplots(figsize=(6, 4), dpi=200)
    keep = np.isfinite(delta) & (counts > 0)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    bars = keep & np.isfinite(low)
    if bars.any():
        ax.errorbar(
            counts[bars],
            delta[bars],
            yerr=np.stack([delta[bars] - low[bars], high[bars] - delta[bars]]),
            fmt="none",
            ecolor="0.5",
            elinewidth=0.8,
            capsize=2,
        )
    ax.scatter(
        counts[keep],
        delta[keep],
        color=np.where(delta[keep] >= 0, "tab:green", "tab:red"),
        zorder=3,
    )
    for name, x, y in zip(
        np.asarray(comparison.class_names)[keep], counts[keep], delta[keep], strict=True
    ):
        ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("pixels of the class (log scale)")
    ax.set_ylabel("IoU gain (%)" + (", 95% interval over seeds" if bars.any() else ""))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
