"""The CamVid study, third round, stage 2 (docs/results/camvid.md): val mIoU against training
steps, and the gain of LMP + sampler over BASE+ at round two's budget and at this one.

    python benchmarks/camvid_round3_report.py [--runs runs/camvid_round3]
        [--results docs/results/camvid/round3]

Reads the val curves of the runs of ``benchmarks/camvid_round3_final.sh`` from their CSV logs
(kept in ``<results>/curves_steps.json``, so that a clone without ``runs/`` still reports) and
their results files (``<results>/runs/<variant>_seed<s>.json``), and writes ``<results>/curves.png``
and ``<results>/summary_steps.md`` (also printed). Any subset of the runs, finished or not, will do.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import sys
from pathlib import Path

import numpy as np

from lmp_lightning.reports import ClassResults, compare_seeds, mean_results, seed_table

ROOT = Path(__file__).resolve().parents[1]
LABELS = {"base_plus": "BASE+", "lmp": "LMP + sampler", "base": "BASE", "lmp_only": "LMP only"}
EXPECTED = {"base_plus": (0, 1, 2), "lmp": (0, 1, 2), "base": (0,), "lmp_only": (0,)}
"""The runs of benchmarks/camvid_round3_final.sh."""
STEPS_PER_EPOCH = 45
ROUND2_STEPS = 14 * STEPS_PER_EPOCH  # round two's 630 steps
FINAL_STEPS = 96 * STEPS_PER_EPOCH  # this round's 4320
PAIR = ("base_plus", "lmp")  # BASE+ and LMP + sampler, the comparison
ROUND2 = ROOT / "docs" / "results" / "camvid" / "runs"  # round two's results files
CURVES, SUMMARY = "curves_steps.json", "summary_steps.md"
"""Not ``curves.json`` and ``summary.md``: ``camvid_study.py report``, the last line of
benchmarks/camvid_round3_final.sh, writes those in the same folder (its curves by epoch)."""
Values = dict[str, dict[int, tuple[float, str]]]
"""``{variant: {seed: (val mIoU in [0, 1], where it comes from)}}``"""


def _split(key: str) -> tuple[str, int]:
    variant, seed = key.rsplit("_seed", 1)
    return variant, int(seed)


def read_curves(results: Path, runs: Path) -> dict[str, list[list[float]]]:
    """Val mIoU at every validation, ``{"<variant>_seed<s>": [[step, miou], ...]}``, from all the
    CSV logs of each run (a later version overrides an epoch), merged into :data:`CURVES`.

    ``step`` is the number of training steps done: the CSV's ``step`` column plus one (it holds
    the index of the last one, 629 after 630 steps). Not (epoch + 1) x 45: a resume of the pinned
    code from an epoch-end checkpoint could count an epoch without training in it
    (benchmarks/camvid_round3_pinned.sh), and such a run's epochs end at other steps."""
    path = results / CURVES
    curves: dict[str, list[list[float]]] = json.loads(path.read_text()) if path.exists() else {}
    curves = {k: v for k, v in curves.items() if _split(k)[0] in LABELS}
    for variant in LABELS:
        for folder in sorted((runs / variant).glob("seed*")):
            points: dict[int, float] = {}
            logs = folder.glob("lightning_logs/version_*/metrics.csv")
            for log in sorted(logs, key=lambda p: int(p.parent.name.rsplit("_", 1)[1])):
                with log.open() as f:
                    for row in csv.DictReader(f):
                        if row.get("val/mIoU"):
                            points[int(row["step"]) + 1] = float(row["val/mIoU"])
            if points:
                curves[f"{variant}_{folder.name}"] = [[s, points[s]] for s in sorted(points)]
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(curves, indent=1, sort_keys=True) + "\n")
    return curves


def read_results(results: Path) -> dict[str, tuple[ClassResults, dict]]:
    """Each finished run's results file (the last checkpoint validated) and its meta file."""
    found = {}
    for path in sorted((results / "runs").glob("*_seed*.json")):
        if not path.name.endswith(".meta.json") and _split(path.stem)[0] in LABELS:
            meta = path.with_suffix(".meta.json")
            found[path.stem] = (
                ClassResults.load(path),
                json.loads(meta.read_text()) if meta.exists() else {},
            )
    return found


