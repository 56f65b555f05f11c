"""The CamVid study (docs/results/camvid.md): every variant, every seed, resumable.

    python benchmarks/camvid_study.py run --seeds 0 1 2      # trains what is not finished yet
    python benchmarks/camvid_study.py report                 # tables, Fig. 3, Spearman
    python benchmarks/camvid_study.py export --variants base_plus lmp   # typical seeds -> zoo/

``run`` goes seed by seed through the variants (so an interrupted study still has complete seeds).
A run is ``lmp-seg fit --config configs/camvid/<variant>.yaml --seed_everything <seed>``, in
``runs/camvid_study/<variant>/seed<seed>``. A run that was interrupted resumes from its newest
``last.ckpt`` (model, optimiser, schedule, sampler state). A finished run's final checkpoint is then
evaluated with ``lmp-seg validate``; its ``results_val.json`` and a ``.meta.json`` (wall time,
commands, checkpoint) are copied to ``docs/results/camvid/runs/`` at once. Runs whose results are
there are skipped. The reported model is the last epoch's (no selection on val).

``report`` reads ``docs/results/camvid/runs/`` and writes ``summary.md`` (mIoU mean and standard
deviation per variant, the per-class table, training times), the per-variant mean results files,
and ``fig3/`` (``lmp-seg compare`` of LMP + sampler against BASE+).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmp_lightning.checkpoints import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
RARE = ("Pole", "SignSymbol", "Pedestrian", "Bicyclist", "Fence")
"""The issue's under-represented classes (each under 3% of the train pixels)."""
VARIANTS = {
    "base": "BASE",
    "base_plus": "BASE+",
    "lmp_only": "LMP",
    "lmp": "LMP + sampler",
    "lall": "LALL (k5, k=3)",
}


def _lmp_seg() -> list[str]:
    exe = Path(sys.executable).with_name("lmp-seg")
    return (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from lmp_lightning.cli import main; main()"]
    )


def _commit() -> str:
    """The checked-out commit, with ``+dirty`` when the working tree has changes."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True)  # fmt: skip
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _call(cmd: list[str]) -> tuple[int, int | None]:
    """Runs ``cmd`` to its end: ``(exit status, the signal this script got meanwhile or None)``.

    A SIGTERM or SIGINT that reaches this script while ``cmd`` runs waits for ``cmd`` to stop (a
    fit stopped by ``kill -TERM -- -PGID`` or Ctrl-C gets the signal itself, saves ``last.ckpt``
    and exits), so that the caller can still record the fit's time and command."""
    got: list[int] = []
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in handlers:
        signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        code = subprocess.call(cmd, cwd=ROOT)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return code, got[0] if got else None


