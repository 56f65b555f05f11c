"""Throughput of the main job: ``lmp-seg fit`` of a recipe against the bare network step.

Run by hand on an idle machine (not a test)::

    python benchmarks/bench_fit.py --root ../shared/data/camvid --config camvid/lmp

*Bare step*: forward, loss, backward and the SGD update of the recipe's network on a batch
already in memory (the limit a fit can reach). *Fit*: ``lmp-seg fit`` of the recipe with
validation off, timed from the end of its ``--warmup`` th training batch to the end of its last
(so it spans epoch ends: loader restarts, checkpoints, the sampler's updates). A variant is one
or more changes joined by ``+`` (``--variants fp32 bf16+channels_last``): ``fp32`` (the recipe as
it is), ``bf16`` (``--trainer.precision bf16-mixed``), ``channels_last`` (network and images in
channels-last memory format), ``compile`` (``torch.compile`` of the network), ``workers0`` /
``workers2`` (loader workers), ``in_memory`` (decoded frames kept in memory). Prints a Markdown
table of images per second and the fit's share of the bare step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from lightning import Callback, LightningModule, Trainer

from lmp_lightning.cli import run_cli
from lmp_lightning.losses import build_loss
from lmp_lightning.module import SegmentationModule
from lmp_lightning.resources import config_path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the fit names the callbacks below as benchmarks.bench_fit.*
    sys.path.insert(0, str(ROOT))

CHANGES = ("fp32", "bf16", "channels_last", "compile", "workers0", "workers2", "in_memory")
VARIANTS = ("fp32", "bf16", "channels_last", "compile", "workers2", "in_memory")


class BatchClock(Callback):
    """Records the time at the end of every training batch."""

    times: ClassVar[list[float]] = []

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        type(self).times = []

    def on_train_batch_end(self, trainer: Trainer, *args: Any) -> None:
        type(self).times.append(time.perf_counter())


class ChannelsLast(Callback):
    """Puts the network and each batch's images in channels-last memory format."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        pl_module.model.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer: Trainer, pl_module: Any, batch: Any, *a: Any) -> None:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)


class CompileNetwork(Callback):
    """Compiles the network in place (``nn.Module.compile``: its state-dict keys are kept)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        pl_module.model.compile()


def _recipe(name: str) -> dict[str, Any]:
    return yaml.safe_load(Path(config_path(name)).read_text())


def bare_step(recipe: dict[str, Any], variant: str, steps: int, warmup: int) -> float:
    """Images per second of the recipe's bare training step on one batch in memory."""
    model_cfg, data_cfg = recipe["model"], recipe["data"]
    torch.manual_seed(0)
    loss_cfg = model_cfg["loss"]
    loss = build_loss(loss_cfg["class_path"].rsplit(".", 1)[-1], **loss_cfg.get("init_args", {}))
    module = SegmentationModule(
        model_cfg["arch"], model_cfg["encoder_name"], num_classes=11, loss=loss
    ).train()
    batch, crop = int(data_cfg["batch_size"]), int(data_cfg["crop_size"])
    image = torch.randn(batch, 3, crop, crop)
    target = torch.randint(0, 11, (batch, crop, crop))
    changes = set(variant.split("+"))
    if "channels_last" in changes:
        module.model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    if "compile" in changes:
        module.model.compile()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    autocast = bf16 if "bf16" in changes else contextlib.nullcontext()
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = module(image)
        module.loss(logits.float(), target).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return batch * steps / sum(times[warmup:])


def fit(config: str, root: str, variant: str, steps: int, warmup: int, out: Path) -> float:
    """Images per second of ``lmp-seg fit`` of the recipe over its batches after ``warmup``."""
    recipe = _recipe(config)
    args = [
        "fit", f"--config={config}", f"--data.root={root}", f"--trainer.max_steps={steps}",
        "--trainer.limit_val_batches=0", "--trainer.num_sanity_val_steps=0",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={out}",
        "--trainer.callbacks+=benchmarks.bench_fit.BatchClock",
    ]  # fmt: skip
    extra = {
        "bf16": ["--trainer.precision=bf16-mixed"],
        "channels_last": ["--trainer.callbacks+=benchmarks.bench_fit.ChannelsLast"],
        "compile": ["--trainer.callbacks+=benchmarks.bench_fit.CompileNetwork"],
        "workers0": ["--data.num_workers=0"],
        "workers2": ["--data.num_workers=2"],
        "in_memory": ["--data.in_memory=true"],
    }
    run_cli([*args, *(flag for change in variant.split("+") for flag in extra.get(change, []))])
    # The clock the fit used: benchmarks.bench_fit's, which is not __main__'s when run as a script
    times = importlib.import_module("benchmarks.bench_fit").BatchClock.times
    batch = int(recipe["data"]["batch_size"])
    return batch * (len(times) - warmup) / (times[-1] - times[warmup - 1])


def _variant(text: str) -> str:
    unknown = set(text.split("+")) - set(CHANGES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown changes {sorted(unknown)}; known: {CHANGES}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="the data set folder (CamVid)")
    parser.add_argument("--config", default="camvid/lmp")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), type=_variant, help="e.g. bf16+in_memory"
    )
    parser.add_argument("--fit-steps", type=int, default=100, help="more than two epochs")
    parser.add_argument("--bare-steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))  # for loader workers
    recipe = _recipe(args.config)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fit-") as tmp:
        for i, variant in enumerate(args.variants):
            bare = (
                bare_step(recipe, variant, args.bare_steps, args.warmup)
                if set(variant.split("+")) & {"fp32", "bf16", "channels_last", "compile"}
                else None
            )
            folder = Path(tmp) / f"{i}-{variant}"  # a variant may be timed twice
            whole = fit(args.config, args.root, variant, args.fit_steps, args.warmup, folder)
            rows.append({"variant": variant, "bare": bare, "fit": whole})
            print(f"{variant}: bare {bare} fit {whole}", flush=True)
    reference = next((r["bare"] for r in rows if r["variant"] == "fp32"), None)
    print(f"\n{args.config}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    print("| variant | fit (images/s) | bare step (images/s) | fit / bare | bare / fp32 bare |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        bare = row["bare"] if row["bare"] is not None else reference
        print(
            f"| {row['variant']} | {row['fit']:.1f} | {bare:.1f} | {row['fit'] / bare:.2f} | "
            f"{bare / reference:.2f} |"
            if bare and reference
            else f"| {row['variant']} | {row['fit']:.1f} | n/a | n/a | n/a |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
