"""Forward+backward time and peak memory of every loss, as ratios to PyTorch's own
``torch.nn.functional.cross_entropy`` (the row ``F.cross_entropy``; the project's ``CrossEntropy``,
with its input checks, is the row ``ce``).

Run by hand (not a test): ``python benchmarks/bench_losses.py`` (CPU, and CUDA when available).
A second table compares the locally adaptive loss (``lall``, kernel ``--lall-kernel``, its
default ``backend="auto"``, compiled where ``torch.compile`` works and timed after its compiling
first call; the row ``lall_sparse`` is its ``backend="sparse"``) with a direct ``F.unfold``
version of the same loss, written here as a reference, on ``--lall-shape``.
Times are medians over interleaved repeats in one run, and each ratio to ``F.cross_entropy`` is
the median of the per-repeat ratios (paired, so that the machine's drift cancels; the unfold
reference, timed on its own after the others, is divided by the median instead). The extra peak
memory of one forward+backward is measured in a fresh subprocess per loss on CPU (growth of the
peak resident set size, reset through /proc/self/clear_refs, Linux only) and with
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
import torch.nn.functional as F

from lmp_lightning.losses import LOSSES, SegmentationLoss, build_loss, list_losses

NUM_CLASSES_KW = {"imf_ce": lambda c: {"class_weights": torch.linspace(0.5, 2.0, c).tolist()}}
UNFOLD = "lall_unfold"
SPARSE = "lall_sparse"
"""``lall`` with ``backend="sparse"``, the one that compiles nothing. ``lall`` itself
(``backend="auto"``) compiles on its first call, outside every measurement."""
BASELINE = "F.cross_entropy"


class TorchCrossEntropy(torch.nn.Module):
    """The baseline: ``F.cross_entropy`` itself, mean over the pixels that are not ignored."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, ignore_index=255)


LALL_KERNEL = 7


