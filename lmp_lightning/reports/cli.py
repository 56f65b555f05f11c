"""``lmp-seg compare BASELINE RUN [--out DIR]``: the per-class comparison of two runs, or of two
configurations over several seeds (``--baseline FILE... --run FILE...``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lmp_lightning.reports.compare import (
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

__all__ = ["compare_main", "comparison_report"]


def comparison_report(
    baseline: ClassResults | Sequence[ClassResults],
    run: ClassResults | Sequence[ClassResults],
    names: tuple[str, str] = ("baseline", "run"),
) -> str:
    """The markdown report: the Tab. 3-style table (of the means over seeds), the Spearman
    correlation between gain and pixel count, and how much the baseline's worst classes would
    have to improve to match. With several results files on a side, also every class's mean ±
    std per side and the gain with its 95% interval (Welch's t over seeds)."""
    base_runs = [baseline] if isinstance(baseline, ClassResults) else list(baseline)
    runs = [run] if isinstance(run, ClassResults) else list(run)
    base, mean = mean_results(base_runs), mean_results(runs)
    delta = gains(base, mean)
    rho = spearman(delta, mean.pixel_counts)
    lines = [f"# {names[1]} against {names[0]}", ""]
    if len(base_runs) > 1 or len(runs) > 1:
        comparison = compare_seeds(base_runs, runs)
        lines += [
            f"{names[0]}: {len(base_runs)} results files, {names[1]}: {len(runs)}. IoU (%) mean "
            "± standard deviation over them; gain of the means with Welch's 95% interval.",
            "",
            seed_table(comparison, names),
            "",
            "The same as a Tab. 3-style table of the means:",
            "",
        ]
    lines += [
        markdown_table(base, mean, names),
        "",
        f"mIoU: {100 * base.miou:.2f} -> {100 * mean.miou:.2f} "
        f"({100 * (mean.miou - base.miou):+.2f}); classes improved: "
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
    for k, each, feasible in match_analysis(base, mean):
        lines.append(f"| {k} | {each:+.2f} | {'yes' if feasible else 'no (past 100%)'} |")
    return "\n".join(lines) + "\n"


def compare_main(args: list[str]) -> None:
    """Writes ``gains.png`` and ``comparison.md`` into ``--out`` and prints the report."""
    parser = argparse.ArgumentParser(
        prog="lmp-seg compare",
        description="Per-class comparison of two results files "
        "(results_val.json or results_test.json, written by lmp-seg validate / test).",
    )
    parser.add_argument("files", nargs="*", help="BASELINE RUN: two results files")
    parser.add_argument(
        "--baseline", nargs="+", default=[], help="the baseline's results files, one per seed"
    )
    parser.add_argument(
        "--run", nargs="+", default=[], help="the compared run's results files, one per seed"
    )
    parser.add_argument("--names", nargs=2, help="labels of the two sides (default: folders)")
    parser.add_argument("--out", default="comparison", help="output folder (default: comparison)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    opts = parser.parse_args(args)
    if opts.files and (opts.baseline or opts.run):
        parser.error("give BASELINE RUN or --baseline FILE... --run FILE..., not both")
    if opts.files:
        if len(opts.files) != 2:
            parser.error(
                f"expected two results files (BASELINE RUN), got {len(opts.files)}; for several "
                "seeds per side use --baseline FILE... --run FILE..."
            )
        opts.baseline, opts.run = [opts.files[0]], [opts.files[1]]
    if not opts.baseline or not opts.run:
        parser.error("need BASELINE RUN, or --baseline FILE... and --run FILE...")
    baseline = [ClassResults.load(f) for f in opts.baseline]
    run = [ClassResults.load(f) for f in opts.run]
    out = Path(opts.out)
    targets = [out / "gains.png", out / "comparison.md"]
    for target in targets:
        if target.exists() and not opts.overwrite:
            raise FileExistsError(f"{target} exists; choose another --out or pass --overwrite")
    if opts.names:
        names = (opts.names[0], opts.names[1])
    else:
        names = (_label(opts.baseline, "baseline"), _label(opts.run, "run"))
        if names[0] == names[1]:
            names = ("baseline", "run")
    report = comparison_report(baseline, run, names)
    plot_gains(baseline, run, targets[0], title=f"IoU gain of {names[1]} over {names[0]}")
    targets[1].write_text(report)
    print(report)
    print(f"Written: {targets[0]}, {targets[1]}")


def _label(files: list[str], default: str) -> str:
    """The folder name of a side's files when they share one."""
    folders = {Path(f).parent.name for f in files}
    return folders.pop() if len(folders) == 1 and "" not in folders else default
