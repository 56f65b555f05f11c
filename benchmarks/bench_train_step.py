"""Training-step throughput with a real model, and the step-time ratio of every loss to CE.

Run by hand (not a test): ``python benchmarks/bench_train_step.py`` (CPU, and CUDA when
available). One step is forward, loss, backward and an SGD update of DeepLabV3+ / MobileNetV2 on
512x512 crops, one network and optimizer for every loss. The losses' steps are interleaved, in
reversed order every other repeat (so that neither loss always runs first after the other); the
table gives each loss's median step and the median (with the quartiles) of its per-repeat ratio
to the first loss, paired within a repeat so that slow drift of the machine cancels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lmp_lightning.losses import build_loss
from lmp_lightning.module import SegmentationModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="deeplabv3plus")
    parser.add_argument("--encoder", default="mobilenet_v2")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--losses", nargs="+", default=["ce", "lmp"])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n(no CUDA device: CUDA figures skipped)")
            continue
        run(args, device)


def run(args: argparse.Namespace, device: str) -> None:
    # One network and one optimizer for every loss, so that the steps differ by the loss alone
    # (two copies of the network would sit at different places in memory and caches).
    torch.manual_seed(0)
    module = SegmentationModule(args.arch, args.encoder, num_classes=args.classes).to(device)
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    losses = {name: build_loss(name).to(device) for name in args.losses}
    g = torch.Generator().manual_seed(0)
    image = torch.randn(args.batch_size, 3, args.crop, args.crop, generator=g).to(device)
    target = torch.randint(0, args.classes, (args.batch_size, args.crop, args.crop), generator=g)
    target[:, :, : args.crop // 16] = 255
    target = target.to(device)

    def step(name: str) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses[name](module(image), target).backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in losses:  # warm-up
        step(name)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for r in range(args.repeats):
        for name in list(losses)[:: 1 if r % 2 == 0 else -1]:
            times[name].append(step(name))
    median = {name: statistics.median(t) for name, t in times.items()}
    first = args.losses[0]
    paired = {
        name: [a / b for a, b in zip(t, times[first], strict=True)] for name, t in times.items()
    }
    print(
        f"\n### {device}: {args.arch} / {args.encoder}, batch {args.batch_size} x "
        f"{args.crop}x{args.crop}, {args.classes} classes, median of {args.repeats} steps"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(f"| loss | step (s) | images / s | step / {first}, paired | quartiles |")
    print("|---|---:|---:|---:|---|")
    for name, t in median.items():
        low, mid, high = statistics.quantiles(paired[name], n=4)
        print(
            f"| {name} | {t:.3f} | {args.batch_size / t:.2f} | {mid:.3f} | "
            f"[{low:.3f}, {high:.3f}] |"
        )


if __name__ == "__main__":
    main()
