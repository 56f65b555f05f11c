"""Forward+backward time and peak memory of every loss, as ratios to plain cross-entropy.

Run by hand (not a test): ``python benchmarks/bench_losses.py`` (CPU, and CUDA when available).
Times are medians over interleaved repeats in one run; the extra peak memory of one
forward+backward is measured in a fresh subprocess per loss on CPU (growth of the peak resident set
size, reset through /proc/self/clear_refs, Linux only) and with
``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from lmp_lightning.losses import SegmentationLoss, build_loss, list_losses

NUM_CLASSES_KW = {"imf_ce": lambda c: {"class_weights": torch.linspace(0.5, 2.0, c).tolist()}}


def make_loss(name: str, num_classes: int) -> SegmentationLoss:
    return build_loss(name, **NUM_CLASSES_KW.get(name, lambda c: {})(num_classes))


def make_inputs(shape: list[int], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    B, C, H, W = shape
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, H, W, generator=g).to(device).requires_grad_()
    target = torch.randint(0, C, (B, H, W), generator=g)
    target[:, :, : W // 16] = 255  # some ignored pixels, as in real crops
    return logits, target.to(device)


def step(loss: SegmentationLoss, logits: torch.Tensor, target: torch.Tensor) -> None:
    logits.grad = None
    loss(logits, target).backward()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_all(names: list[str], shape: list[int], device: str, repeats: int) -> dict[str, float]:
    logits, target = make_inputs(shape, device)
    losses = {name: make_loss(name, shape[1]).to(device) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up
        step(losses[name], logits, target)
    for _ in range(repeats):
        for name in names:  # interleaved, so that drift hits every loss alike
            sync(device)
            start = time.perf_counter()
            step(losses[name], logits, target)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory_child(name: str, shape: list[int], device: str) -> int:
    """Extra peak bytes of one forward+backward above the inputs (run in a fresh process)."""
    logits, target = make_inputs(shape, device)
    loss = make_loss(name, shape[1]).to(device)
    logits.grad = torch.zeros_like(logits)  # the gradient buffer is not the loss's memory
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step_keep_grad(loss, logits, target)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak RSS (VmHWM) to now
        f.write("5")
    base = rss_peak_bytes()
    step_keep_grad(loss, logits, target)
    return rss_peak_bytes() - base


def rss_peak_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: CPU peak memory needs Linux")


def step_keep_grad(loss: SegmentationLoss, logits: torch.Tensor, target: torch.Tensor) -> None:
    loss(logits, target).backward()


def peak_memory(name: str, shape: list[int], device: str) -> int:
    if device == "cuda":
        return peak_memory_child(name, shape, device)
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            name,
            "--device",
            device,
            "--shape",
            *map(str, shape),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1]))


def report(
    device: str,
    names: list[str],
    shape: list[int],
    repeats: int,
    measure: Callable[[str, list[int], str], int] = peak_memory,
) -> None:
    times = time_all(names, shape, device, repeats)
    memory = {name: measure(name, shape, device) for name in names}
    base_t, base_m = times["ce"], memory["ce"]
    print(f"\n### {device}: logits {tuple(shape)}, median of {repeats} forward+backward passes")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| loss | time (ms) | time / ce | extra peak memory (MiB) | memory / ce |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        print(
            f"| {name} | {times[name] * 1e3:.1f} | {times[name] / base_t:.2f} | "
            f"{memory[name] / 2**20:.0f} | {memory[name] / base_m:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape", type=int, nargs=4, default=[2, 19, 512, 512], metavar=("B", "C", "H", "W")
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--losses", nargs="*", default=None, help="default: every registered loss")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(peak_memory_child(args.child, args.shape, args.device))
        return
    names = args.losses or list_losses()
    names = ["ce", *[n for n in names if n != "ce"]]
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n(no CUDA device: CUDA figures skipped)")
            continue
        report(device, names, args.shape, args.repeats)


if __name__ == "__main__":
    main()