class UnfoldLocallyAdaptiveLoss(SegmentationLoss):
    """The locally adaptive loss (``lall``, stride 1, Minkowski pooling) written directly with
    ``F.unfold``: it holds ``kernel_size ** 2`` copies of the logits. A benchmark reference only.
    """

    def __init__(self, kernel_size: int = 5, minkowski_k: float = 3.0, ignore_index: int = 255):
        super().__init__(ignore_index)
        self.kernel_size, self.minkowski_k = kernel_size, minkowski_k

    def compute(
        self, logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, C, H, W = logits.shape
        k, r = self.kernel_size, self.kernel_size // 2
        z = logits.float()
        std, mean = torch.std_mean(z, dim=1, correction=0, keepdim=True)
        x = (z - mean) / (std + 1e-5)
        labels = target.masked_fill(target == self.ignore_index, -1)
        windows = F.unfold(x, k, padding=r).view(B, C, k * k, H * W)
        padded = F.pad(labels[:, None].float(), (r, r, r, r), value=-1.0)
        window_labels = F.unfold(padded, k).view(B, k * k, H * W)
        centre = labels.flatten(1)
        same = (window_labels == centre[:, None]) & (centre >= 0)[:, None]
        d = torch.arange(-r, r + 1, device=logits.device).abs()
        weight = 2.0 ** (1 - torch.maximum(d[:, None], d[None, :]).flatten())
        f = (windows * (same * weight[:, None])[:, None]).sum(2)
        f = f / same.sum(1, keepdim=True).clamp(min=1)
        costs = F.cross_entropy(
            f, target.flatten(1), ignore_index=self.ignore_index, reduction="none"
        )
        valid = centre >= 0
        n = valid.sum(-1)
        mean_k = (costs * valid).pow(self.minkowski_k).sum(-1) / n.clamp(min=1)
        pooled = mean_k.clamp(min=1e-30).pow(1 / self.minkowski_k) * (mean_k > 0)
        return (pooled * (n > 0)).sum() / (n > 0).sum().clamp(min=1)


def make_loss(name: str, num_classes: int, lall_kernel: int | None = None) -> torch.nn.Module:
    """A registered loss with its defaults, ``lall`` / the unfold reference at a kernel, or the
    ``F.cross_entropy`` baseline."""
    if name == BASELINE:
        return TorchCrossEntropy()
    if name == UNFOLD:
        return UnfoldLocallyAdaptiveLoss(
            kernel_size=LALL_KERNEL if lall_kernel is None else lall_kernel
        )
    if name == SPARSE:
        kernel = {} if lall_kernel is None else {"kernel_size": lall_kernel}
        return build_loss("lall", backend="sparse", **kernel)
    if name == "lall" and lall_kernel is not None:
        return build_loss(name, kernel_size=lall_kernel)
    return build_loss(name, **NUM_CLASSES_KW.get(name, lambda c: {})(num_classes))


def make_inputs(shape: list[int], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    B, C, H, W = shape
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, H, W, generator=g).to(device).requires_grad_()
    target = torch.randint(0, C, (B, H, W), generator=g)
    target[:, :, : W // 16] = 255  # some ignored pixels, as in real crops
    return logits, target.to(device)


def step(loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor) -> None:
    logits.grad = None
    loss(logits, target).backward()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_all(
    names: list[str], shape: list[int], device: str, repeats: int, lall_kernel: int | None = None
) -> dict[str, list[float]]:
    """Every loss's forward+backward times (seconds), one per repeat, interleaved."""
    logits, target = make_inputs(shape, device)
    losses = {name: make_loss(name, shape[1], lall_kernel).to(device) for name in names}
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
    return times


def peak_memory_child(
    name: str, shape: list[int], device: str, lall_kernel: int | None = None
) -> int:
    """Extra peak bytes of one forward+backward above the inputs (run in a fresh process)."""
    logits, target = make_inputs(shape, device)
    loss = make_loss(name, shape[1], lall_kernel).to(device)
    if name == "lall":  # compile first: Inductor's memory is not the loss's
        step(loss, logits, target)
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


def step_keep_grad(loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor) -> None:
    loss(logits, target).backward()


def peak_memory(name: str, shape: list[int], device: str, lall_kernel: int | None = None) -> int:
    if device == "cuda":
        return peak_memory_child(name, shape, device, lall_kernel)
    kernel = [] if lall_kernel is None else ["--lall-kernel", str(lall_kernel)]
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
            *kernel,
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
    measure: Callable[..., int] = peak_memory,
    lall_kernel: int | None = None,
) -> None:
    # The unfold reference allocates kernel_size^2 copies of the logits: timed on its own after
    # the others, so that its page faults and cache misses do not land on their passes.
    runs = time_all([n for n in names if n != UNFOLD], shape, device, repeats, lall_kernel)
    # The ratio to F.cross_entropy is the median of per-repeat ratios: paired within a repeat,
    # the machine's drift (F.cross_entropy's own time moves by tens of percent here) cancels.
    ratio = {
        name: statistics.median(a / b for a, b in zip(t, runs[BASELINE], strict=True))
        for name, t in runs.items()
    }
    if UNFOLD in names:
        runs.update(time_all([UNFOLD], shape, device, repeats, lall_kernel))
    times = {name: statistics.median(t) for name, t in runs.items()}
    memory = {name: measure(name, shape, device, lall_kernel) for name in names}
    base_t, base_m = times[BASELINE], memory[BASELINE]
    title = "" if lall_kernel is None else f", lall kernel_size={lall_kernel}"
    print(
        f"\n### {device}: logits {tuple(shape)}{title}, median of {repeats} forward+backward passes"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    unfold = UNFOLD in names
    extra = " time / unfold | memory / unfold |" if unfold else ""
    print(
        "| loss | time (ms) | time / F.cross_entropy | extra peak memory (MiB) | "
        "memory / F.cross_entropy |" + extra
    )
    print("|---|---:|---:|---:|---:|" + ("---:|---:|" if unfold else ""))
    for name in names:
        row = (
            f"| {name} | {times[name] * 1e3:.1f} | {ratio.get(name, times[name] / base_t):.2f} | "
            f"{memory[name] / 2**20:.0f} | {memory[name] / base_m:.2f} |"
        )
        if unfold:
            row += f" {times[name] / times[UNFOLD]:.2f} | {memory[name] / memory[UNFOLD]:.2f} |"
        print(row)


def check_unfold_agrees(shape: list[int], device: str, lall_kernel: int) -> None:
    """The unfold reference and ``lall`` give the same value on the benchmark input."""
    logits, target = make_inputs(shape, device)
    with torch.no_grad():
        unfold = make_loss(UNFOLD, shape[1], lall_kernel)(logits, target).item()
        for name in ("lall", SPARSE):
            ours = make_loss(name, shape[1], lall_kernel)(logits, target).item()
            print(
                f"\n{name} = {ours:.6f}, unfold reference = {unfold:.6f} (relative difference "
                f"{abs(ours - unfold) / abs(unfold):.1e})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape", type=int, nargs=4, default=[2, 19, 512, 512], metavar=("B", "C", "H", "W")
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--losses", nargs="*", default=None, help="default: every registered loss")
    parser.add_argument(
        "--lall-kernel",
        type=int,
        default=None,
        help=f"kernel_size of lall and of its unfold reference in the second table "
        f"(default: {LALL_KERNEL}); the first table builds lall with its defaults",
    )
    parser.add_argument(
        "--lall-shape", type=int, nargs=4, default=[2, 19, 256, 256], metavar=("B", "C", "H", "W")
    )
    parser.add_argument("--lall-repeats", type=int, default=15)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(peak_memory_child(args.child, args.shape, args.device, args.lall_kernel))
        return
    lall_kernel = LALL_KERNEL if args.lall_kernel is None else args.lall_kernel
    # Losses that take decoder features (center) need a model: bench_train_step.py covers them.
    names = args.losses or [n for n in list_losses() if not LOSSES[n].needs_features]
    names = [BASELINE, "ce", *[n for n in names if n not in ("ce", BASELINE)]]
    if "lall" in names:
        names.insert(names.index("lall") + 1, SPARSE)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n(no CUDA device: CUDA figures skipped)")
            continue
        report(device, names, args.shape, args.repeats)
        check_unfold_agrees(args.lall_shape, device, lall_kernel)
        report(
            device,
            [BASELINE, "ce", "lall", SPARSE, UNFOLD],
            args.lall_shape,
            args.lall_repeats,
            lall_kernel=lall_kernel,
        )


if __name__ == "__main__":
    main()
