"""Per-class reports: results files, gains against pixel counts (Fig. 3), Tab. 3 tables."""

from lmp_lightning.reports.compare import (
    SeedComparison,
    compare_seeds,
    gains,
    markdown_table,
    match_analysis,
    mean_results,
    plot_gains,
    seed_table,
    spearman,
)
from lmp_lightning.reports.results import ClassResults

__all__ = [
    "ClassResults",
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
