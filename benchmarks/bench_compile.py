"""``torch.compile`` of every loss: graph breaks, compile time, and eager against compiled
forward+backward time, as ratios to eager ``torch.nn.functional.cross_entropy``.

Run by hand (not a test): ``python benchmarks/bench_compile.py`` (CPU; ``--device cuda`` on a
GPU). Graph breaks are counted with ``torch._dynamo.explain``; the compiled loss is timed after
its first call (which compiles) with the eager one interleaved, medians over ``--repeats``; its
value and gradient must match the eager loss's (to 1e-4).
``center`` gets decoder-like features (``--feature-dim`` channels at a quarter of the size).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch._dynamo as dynamo
import torch.nn.functional as F

from lmp_lightning.losses import LOSSES, build_loss, list_losses

KWARGS: dict[str, Callable[[int], dict]] = {
    "imf_ce": lambda c: {"class_weights": torch.linspace(0.5, 2.0, c).tolist()},
}


def first_line(error: Exception) -> str:
    text = str(error).strip()
    line = text.splitlines()[0][:80].replace("|", "/") if text else ""  # a table cell
    return f"{type(error).__name__}: {line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape", type=int, nargs=4, default=[2, 19, 256, 256], metavar=("B", "C", "H", "W")
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--losses", nargs="*", default=None, help="default: every registered loss")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    B, C, H, W = args.shape
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, C, H, W, generator=g).to(args.device).requires_grad_()
    target = torch.randint(0, C, (B, H, W), generator=g)
    target[:, :, : W // 16] = 255
    target = target.to(args.device)
    features = torch.randn(B, 32, H // 4, W // 4, generator=g).to(args.device).requires_grad_()

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    def timed(fn: Callable[[], torch.Tensor]) -> float:
        logits.grad = features.grad = None
        sync()
        start = time.perf_counter()
        fn().backward()
        sync()
        return time.perf_counter() - start

    def baseline() -> torch.Tensor:
        return F.cross_entropy(logits, target, ignore_index=255)

    timed(baseline)  # warm-up
    print(f"\n### {args.device}: logits {tuple(args.shape)}, torch {torch.__version__}, ", end="")
    print(f"{torch.get_num_threads()} threads, medians of {args.repeats} interleaved passes\n")
    print(
        "| loss | graphs | graph breaks | compile + first call (s) | eager / F.ce | "
        "compiled / F.ce | compiled / eager | under no_grad | break reasons |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name in args.losses or list_losses():
        loss = build_loss(name, **KWARGS.get(name, lambda c: {})(C)).to(args.device)
        extra = {"features": features} if LOSSES[name].needs_features else {}

        def call(fn: Callable, extra: dict = extra) -> torch.Tensor:
            return fn(logits, target, **extra)

        explained = dynamo.explain(loss)(logits, target, **extra)
        reasons = sorted({str(b.reason).splitlines()[0][:60] for b in explained.break_reasons})
        dynamo.reset()
        compiled = torch.compile(loss)
        try:
            first = timed(lambda c=compiled: call(c))
        except Exception as error:  # an Inductor failure is a result too: the row says which
            print(
                f"| {name} | {explained.graph_count} | {explained.graph_break_count} | "
                f"compile failed: {first_line(error)} | | | | | {'; '.join(reasons)} |"
            )
            dynamo.reset()
            continue
        base_t, eager_t, compiled_t = [], [], []
        for _ in range(args.repeats):  # F.cross_entropy interleaved with every loss
            base_t.append(timed(baseline))
            eager_t.append(timed(lambda f=loss: call(f)))
            compiled_t.append(timed(lambda c=compiled: call(c)))
        base = statistics.median(base_t)
        e, c = statistics.median(eager_t), statistics.median(compiled_t)
        value = call(loss).item()
        gap = abs(value - call(compiled).item())
        grads = []
        for fn in (loss, compiled):  # the gradient too: a compiled backward can differ alone
            logits.grad = None
            call(fn).backward()
            grads.append(logits.grad.clone())
        grad_gap = float((grads[1] - grads[0]).abs().max())
        try:  # validation runs without autograd: a second graph, compiled on its first call
            with torch.no_grad():
                call(compiled)
            no_grad = "compiles"
        except Exception as error:
            no_grad = f"failed: {first_line(error)}"
        print(
            f"| {name} | {explained.graph_count} | {explained.graph_break_count} | {first:.1f} | "
            f"{e / base:.2f} | {c / base:.2f} | {c / e:.2f} | {no_grad} | {'; '.join(reasons)} |"
        )
        assert gap <= 1e-4 * max(1.0, abs(value)), (name, gap)
        assert grad_gap <= 1e-4 * float(grads[0].abs().max()), (name, "gradient", grad_gap)
        dynamo.reset()


if __name__ == "__main__":
    main()
