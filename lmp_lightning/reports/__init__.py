"""Per-class reports: results files, gains against pixel counts (Fig. 3), Tab. 3 tables."""

from lmp_lightning.reports.compare import (
    gains,
    markdown_table,
    match_analysis,
    plot_gains,
    spearman,
)
from lmp_lightning.reports.results import ClassResults

__all__ = ["ClassResults", "gains", "markdown_table", "match_analysis", "plot_gains", "spearman"]