def plot(
    curves: dict[str, list[list[float]]], path: Path, finished: set[str] | None = None
) -> None:
    """Val mIoU (%) against steps: each seed thin, each variant's mean thick (over its seeds in
    ``finished`` where it has any, else over all, at the steps they all reached, a seed without
    a validation at a step read between its neighbours: see :func:`_at`), the variants without
    the sampler dashed; 900x500 px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    for variant, label in LABELS.items():
        keys = [k for k in sorted(curves) if variant == _split(k)[0]]
        seeds = [{int(s): v for s, v in curves[k]} for k in keys]
        if not seeds:
            continue
        style = "-" if variant in PAIR else "--"
        colour = "tab:blue" if variant.startswith("base") else "tab:orange"
        for points in seeds:
            steps = sorted(points)
            y = [100 * points[s] for s in steps]
            ax.plot(steps, y, style, color=colour, linewidth=0.8, alpha=0.45)
        done = [p for k, p in zip(keys, seeds, strict=True) if k in (finished or ())] or seeds
        reached = min(max(p) for p in done)  # every seed's curve, read at the same steps
        common = [s for s in sorted(set().union(*done)) if s <= reached]
        mean = [100 * float(np.mean([_at(p, s)[0] for p in done])) for s in common]
        n = len(done)
        legend = f"{label}, mean of {n} seed{'s' * (n > 1)}"
        ax.plot(common, mean, style, color=colour, linewidth=2.4, label=legend)
    ax.axvline(ROUND2_STEPS, color="0.3", linestyle=":", linewidth=1.2)
    ax.text(ROUND2_STEPS + 40, 0.03, "round two's budget", fontsize=11, color="0.3",
            transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_xlim(0, FINAL_STEPS + 60)
    ax.set_xlabel("training steps (batch 8)", fontsize=11)
    ax.set_ylabel("val mIoU (%)", fontsize=11)
    ax.set_title("CamVid val mIoU during training, third round (thin: seeds)", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _at(points: dict[int, float], step: int) -> tuple[float, str]:
    """A curve's val mIoU at ``step``: its validation there, or the straight line between the
    validations either side, with a note naming them (``""`` for a validation)."""
    if step in points:
        return points[step], ""
    before, after = max(s for s in points if s < step), min(s for s in points if s > step)
    value = float(np.interp(step, [before, after], [points[before], points[after]]))
    return value, f"between steps {before} and {after}"


def _gain(base: list[float], run: list[float]) -> tuple[str, str]:
    """The gain of the means (points) and its Welch 95% interval: ``compare_seeds`` on the mIoU
    values (in [0, 1]) as one-class results."""
    if not base or not run:
        return "n/a", "(no run on one side yet)"
    a, b = ([ClassResults(["mIoU"], [v], [0], v) for v in side] for side in (base, run))
    c = compare_seeds(a, b)
    gain, low, high = 100 * c.gain[-1], 100 * c.low[-1], 100 * c.high[-1]
    if min(len(base), len(run)) < 2:
        return f"{gain:+.2f}", "n/a (one seed)"
    return f"{gain:+.2f}", "n/a" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _values(table: Values, variant: str) -> list[float]:
    return [v for v, _ in table.get(variant, {}).values()]


def budget_table(values: Values) -> list[str]:
    out = [
        "| variant | seeds | val mIoU per seed (%) | mean ± std (%) | gain over BASE+ (points) "
        "| Welch 95% interval |",
        "|---|---|---|---:|---:|---|",
    ]
    base = _values(values, "base_plus")
    for variant, label in LABELS.items():
        seeds = values.get(variant, {})
        if not seeds:
            continue
        mious = [100 * v for v, _ in seeds.values()]
        std = f"{np.std(mious, ddof=1):.2f}" if len(mious) > 1 else "n/a"
        per = ", ".join(
            f"{100 * v:.2f}" + (f" ({note})" if note else "") for v, note in seeds.values()
        )
        gain, ci = ("", "") if variant == "base_plus" else _gain(base, _values(values, variant))
        out.append(
            f"| {label} | {', '.join(map(str, seeds))} | {per} | {np.mean(mious):.2f} ± "
            f"{std} | {gain} | {ci} |"
        )
    return out


def report(results: Path, runs: Path, command: str) -> str:
    curves = read_curves(results, runs)
    finals = read_results(results)
    plot(curves, results / "curves.png", set(finals))
    at630: Values = {}
    final: Values = {}
    for key in sorted(
        set(curves) | set(finals), key=lambda k: (list(LABELS).index(_split(k)[0]), k)
    ):
        variant, seed = _split(key)
        points = {int(s): v for s, v in curves.get(key, [])}
        if points and min(points) <= ROUND2_STEPS <= max(points):
            at630.setdefault(variant, {})[seed] = _at(points, ROUND2_STEPS)
        if key in finals:
            final.setdefault(variant, {})[seed] = (finals[key][0].miou, "")
        elif points and max(points) >= FINAL_STEPS:  # an unfinished run counts at Runs only
            final.setdefault(variant, {})[seed] = (points[max(points)], "curve")
    gains = [" ".join(_gain(*[_values(t, v) for v in PAIR])) for t in (at630, final)]
    old = [[ClassResults.load(f).miou for f in ROUND2.glob(f"{v}_seed?.json")] for v in PAIR]
    round2 = " ".join(_gain(*old))
    out = [
        "# CamVid study, third round: val mIoU against training steps",
        "",
        f"Made by `{command}` on {datetime.datetime.now(datetime.timezone.utc).date()} (UTC). "
        f"96 epochs of 45 steps ({FINAL_STEPS} steps), validation every 2 epochs, 176x176 crops "
        "(`benchmarks/camvid_round3_final.sh`).",
        "",
        "![val mIoU against training steps](curves.png)",
        "",
        f"LMP + sampler minus BASE+, val mIoU (points, Welch 95% interval over seeds): "
        f"{gains[0]} at round two's budget ({ROUND2_STEPS} steps), {gains[1]} at this round's "
        f"({FINAL_STEPS} steps).",
        "",
        f"## At round two's budget ({ROUND2_STEPS} steps)",
        "",
        f"Step {ROUND2_STEPS} of this round's schedule is not a {ROUND2_STEPS}-step run: the poly "
        f"decay still holds {100 * (1 - ROUND2_STEPS / FINAL_STEPS) ** 0.9:.0f}% of the rate, and "
        "the crops (176 against 128) and rates (stage 1's best) are not round two's, whose "
        f"{ROUND2_STEPS}-step runs gave a gain of {round2} (docs/results/camvid.md).",
        "",
        *budget_table(at630),
        *(
            [
                "",
                "A value marked with two steps is read on the straight line between the run's "
                "validations at those steps: the run had none at this step (see Runs).",
            ]
            if any(note for seeds in at630.values() for _, note in seeds.values())
            else []
        ),
        "",
        f"## At this round's budget ({FINAL_STEPS} steps)",
        "",
        "The results file of each finished run (its last checkpoint validated on the 101 val "
        "frames; a run without one gives its curve's validation at this step, marked). Runs "
        "still under way count here once they finish (see Runs).",
        "",
        *budget_table(final),
    ]
    if any(note for seeds in final.values() for _, note in seeds.values()):
        out += ["", "A value marked curve is the run's last validation (no results file)."]
    pair = [[finals[k][0] for k in finals if _split(k)[0] == v] for v in PAIR]
    have = [(LABELS[v], r) for v, r in zip(PAIR, pair, strict=True) if r]
    if have:
        names = have[0][1][0].class_names
        out += [
            "",
            f"## Per-class IoU (%) at {FINAL_STEPS} steps, mean over seeds",
            "",
            "| variant | seeds | " + " | ".join(names) + " | mIoU |",
            "|---|---:|" + "---:|" * (len(names) + 1),
        ]
        for label, side in have:
            mean = mean_results(side)
            cells = " | ".join(f"{100 * v:.1f}" for v in mean.iou)
            out.append(f"| {label} | {len(side)} | {cells} | {100 * mean.miou:.1f} |")
    if len(have) == 2:
        out += [
            "",
            "Per class, LMP + sampler against BASE+ (mean ± std over seeds, Welch 95%):",
            "",
            seed_table(compare_seeds(pair[0], pair[1]), ("BASE+", "LMP + sampler")),
        ]
    out += ["", "## Runs", ""]
    for variant, seeds in EXPECTED.items():
        for seed in sorted(set(seeds) | set(final.get(variant, {}))):
            key = f"{variant}_seed{seed}"
            if key in finals:
                step = finals[key][1].get("global_step", "?")
                state = f"finished (results file, step {step})"
            elif key in curves:
                state = f"running or stopped: last validation at step {int(curves[key][-1][0])}"
            else:
                state = "missing (not started)"
            out.append(f"- {LABELS[variant]} seed {seed} (`{key}`): {state}")
    text = "\n".join(out) + "\n"
    (results / SUMMARY).write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "camvid_round3")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "docs" / "results" / "camvid" / "round3"
    )
    opts = parser.parse_args()
    command = " ".join(["python benchmarks/camvid_round3_report.py", *sys.argv[1:]])
    print(report(opts.results, opts.runs, command))


if __name__ == "__main__":
    main()
