"""The locally adaptive learning loss over tensors: Guo, Ren, Gu, Xu and Wu, "Locally Adaptive
Learning Loss for Semantic Image Segmentation", 2018 (Section 3, Eqs. 2, 4 and 5).

The selective pooling filter of Eq. (2) is linear in the normalised scores: a sparse matrix with
``kernel_size ** 2`` entries per centre (the weights of the neighbours of the same label, 0 for the
others) times the scores laid out channels last. It runs as one sparse-dense product per band of
centres (MKL on CPU, cuSPARSE on CUDA), so memory stays O(C * H * W) whatever the kernel size,
and the backward is the same product (the matrix is symmetric up to a diagonal scaling). Its
autograd function saves only the logits, the labels and the kept counts. Unfolding the window
(``F.unfold``) would hold ``kernel_size ** 2`` copies of the logits.

The shared checks and maths are in ``locally_adaptive_common``, the sparse backend in
``locally_adaptive_sparse`` and the eager code of the compiled backend's stages in
``locally_adaptive_stages``; this module compiles those stages, falls back to the sparse backend
where ``torch.compile`` cannot run, and re-exports the public names.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.functional.locally_adaptive_common import (
    MAX_KERNEL_SIZE as MAX_KERNEL_SIZE,
)
from lmp_lightning.losses.functional.locally_adaptive_common import (
    STD_EPS as STD_EPS,
)
from lmp_lightning.losses.functional.locally_adaptive_common import (
    _compute_dtype,
    _first_order,
    check_kernel_size,
    check_minkowski_k,
    check_stride,
    minkowski_pooling,
    standard_score,
)
from lmp_lightning.losses.functional.locally_adaptive_sparse import (
    BAND_PIXELS as BAND_PIXELS,
)
from lmp_lightning.losses.functional.locally_adaptive_sparse import _SelectivePooling
from lmp_lightning.losses.functional.locally_adaptive_stages import _STAGES

__all__ = [
    "check_backend",
    "check_kernel_size",
    "check_minkowski_k",
    "check_stride",
    "locally_adaptive_costs",
    "minkowski_pooling",
    "selective_pooling",
    "standard_score",
]


@functools.cache
def _compiled(stage: str) -> Any:
    """A stage of the compiled backend, compiled once per process (Dynamo specialises on the
    kernel size and the stride, and recompiles for new shapes, dynamic after the first). The
    stages are compiled apart so that the pooling reads materialised scores: fused into it,
    the standard score would be recomputed for every window offset."""
    return torch.compile(_STAGES[stage], fullgraph=True)


RECOMPILE_LIMIT = 64
"""Compiled entries per stage (Dynamo's default is 8): one per kernel size, stride, dtype and
shape kind (static, then dynamic), so that a second loss configuration in the same process
compiles too instead of falling back to the slow eager loop."""

_NO_COMPILER: dict[str, str] = {}
"""The device types on which ``torch.compile`` failed under ``backend="auto"``, with its
reason: the loss runs the sparse backend on them for the rest of the process."""


def _compile_unavailable(device_type: str) -> bool:
    """Whether ``backend="auto"`` takes the sparse backend on this device type: compiling
    failed here before, Dynamo does not support this Python, or compiling is switched off
    (``TORCH_COMPILE_DISABLE=1``, under which the compiled stages would run as a slow eager
    loop)."""
    import torch._dynamo

    return (
        device_type in _NO_COMPILER
        or not torch._dynamo.is_dynamo_supported()
        or bool(torch._dynamo.config.disable)
    )


def _run(stage: str, *args: Any, auto: bool = False, device_type: str = "cpu") -> Any:
    """A compiled stage. Under ``backend="auto"`` a compiler failure is a warning, once per
    device type: the call goes on with the stage's eager code, and the next calls of the loss
    take the sparse backend (:func:`_compile_unavailable`)."""
    import torch._dynamo.config
    from torch._dynamo.exc import BackendCompilerFailed

    if auto and device_type in _NO_COMPILER:  # compiling failed earlier in this call
        return _STAGES[stage](*args)
    try:
        # torch 2.6 renamed cache_size_limit to recompile_limit
        name = "recompile_limit"
        if not hasattr(torch._dynamo.config, name):
            name = "cache_size_limit"
        with torch._dynamo.config.patch(name, RECOMPILE_LIMIT):
            return _compiled(stage)(*args)
    except BackendCompilerFailed as error:  # no C++ compiler, no Triton
        inner = getattr(error, "inner_exception", None)  # the compiler's own error
        reason = (f"{type(inner).__name__}: {inner}" if inner else str(error)).strip()
        reason = reason.splitlines()[0]
        if not auto:
            raise RuntimeError(
                "the locally adaptive loss with backend='compiled' needs torch.compile to work "
                "on this machine (a C++ compiler for CPU tensors, Triton for CUDA ones); use "
                f"backend='sparse'. torch.compile said: {reason}"
            ) from error
        _NO_COMPILER[device_type] = reason
        warnings.warn(
            f"the locally adaptive loss (backend='auto') cannot compile its pooling on "
            f"{device_type} and takes backend='sparse' from now on, which is slower; pass "
            f"backend='sparse' to skip the attempt. torch.compile said: {reason}",
            UserWarning,
            stacklevel=2,
        )
        return _STAGES[stage](*args)


class _FusedLocalCosts(torch.autograd.Function):
    """Eq. (4) on the selective pooling of :func:`_pool_dense` (channels first), with the
    cross-entropy inside the compiled stages: the forward keeps the log-sum-exp, the backward
    joins the cross-entropy's gradient to the grid of the pooling's backward (the same compiled
    pooling, the matrix being symmetric up to the division by ``xi``), so no log-softmax of the
    merged vectors is written or read. Saved: the padded standard scores, their standard
    deviations, the padded labels, the counts, the centres' labels, the merged vectors and
    their log-sum-exp."""

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, labels: Tensor, kernel_size: int, stride: int, auto: bool
    ) -> tuple[Tensor, Tensor]:
        r = kernel_size // 2
        run = functools.partial(_run, auto=auto, device_type=logits.device.type)
        x, std, padded, centres, check = run("scores", logits, labels, r, stride)
        f, kept = run("pool", x, padded, centres, kernel_size, stride, True)
        costs, lse = run("cross_entropy", f, centres)
        ctx.save_for_backward(x, std, padded, kept, centres, f, lse)
        ctx.kernel_size, ctx.stride, ctx.input_dtype = kernel_size, stride, logits.dtype
        ctx.run = run
        ctx.mark_non_differentiable(check)
        return costs.flatten(1), check  # (B, Hc * Wc), ()

    @staticmethod
    @_first_order
    def backward(ctx: Any, grad_costs: Tensor, _: Tensor) -> tuple[Tensor, None, None, None, None]:
        x, std, padded, kept, centres, f, lse = ctx.saved_tensors
        k, stride, run = ctx.kernel_size, ctx.stride, ctx.run
        r = k // 2
        grid, centres = run(
            "grid_cross_entropy", grad_costs, f, lse, kept, centres, padded, r, stride
        )
        del grad_costs, f, lse
        g, _ = run("pool", grid, padded, centres, k, 1, False)
        del grid
        return run("scores_backward", g, x, std, r).to(ctx.input_dtype), None, None, None, None


BACKENDS = ("auto", "sparse", "compiled")


def check_backend(backend: str) -> str:
    """Validates the implementation of the selective pooling: ``"auto"``, ``"sparse"`` or
    ``"compiled"``.

    Example:
        >>> check_backend("compiled")
        'compiled'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    return backend


def _selective_pooling_rows(
    logits: Tensor, target: Tensor, kernel_size: int, stride: int, ignore_index: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`selective_pooling` as ``(B, Hc * Wc, C)`` rows (channels last), the
    ``(B, Hc, Wc)`` centre labels and a scalar that is 0, or NaN if a logit is not finite."""
    check_kernel_size(kernel_size)
    check_stride(stride)
    target = target.long()
    centre_target = target[:, ::stride, ::stride]
    if logits.numel() == 0:  # no pixel: zeros with a graph, as for a batch without a centre
        B, C, Hc, Wc = logits.shape[0], logits.shape[1], *centre_target.shape[1:]
        z = logits.to(_compute_dtype(logits))
        return z.new_zeros(B, Hc * Wc, C) + z.sum() * 0.0, centre_target, z.new_zeros(())
    labels = target.masked_fill(target == ignore_index, -1)
    rows, check = _SelectivePooling.apply(logits, labels, kernel_size, stride)
    return rows, centre_target, check


def selective_pooling(
    logits: Tensor, target: Tensor, kernel_size: int = 5, stride: int = 1, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    r"""The selective pooling filter of Eq. (2) of Guo et al. 2018 on standard scores.

    For every centre pixel on the stride grid (``i % stride == 0`` and ``j % stride == 0``)
    whose label is not ``ignore_index``,

    .. math:: f(i, j) = \frac{1}{\xi} \sum_{u, v} \mu(i + u, j + v)\, 2^{1 - d(u, v)}\,
        x_{i + u, j + v},

    over the neighbours inside the image and the ``kernel_size x kernel_size`` window, ``x`` the
    :func:`standard_score` of the logits, :math:`\mu` 1 where the neighbour's label equals the
    centre's (the centre included), ``d`` the chessboard distance and :math:`\xi` the number of
    kept neighbours. Computed in float32 or better with O(C H W) memory (module docstring).

    Args:
        logits: ``(B, C, H, W)`` class scores (not validated here; see
            :func:`~lmp_lightning.losses.functional.check_logits_target`).
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        ignore_index: label of the pixels that are neither centres nor kept neighbours.

    Returns:
        ``(f, centre_target)``: ``f`` is ``(B, C, Hc, Wc)`` with ``Hc = ceil(H / stride)``,
        ``Wc = ceil(W / stride)`` (0 at ignored centres); ``centre_target`` is the ``(B, Hc, Wc)``
        int64 label of every centre (``ignore_index`` where ignored).

    Raises:
        ValueError: ``kernel_size`` even, below 1 or above 63, ``stride`` below 1.
        TypeError: ``kernel_size`` or ``stride`` not an int.

    Example:
        >>> logits = torch.tensor([[[[1.0, 1.0]], [[3.0, 5.0]]]])  # (1, 2, 1, 2): x = (-1, 1)
        >>> f, centres = selective_pooling(logits, torch.tensor([[[0, 0]]]), kernel_size=3)
        >>> f[0, :, 0, 0]  # (2 * x_centre + 1 * x_neighbour) / 2 neighbours kept
        tensor([-1.5000,  1.5000])
    """
    rows, centre_target, _ = _selective_pooling_rows(
        logits, target, kernel_size, stride, ignore_index
    )
    B, Hc, Wc = centre_target.shape
    return rows.view(B, Hc, Wc, rows.shape[-1]).permute(0, 3, 1, 2), centre_target


def locally_adaptive_costs(
    logits: Tensor,
    target: Tensor,
    kernel_size: int = 5,
    stride: int = 1,
    ignore_index: int = 255,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Local costs of Eq. (4) of Guo et al. 2018: softmax cross-entropy of every centre's merged
    vector :func:`selective_pooling` against the centre's label.

    Args:
        logits: ``(B, C, H, W)`` class scores.
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        ignore_index: label of the pixels that take no part.
        backend: ``"compiled"`` (one fused loop through ``torch.compile``: the first call of
            each shape compiles, which needs a C++ compiler on CPU or Triton on CUDA),
            ``"sparse"`` (banded sparse matrix products, nothing to compile, 2 to 3 times
            slower) or ``"auto"``: compiled, unless ``torch.compile`` cannot run here (it
            failed before on this device type, with one warning, or is switched off), then
            sparse. The same value and gradient up to float rounding.

    Returns:
        ``(costs, valid)``, both ``(B, Hc * Wc)`` over the centre grid: float32 (or better)
        non-negative costs, 0 where ``valid`` (the centre's label is not ``ignore_index``) is
        False; every cost is NaN if a logit is not finite. Empty logits (``B``, ``H`` or ``W``
        = 0) give empty costs, with a graph, on every backend.

    Raises:
        ValueError: ``kernel_size`` even, below 1 or above 63, ``stride`` below 1, an
            unknown ``backend``.
        TypeError: ``kernel_size`` or ``stride`` not an int.
        RuntimeError: ``backend="compiled"`` where ``torch.compile`` cannot compile.

    Example:
        >>> costs, valid = locally_adaptive_costs(
        ...     torch.zeros(2, 3, 5, 5), torch.zeros(2, 5, 5, dtype=torch.long), stride=2,
        ...     backend="sparse",
        ... )
        >>> costs.shape, round(costs[0, 0].item(), 4)  # 3 x 3 centres; all scores equal: log 3
        (torch.Size([2, 9]), 1.0986)
    """
    auto = check_backend(backend) == "auto"
    if auto:
        backend = "sparse" if _compile_unavailable(logits.device.type) else "compiled"
    if backend == "compiled" and logits.numel() > 0:  # the sparse path returns empty input
        check_kernel_size(kernel_size)
        check_stride(stride)
        target = target.long()
        labels = target.masked_fill(target == ignore_index, -1)
        costs, check = _FusedLocalCosts.apply(logits, labels, kernel_size, stride, auto)
        return costs + check, target[:, ::stride, ::stride].flatten(1) != ignore_index
    rows, centre_target, check = _selective_pooling_rows(
        logits, target, kernel_size, stride, ignore_index
    )
    C = rows.shape[-1]
    flat = centre_target.flatten(1)
    costs = F.cross_entropy(
        rows.view(-1, C), flat.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    # A non-finite logit can sit where no cost reads it (an ignored pixel far from every valid
    # centre) and still reach the gradient: every cost turns NaN then, so that it is seen.
    return costs.view_as(flat) + check, flat != ignore_index