def _newest_last(folder: Path) -> Path | None:
    found = sorted(folder.glob("**/checkpoints/last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _max_epochs(config: Path, extra: list[str]) -> int:
    import yaml

    for arg in extra:
        if arg.startswith("--trainer.max_epochs="):
            return int(arg.split("=", 1)[1])
    return int(yaml.safe_load(config.read_text())["trainer"]["max_epochs"])


def _epochs_done(ckpt: Path | None) -> int:
    """Training epochs finished when ``ckpt`` was written (0 without a checkpoint).

    A fit that Lightning stopped on SIGTERM exits with status 0, so the status alone does not
    say whether a run finished."""
    if ckpt is None:
        return 0
    state = load_checkpoint(ckpt, mmap=True)
    progress = state["loops"]["fit_loop"]["epoch_progress"]["total"]
    return max(int(progress["processed"]), int(progress["completed"]))


def run_one(
    variant: str, seed: int, runs: Path, results: Path, extra: list[str], tag: str = ""
) -> None:
    """Trains (or resumes) and evaluates one run; ``tag`` names a tuning run of ``variant``
    (its results file is ``<variant><tag>_seed<seed>.json``)."""
    target = results / "runs" / f"{variant}{tag}_seed{seed}.json"
    if target.exists():
        print(f"[study] {variant}{tag} seed {seed}: done ({target})", flush=True)
        return
    config = ROOT / "configs" / "camvid" / f"{variant}.yaml"
    folder = runs / f"{variant}{tag}" / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta = (
        json.loads(meta_path.read_text())
        if meta_path.exists()
        else {"fit_seconds": 0.0, "fit_commands": []}
    )
    max_epochs = _max_epochs(config, extra)
    last = _newest_last(folder)
    if _epochs_done(last) < max_epochs:
        cmd = [
            *_lmp_seg(),
            "fit",
            "--config",
            str(config.relative_to(ROOT)),
            f"--seed_everything={seed}",
            f"--data.root={CAMVID}",
            f"--trainer.default_root_dir={folder}",
            *extra,
        ]
        if last is not None:
            cmd.append(f"--ckpt_path={last}")
        print(f"[study] {variant} seed {seed}: {' '.join(cmd)}", flush=True)
        commit = _commit()  # the code the fit runs
        start = time.perf_counter()
        code, stopped_by = _call(cmd)
        meta["fit_seconds"] += time.perf_counter() - start
        meta["fit_commands"].append(" ".join(cmd[len(_lmp_seg()) :]))
        meta.setdefault("fit_commits", []).append(commit)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        last = _newest_last(folder)
        if stopped_by is not None:
            raise SystemExit(
                f"[study] {variant} seed {seed}: stopped by {signal.Signals(stopped_by).name} "
                f"after {_epochs_done(last)} of {max_epochs} epochs; run again to resume"
            )
        if code != 0 or _epochs_done(last) < max_epochs:
            raise SystemExit(
                f"[study] {variant} seed {seed}: fit stopped (exit status {code}) after "
                f"{_epochs_done(last)} of {max_epochs} epochs; run again to resume"
            )
    final = folder / "final"
    if final.exists():
        shutil.rmtree(final)
    cmd = [
        *_lmp_seg(),
        "validate",
        "--config",
        str(config.relative_to(ROOT)),
        f"--seed_everything={seed}",
        f"--data.root={CAMVID}",
        f"--ckpt_path={last}",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={final}",
        *extra,
    ]
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"[study] {variant} seed {seed}: validate exited with {code}")
    meta.update(
        variant=variant,
        seed=seed,
        max_epochs=max_epochs,
        global_step=int(load_checkpoint(last, mmap=True)["global_step"]),
        validate_seconds=time.perf_counter() - start,
        validate_command=" ".join(cmd[len(_lmp_seg()) :]),
        checkpoint=str(last.relative_to(ROOT) if last.is_relative_to(ROOT) else last),
        torch_threads=torch.get_num_threads(),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    (results / "runs" / f"{variant}{tag}_seed{seed}.meta.json").write_text(
        json.dumps(meta, indent=2) + "\n"
    )
    shutil.copyfile(final / "results_val.json", target)
    print(f"[study] {variant} seed {seed}: written {target}", flush=True)


TRAIN_PIXELS = {
    "Sky": 10682767,
    "Building": 14750079,
    "Pole": 623349,
    "Road": 20076880,
    "Pavement": 2845085,
    "Tree": 6166762,
    "SignSymbol": 743859,
    "Fence": 714595,
    "Car": 3719877,
    "Pedestrian": 405385,
    "Bicyclist": 184967,
}
"""Pixels per class in the train split, from ../shared/data/camvid/README.md."""


def _rare(result: Any) -> float:
    return float(np.mean([result.iou[result.class_names.index(n)] for n in RARE]))


def _gain_cell(baseline: list[float], run: list[float]) -> str:
    """``gain [low, high]``: difference of means with Welch's 95% interval (points)."""
    from scipy import stats

    gain = float(np.mean(run) - np.mean(baseline))
    if len(run) < 2 or len(baseline) < 2:
        return f"{gain:+.2f} [n/a]"
    ci = stats.ttest_ind(run, baseline, equal_var=False).confidence_interval(0.95)
    return f"{gain:+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]"


def tuning_report(results: Path) -> str:
    """A table of every tuning run (seed 0): its variant, the arguments that were tuned, its val
    mIoU and rare-class IoU and its fit time."""
    out = [
        "| run | variant | tuned arguments | val mIoU (%) | rare-class IoU (%) | fit (min) |",
        "|---|---|---|---:|---:|---:|",
    ]
    from lmp_lightning.reports import ClassResults

    for path in sorted((results / "runs").glob("*_seed*.json")):
        if path.name.endswith(".meta.json"):
            continue
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        result = ClassResults.load(path)
        command = meta["fit_commands"][0].split()
        tuned = " ".join(
            a
            for a in command
            if a.startswith(
                (
                    "--model.lr",
                    "--model.optimizer.lr",
                    "--model.loss.",
                    "--model.channels_last",
                    "--data.in_memory",
                    "--data.num_workers",
                    "--data.crop_size",
                    "--trainer.max_epochs",
                )
            )
        )
        out.append(
            f"| {path.stem} | {VARIANTS[meta['variant']]} | `{tuned}` | {100 * result.miou:.2f} "
            f"| {100 * _rare(result):.2f} | {meta['fit_seconds'] / 60:.1f} |"
        )
    text = "\n".join(out) + "\n"
    (results / "summary.md").write_text(text)
    return text


def _pm(mean: float, std: float) -> str:
    """``mean ± std``; the std is n/a for one seed."""
    return f"{mean:.2f} ± " + ("n/a" if np.isnan(std) else f"{std:.2f}")


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def _curves(results: Path, runs: Path) -> dict[str, list[list[float]]]:
    """Val mIoU at every validation of every run, ``{"<variant>_seed<s>": [[epoch, miou], ...]}``,
    from the runs' CSV logs (all versions, so resumed runs count) when they are present, kept in
    ``results/curves.json`` so that a clone without ``runs/`` still has them."""
    import csv

    path = results / "curves.json"
    curves: dict[str, list[list[float]]] = json.loads(path.read_text()) if path.exists() else {}
    for meta in sorted((results / "runs").glob("*.meta.json")):
        key = meta.name.removesuffix(".meta.json")
        variant, seed = key.rsplit("_seed", 1)
        points = {}
        for log in sorted((runs / variant / f"seed{seed}").glob("lightning_logs/*/metrics.csv")):
            for row in csv.DictReader(log.open()):
                if row.get("val/mIoU"):
                    points[int(row["epoch"]) + 1] = float(row["val/mIoU"])
        if points:
            curves[key] = [[e, points[e]] for e in sorted(points)]
    path.write_text(json.dumps(curves, indent=1) + "\n")
    return curves


def report(results: Path, runs_dir: Path = ROOT / "runs" / "camvid_study") -> str:
    from lmp_lightning.reports import ClassResults
    from lmp_lightning.reports.cli import comparison_report
    from lmp_lightning.reports.compare import plot_gains, spearman

    rows, means = [], {}
    names: list[str] = []
    for variant, label in VARIANTS.items():
        files = sorted((results / "runs").glob(f"{variant}_seed*.json"))
        files = [f for f in files if not f.name.endswith(".meta.json")]
        if not files:
            continue
        runs = [ClassResults.load(f) for f in files]
        metas = [json.loads(f.with_suffix(".meta.json").read_text()) for f in files]
        names = runs[0].class_names
        iou = np.array([r.iou for r in runs], dtype=float)
        mean = ClassResults(
            class_names=names,
            iou=np.nanmean(iou, axis=0).tolist(),
            pixel_counts=runs[0].pixel_counts,
            miou=float(np.mean([r.miou for r in runs])),
            config={
                "variant": variant,
                "seeds": [m["seed"] for m in metas],
                "runs": [f.name for f in files],
            },
        )
        mean.save(results / f"mean_{variant}.json")
        means[variant] = mean
        m, s = _mean_std([100 * r.miou for r in runs])
        minutes = [m_["fit_seconds"] / 60 for m_ in metas]
        rows.append((variant, label, runs, m, s, minutes, [m_["seed"] for m_ in metas]))
    out = [
        "## mIoU on CamVid val (last epoch, no selection on val)",
        "",
        "| variant | seeds | mIoU per seed (%) | mIoU mean ± std (%) | rare-class IoU mean ± std "
        "(%) | fit time per run (min) |",
        "|---|---|---|---:|---:|---|",
    ]
    for variant, label, runs, m, s, minutes, seeds in rows:
        per = ", ".join(f"{100 * r.miou:.2f}" for r in runs)
        rm, rs = _mean_std([100 * _rare(r) for r in runs])
        out.append(
            f"| {label} (`{variant}`) | {', '.join(map(str, seeds))} | {per} | "
            f"{_pm(m, s)} | {_pm(rm, rs)} | {', '.join(f'{t:.1f}' for t in minutes)} |"
        )
    out += [
        "",
        "## Per-class IoU (%), mean over seeds (Tab. 3 style)",
        "",
        "| variant | " + " | ".join(names) + " | mIoU |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for variant, label, *_, m, _, _, _ in rows:
        cells = " | ".join(f"{100 * v:.1f}" for v in means[variant].iou)
        out.append(f"| {label} | {cells} | {m:.1f} |")
    if means:
        counts = next(iter(means.values())).pixel_counts
        out.append("| val pixels | " + " | ".join(f"{c / 1e3:.0f}k" for c in counts) + " | |")
    if "base_plus" in means:
        out += [
            "",
            "## Gain over BASE+ and its Spearman correlation with the pixel count",
            "",
            "Gains are differences of means over seeds, with Welch's 95% interval over seeds "
            "(n/a with one seed on a side).",
            "",
            "| variant | mIoU gain (points) | rare-class IoU gain (points) | classes improved | "
            "Spearman(gain, val pixels) | Spearman(gain, train pixels) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        base = means["base_plus"]
        base_runs = next(r[2] for r in rows if r[0] == "base_plus")
        for variant, label, runs, *_ in rows:
            if variant == "base_plus":
                continue
            delta = np.asarray(means[variant].iou) - np.asarray(base.iou)
            cells = []
            for score in (lambda r: r.miou, _rare):
                a = [100 * score(r) for r in runs]
                b = [100 * score(r) for r in base_runs]
                cells.append(_gain_cell(b, a))
            train = [TRAIN_PIXELS[n] for n in base.class_names]
            out.append(
                f"| {label} | {cells[0]} | {cells[1]} | {int((delta > 0).sum())} of {len(delta)} "
                f"| {spearman(delta, base.pixel_counts):.3f} | {spearman(delta, train):.3f} |"
            )
        if "lmp" in means:
            lmp_runs = next(r[2] for r in rows if r[0] == "lmp")
            fig = results / "fig3"
            fig.mkdir(exist_ok=True)
            plot_gains(
                base_runs,
                lmp_runs,
                fig / "gains.png",
                title="CamVid val: IoU gain of LMP + sampler over BASE+ (mean over seeds, 95% "
                "interval)",
            )
            (fig / "comparison.md").write_text(
                comparison_report(base_runs, lmp_runs, ("BASE+", "LMP + sampler"))
            )
    curves = _curves(results, runs_dir)
    epochs = sorted({int(e) for points in curves.values() for e, _ in points})
    out += [
        "",
        "## Val mIoU (%) at every validation during training (the last column is the reported one)",
        "",
        "| run | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
        "|---|" + "---:|" * len(epochs),
    ]
    for key in sorted(curves, key=lambda k: (list(VARIANTS).index(k.rsplit("_seed", 1)[0]), k)):
        variant, seed = key.rsplit("_seed", 1)
        values = {int(e): v for e, v in curves[key]}
        cells = " | ".join(f"{100 * values[e]:.1f}" if e in values else "-" for e in epochs)
        out.append(f"| {VARIANTS[variant]}, seed {seed} | {cells} |")
    text = "\n".join(out) + "\n"
    (results / "summary.md").write_text(text)
    return text


def measure_full_size(entry: Path, data_root: Path = CAMVID) -> Any:
    """Per-class val IoU of a zoo entry as a user gets it: ``zoo.load(entry).segment()`` on every
    full-size (480x360) val frame, scored against the full-size labels with torchmetrics."""
    from torchmetrics.classification import MulticlassJaccardIndex

    from lmp_lightning.data.camvid import CamVid
    from lmp_lightning.reports import ClassResults
    from lmp_lightning.zoo import load

    model = load(entry)
    data = CamVid(data_root, "val")
    metric = MulticlassJaccardIndex(
        len(data.class_names), average=None, ignore_index=data.ignore_index, zero_division=math.nan
    )
    counts = np.zeros(len(data.class_names), dtype=np.int64)
    for i in range(len(data)):
        sample = data[i]
        mask = torch.from_numpy(sample["mask"]).long()
        metric.update(torch.from_numpy(model.segment(sample["image"]))[None], mask[None])
        valid = mask[mask != data.ignore_index]
        counts += np.bincount(valid.numpy(), minlength=len(counts))
    iou = metric.compute().tolist()
    return ClassResults(
        class_names=list(data.class_names),
        iou=iou,
        pixel_counts=counts.tolist(),
        miou=float(np.nanmean(iou)),
        split="val",
        config={"measured": "zoo.load(entry).segment() on full-size val frames"},
        checkpoint=str(entry),
    )


def export(variants: list[str], results: Path, zoo: Path, weights_dtype: str = "float16") -> None:
    """Exports, for each variant, the seed whose val mIoU is closest to the variant's mean over
    seeds (a typical run, not the luckiest) as ``zoo/camvid-<variant>`` with ``lmp-seg zoo
    export``'s function (weights stored as ``weights_dtype``), measures the shipped file on
    full-size val frames through ``segment()`` (which applies the entry's input scale) and
    writes those metrics into its card, and lists it in ``zoo/index.json`` with its digest."""
    from lmp_lightning.reports import ClassResults
    from lmp_lightning.zoo import ModelCard, export_checkpoint
    from lmp_lightning.zoo.index import add_to_index

    for variant in variants:
        files = [
            f
            for f in sorted((results / "runs").glob(f"{variant}_seed*.json"))
            if not f.name.endswith(".meta.json")
        ]
        if not files:
            raise SystemExit(f"[study] no finished {variant} run in {results / 'runs'}")
        mious = {f: ClassResults.load(f).miou for f in files}
        mean = float(np.mean(list(mious.values())))
        typical = min(files, key=lambda f: abs(mious[f] - mean))
        meta = json.loads(typical.with_suffix(".meta.json").read_text())
        name = "camvid-" + variant.replace("_", "-")
        out = zoo / name
        if out.exists():
            shutil.rmtree(out)  # the study's own entry, rebuilt from its run
        export_checkpoint(
            ROOT / meta["checkpoint"], name, out, results=typical, weights_dtype=weights_dtype
        )
        full = measure_full_size(out)
        card = ModelCard.load(out)
        card.metrics = {
            "miou": full.miou,
            "iou": [None if math.isnan(v) else v for v in full.iou],
            "pixel_counts": full.pixel_counts,
            "measured": "segment() on the 101 full-size (480x360) CamVid val frames",
            "half_size_val_miou": mious[typical],
        }
        card.save(out)
        (out / "README.md").write_text(card.readme())
        add_to_index(out, zoo / "index.json", name)  # pins card, config and weights
        print(
            f"[study] {name}: {typical.name} (val mIoU {100 * mious[typical]:.2f} at 240x180, "
            f"variant mean {100 * mean:.2f}; {100 * full.miou:.2f} through segment() on "
            "full-size frames)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate the runs that are not finished")
    run.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--runs", type=Path, default=ROOT / "runs" / "camvid_study")
    run.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "camvid")
    run.add_argument(
        "--tag", default="", help="names a tuning run: results in <variant><tag>_seed<seed>.json"
    )
    run.add_argument("extra", nargs="*", help="more lmp-seg arguments, after --")
    rep = sub.add_parser("report", help="write summary.md, the mean results and fig3/")
    rep.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "camvid")
    rep.add_argument("--tuning", action="store_true", help="the table of the tuning runs")
    rep.add_argument(
        "--runs", type=Path, default=ROOT / "runs" / "camvid_study", help="for the val curves"
    )
    exp = sub.add_parser("export", help="each variant's seed closest to its mean into the zoo")
    exp.add_argument("--variants", nargs="+", default=["base_plus", "lmp"], choices=list(VARIANTS))
    exp.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "camvid")
    exp.add_argument("--zoo", type=Path, default=ROOT / "zoo")
    exp.add_argument("--weights-dtype", default="float16", choices=["float32", "float16"])
    opts = parser.parse_args()
    if opts.command == "run":
        for seed in opts.seeds:
            for variant in opts.variants:
                run_one(
                    variant,
                    seed,
                    opts.runs.resolve(),
                    opts.results.resolve(),
                    opts.extra,
                    opts.tag,
                )
    elif opts.command == "export":
        export(opts.variants, opts.results, opts.zoo, opts.weights_dtype)
    elif opts.tuning:
        print(tuning_report(opts.results))
    else:
        print(report(opts.results, opts.runs))


if __name__ == "__main__":
    main()
