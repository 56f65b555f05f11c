"""Performance-aware sampling on a real training set (default: CamVid from ../shared/data).

Run by hand (not a test): ``python benchmarks/bench_sampling.py --root ../shared/data/camvid``.
Reports the time to build the class statistics (and to load them from the cache), the
sampler's overhead per batch, and the class pixel share of training crops drawn uniformly and
by the sampler.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from lmp_lightning.data import build_dataset, get_dataset_class
from lmp_lightning.data.datamodule import TransformedDataset
from lmp_lightning.data.transforms import train_transform
from lmp_lightning.sampling import (
    ClassCenteredCrops,
    ClassStatistics,
    PerformanceAwareSampler,
    class_weights_from_iou,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="camvid")
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument("--crop", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crops", type=int, default=3000, help="crops drawn for the shares")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cls = get_dataset_class(args.dataset).dataset_class  # the data set, its label space
    raw = build_dataset(args.dataset, "train", args.root)
    names, ignore = list(cls.class_names), cls.ignore_index
    print(
        f"{args.dataset} train: {len(raw)} images, {len(names)} classes, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        stats = ClassStatistics.cached(
            raw, len(names), ignore, "bench", cache, num_workers=args.workers, progress=False
        )
        built = time.perf_counter() - start
        start = time.perf_counter()
        ClassStatistics.cached(raw, len(names), ignore, "bench", cache, progress=False)
        loaded = time.perf_counter() - start
    print(
        f"class statistics: built in {built:.1f} s ({args.workers} workers), "
        f"loaded from the cache in {loaded * 1e3:.0f} ms\n"
    )

    times = []
    for _ in range(5):
        start = time.perf_counter()
        list(PerformanceAwareSampler(stats, num_samples=args.batch_size * 50, seed=1))
        times.append((time.perf_counter() - start) / 50)
    rng = np.random.default_rng(0)
    uniform_images = rng.integers(len(raw), size=args.crops)  # what shuffled loading draws
    uniform = TransformedDataset(raw, train_transform(args.crop, ignore_index=ignore, seed=0))
    placed = ClassCenteredCrops(raw, stats, args.crop, ignore_index=ignore)
    runs = {
        "uniform": lambda k: uniform[int(uniform_images[k])],
        "sampler, mix 0.5": _sampled(placed, stats, 0.5, args.crops),
        "sampler, mix 0": _sampled(placed, stats, 0.0, args.crops),
        "steered, mix 0.5": _sampled(placed, stats, 0.5, args.crops, steered=True),
    }
    shares, load, present = {}, {}, {}
    for label, make in runs.items():
        counts = np.zeros(len(names))
        present[label] = np.zeros(len(names))
        start = time.perf_counter()
        for k in range(args.crops):
            mask = make(k)["mask"].numpy()
            found = np.bincount(mask[mask != ignore], minlength=len(names))
            counts += found
            present[label] += found > 0
        load[label] = (time.perf_counter() - start) / args.crops * args.batch_size
        shares[label] = counts / counts.sum()
    print(
        f"sampler: {statistics.median(times) * 1e3:.2f} ms to draw a batch of "
        f"{args.batch_size}; loading a batch of {args.crop}x{args.crop} crops in one process: "
        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in load.items())
        + "\n"
    )
    print(
        f"class pixel share of {args.crops} crops of {args.crop}x{args.crop}, in %; the "
        "sampler at its starting class probabilities (uniform over the classes present), and "
        "steered as by a model with IoU 0 on the classes under 2% of the pixels, 0.8 elsewhere\n"
    )
    print(
        "| class | "
        + " | ".join(runs)
        + " | ratio (mix 0.5 / uniform) | crops with the class, same order:"
        " uniform / mix 0.5 / mix 0 |"
    )
    print("|---|" + "---:|" * (len(runs) + 2))
    for c, name in enumerate(names):
        row = " | ".join(f"{100 * shares[k][c]:.2f}" for k in runs)
        ratio = shares["sampler, mix 0.5"][c] / shares["uniform"][c]
        seen = " / ".join(f"{100 * present[k][c] / args.crops:.0f}%" for k in runs)
        print(f"| {name} | {row} | {ratio:.2f} | {seen} |")


def _sampled(
    crops: ClassCenteredCrops, stats: ClassStatistics, mix: float, n: int, steered: bool = False
):  # type: ignore[no-untyped-def]
    """Draws at the starting probabilities, or ``steered``: the probabilities g(IoU) = 1 - IoU
    of a model with IoU 0 on the classes under 2% of the pixels and 0.8 on the others."""
    sampler = PerformanceAwareSampler(stats, num_samples=n, uniform_mix=mix, seed=0)
    if steered:
        share = stats.class_pixels / stats.class_pixels.sum()
        sampler.set_class_probabilities(class_weights_from_iou(torch.where(share < 0.02, 0.0, 0.8)))
    draws = list(sampler)
    return lambda k: crops[draws[k]]


if __name__ == "__main__":
    main()
