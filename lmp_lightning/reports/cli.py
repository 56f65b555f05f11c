"""``lmp-seg compare BASELINE RUN [--out DIR]``: the per-class comparison of two runs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lmp_lightning.reports.compare import (
    gains,
    markdown_table,
    match_analysis,
    plot_gains,
    spearman,
)
from lmp_lightning.reports.results import ClassResults

__all__ = ["compare_main", "comparison_report"]


def comparison_report(
    baseline: ClassResults, run: ClassResults, names: tuple[str, str] = ("baseline", "run")
) -> str:
    """The markdown report: the Tab. 3-style table, the Spearman correlation between gain and
    pixel count, and how much the baseline's worst classes would have to improve to match."""
    delta = gains(baseline, run)
    rho = spearman(delta, run.pixel_counts)
    lines = [
        f"# {names[1]} against {names[0]}",
        "",
        markdown_table(baseline, run, names),
        "",
        f"mIoU: {100 * baseline.miou:.2f} -> {100 * run.miou:.2f} "
        f"({100 * (run.miou - baseline.miou):+.2f}); classes improved: "
        f"{int(np.sum(delta > 0))} of {int(np.sum(np.isfinite(delta)))}.",
        "",
        f"Spearman correlation between gain and pixel count: {rho:.3f} "
        "(negative: the gains concentrate on the classes with fewer pixels).",
        "",
        f"To match {names[1]}, {names[0]}'s k worst classes would each have to improve by:",
        "",
        "| k worst classes | IoU points each | possible |",
        "|---:|---:|---|",
    ]
    for k, each, feasible in match_analysis(baseline, run):
        lines.append(f"| {k} | {each:+.2f} | {'yes' if feasible else 'no (past 100%)'} |")
    return "\n".join(lines) + "\n"


def compare_main(args: list[str]) -> None:
    """Writes ``gains.png`` and ``comparison.md`` into ``--out`` and prints the report."""
    parser = argparse.ArgumentParser(
        prog="lmp-seg compare",
        description="Per-class comparison of two results files "
        "(results_val.json or results_test.json, written by lmp-seg validate / test).",
    )
    parser.add_argument("baseline", help="the baseline's results file (e.g. BASE+)")
    parser.add_argument("run", help="the compared run's results file (e.g. LMP)")
    parser.add_argument("--out", default="comparison", help="output folder (default: comparison)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    opts = parser.parse_args(args)
    baseline, run = ClassResults.load(opts.baseline), ClassResults.load(opts.run)
    out = Path(opts.out)
    targets = [out / "gains.png", out / "comparison.md"]
    for target in targets:
        if target.exists() and not opts.overwrite:
            raise FileExistsError(f"{target} exists; choose another --out or pass --overwrite")
    names = (Path(opts.baseline).parent.name or "baseline", Path(opts.run).parent.name or "run")
    if names[0] == names[1]:
        names = ("baseline", "run")
    report = comparison_report(baseline, run, names)
    plot_gains(baseline, run, targets[0], title=f"IoU gain of {names[1]} over {names[0]}")
    targets[1].write_text(report)
    print(report)
    print(f"Written: {targets[0]}, {targets[1]}")
