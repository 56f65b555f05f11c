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
        _summary(base, mean, delta, names),
        "",
        f"Spearman correlation between gain and pixel count: {rho:.3f} "
        "(negative: the fewer pixels a class has, the more it gained or the less it lost).",
    ]
    if mean.miou <= base.miou:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"To match {names[1]}, {names[0]}'s k worst classes would each have to improve by:",
        "",
        "| k worst classes | IoU points each | possible |",
        "|---:|---:|---|",
    ]
    for k, each, feasible in match_analysis(base, mean):
        lines.append(f"| {k} | {each:+.2f} | {'yes' if feasible else 'no (past 100%)'} |")
    return "\n".join(lines) + "\n"


def _summary(
    base: ClassResults, run: ClassResults, delta: np.ndarray, names: tuple[str, str]
) -> str:
    """One sentence on the mIoU change and the classes that rose and fell, worded by sign."""
    change = 100 * (run.miou - base.miou)
    finite = delta[np.isfinite(delta)]
    up, down = int(np.sum(finite > 0)), int(np.sum(finite < 0))
    if change > 0:
        verdict = f"{names[1]} is {change:.2f} mIoU points better than {names[0]}"
    elif change < 0:
        verdict = f"{names[1]} is {-change:.2f} mIoU points worse than {names[0]}"
    else:
        verdict = f"{names[1]} and {names[0]} have the same mIoU"
    return (
        f"mIoU: {100 * base.miou:.2f} -> {100 * run.miou:.2f}: {verdict}; of {finite.size} "
        f"classes, {up} rose and {down} fell."
    )


def compare_main(args: list[str]) -> None:
    """Writes ``gains.png`` and ``comparison.md`` into ``--out`` and prints the report."""
    parser = argparse.ArgumentParser(
        prog="lmp-seg compare",
        description="Per-class comparison of two results files "
        "(results_val.json or results_test.json, written by lmp-seg fit, validate or test).",
    )
    parser.add_argument("files", nargs="*", help="BASELINE RUN: two results files")
    parser.add_argument(
        "--baseline", nargs="+", default=[], help="the baseline's results files, one per seed"
    )
    parser.add_argument(
        "--run", nargs="+", default=[], help="the compared run's results files, one per seed"
    )
    parser.add_argument(
        "--names",
        nargs=2,
        help="labels of the two sides (default: the runs' configurations, losses or folders)",
    )
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
    names = (opts.names[0], opts.names[1]) if opts.names else _names(opts, baseline, run)
    report = comparison_report(baseline, run, names)
    plot_gains(baseline, run, targets[0], title=f"IoU gain of {names[1]} over {names[0]}")
    targets[1].write_text(report)
    print(report)
    print(f"Written: {targets[0]}, {targets[1]}")


def _names(
    opts: argparse.Namespace, baseline: list[ClassResults], run: list[ClassResults]
) -> tuple[str, str]:
    """Each side's name: the run it came from (its configuration, as ``lmp-seg`` records it),
    else its loss; with the folder added where that leaves both sides alike, else the folder
    alone; ``baseline`` and ``run`` when nothing tells them apart."""
    folders = (
        _shared({Path(f).parent.name for f in opts.baseline}),
        _shared({Path(f).parent.name for f in opts.run}),
    )
    for describe in (_run_name, _loss_name):
        found = (describe(baseline), describe(run))
        if found[0] and found[1]:
            if found[0] != found[1]:
                return found[0], found[1]
            if folders[0] and folders[1] and folders[0] != folders[1]:
                return f"{found[0]} ({folders[0]})", f"{found[1]} ({folders[1]})"
    if folders[0] and folders[1] and folders[0] != folders[1]:
        return folders[0], folders[1]
    return "baseline", "run"


def _shared(values: set) -> str | None:
    """The one value of a side, or ``None``."""
    return str(values.pop()) if len(values) == 1 and "" not in values else None


def _run_name(side: list[ClassResults]) -> str | None:
    return _shared({r.run for r in side}) if all(r.run for r in side) else None


def _loss_name(side: list[ClassResults]) -> str | None:
    paths = {str(r.config.get("loss", {}).get("class_path", "")) for r in side}
    name = _shared(paths)
    return name.rsplit(".", 1)[-1] if name else None
