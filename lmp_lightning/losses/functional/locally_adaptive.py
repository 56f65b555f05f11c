"""The locally adaptive learning loss over tensors: Guo, Ren, Gu, Xu and Wu, "Locally Adaptive
Learning Loss for Semantic Image Segmentation", 2018 (Section 3, Eqs. 2, 4 and 5).

The selective pooling filter of Eq. (2) is linear in the normalised scores: a sparse matrix with
``kernel_size ** 2`` entries per centre (the weights of the neighbours of the same label, 0 for the
others) times the scores laid out channels last. It runs as one sparse-dense product per band of
centres (MKL on CPU, cuSPARSE on CUDA), so memory stays O(C * H * W) whatever the kernel size,
and the backward is the same product (the matrix is symmetric up to a diagonal scaling). Its
autograd function saves only the logits, the labels and the kept counts. Unfolding the window
(``F.unfold``) would hold ``kernel_size ** 2`` copies of the logits.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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

STD_EPS = 1e-5
"""Added to the standard deviation of the standard score, ``(x - mean) / (std + STD_EPS)``."""


MAX_KERNEL_SIZE = 63
"""The largest side of the selective pooling window. Every backend costs ``kernel_size ** 2``
per centre: the compiled one writes a term per window offset (3969 at 63), the sparse one holds
a band matrix of 16,384 centres by ``kernel_size ** 2`` entries (65 million, about 0.5 GB with
their indices in float32, at 63); the paper tries 3, 5 and 7. A window wider than
``2 * max(H, W) - 1`` reaches every pixel from every centre: a larger one gives the same value."""


def check_kernel_size(kernel_size: int) -> int:
    """Validates the side of the selective pooling window: an odd int in
    ``[1, MAX_KERNEL_SIZE]`` (63).

    Args:
        kernel_size: the candidate value.

    Returns:
        ``kernel_size`` unchanged.

    Raises:
        ValueError: ``kernel_size`` even, below 1 or above :data:`MAX_KERNEL_SIZE`.
        TypeError: ``kernel_size`` not an int.

    Example:
        >>> check_kernel_size(5)
        5
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise TypeError(f"kernel_size must be an odd int >= 1, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got kernel_size={kernel_size}")
    if kernel_size > MAX_KERNEL_SIZE:
        raise ValueError(
            f"kernel_size must be at most {MAX_KERNEL_SIZE} (the pooling costs kernel_size ** 2 "
            f"per pixel; the paper uses 3 to 7), got kernel_size={kernel_size}"
        )
    return kernel_size


def check_stride(stride: int) -> int:
    """Validates the stride of the filter over the centre pixels: an int ``>= 1``.

    Args:
        stride: the candidate value.

    Returns:
        ``stride`` unchanged.

    Raises:
        ValueError: ``stride`` below 1.
        TypeError: ``stride`` not an int.

    Example:
        >>> check_stride(2)
        2
    """
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise TypeError(f"stride must be an int >= 1, got {stride!r}")
    if stride < 1:
        raise ValueError(f"stride must be an int >= 1, got stride={stride}")
    return stride


def check_minkowski_k(minkowski_k: float) -> float:
    """Validates the exponent of the Minkowski pooling of Eq. (5): a finite real ``>= 1``.

    Args:
        minkowski_k: the candidate value.

    Returns:
        ``minkowski_k`` as a float.

    Raises:
        ValueError: ``minkowski_k`` below 1, NaN or infinite.
        TypeError: ``minkowski_k`` not a real number.

    Example:
        >>> check_minkowski_k(3)
        3.0
    """
    if isinstance(minkowski_k, bool) or not isinstance(minkowski_k, (int, float)):
        raise TypeError(f"minkowski_k must be a real number >= 1, got {minkowski_k!r}")
    # Comparisons only (NaN fails them): math.isfinite breaks a compiled graph on a symbolic float
    if not (1 <= minkowski_k < math.inf):
        raise ValueError(f"minkowski_k must be a finite number >= 1, got minkowski_k={minkowski_k}")
    return float(minkowski_k)


def _compute_dtype(logits: Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)


def standard_score(logits: Tensor) -> Tensor:
    """Standard-score normalisation of every pixel's class scores (Section 3.1).

    ``x = (x_raw - mean) / (std + 1e-5)`` over the class dimension, ``std`` the population
    standard deviation (divided by ``C``), computed in float32 or better.

    Args:
        logits: ``(B, C, H, W)`` class scores.

    Returns:
        ``(B, C, H, W)`` normalised scores, float32 for half-precision input.

    Example:
        >>> standard_score(torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)).flatten()
        tensor([-1.2247,  0.0000,  1.2247])
    """
    z = logits.to(_compute_dtype(logits))
    std, mean = _std_mean(z)
    return (z - mean) / (std + STD_EPS)


def _std_mean(z: Tensor) -> tuple[Tensor, Tensor]:
    """The population standard deviation and the mean over dim 1, kept. Written out: over a
    small class dimension it is faster than ``torch.std_mean`` on CPU."""
    mean = z.mean(1, keepdim=True)
    d = z - mean
    return d.mul_(d).mean(1, keepdim=True).sqrt_(), mean


def _offset_weights(kernel_size: int) -> list[float]:
    """The weight ``2 ** (1 - d)`` of every window offset ``(du, dv)``, row by row (du, then dv),
    d the chessboard distance (Section 3.2: 2 at the centre, 1 at d = 1, 1/2 at d = 2, ...)."""
    r = kernel_size // 2
    return [
        2.0 ** (1 - max(abs(du), abs(dv))) for du in range(-r, r + 1) for dv in range(-r, r + 1)
    ]


@functools.lru_cache(maxsize=8)
def _offset_weight_tensor(kernel_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """:func:`_offset_weights` as a tensor, copied to the device once (a host-to-device copy
    would synchronise every call on a GPU). Read only."""
    return torch.tensor(_offset_weights(kernel_size), dtype=dtype, device=device)


BAND_PIXELS = 16384
"""Centres per sparse matrix: a band's matrix (``kernel_size ** 2`` entries a centre) stays in
the cache and the extra memory stays small whatever the image size."""


@functools.lru_cache(maxsize=8)
def _band_structure(
    rows: int, Wc: int, Wp: int, kernel_size: int, stride: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Row pointers and column indices (int32) of the matrix of a band of ``rows x Wc`` centres:
    row ``(a, b)`` holds the ``kernel_size ** 2`` window entries of centre ``(a, b)`` on the
    padded grid (width ``Wp``), in increasing columns, counted from the band's top padded row."""
    K, r = kernel_size * kernel_size, kernel_size // 2
    grid = torch.arange(-r, r + 1, device=device, dtype=torch.int32)
    offsets = (grid[:, None] * Wp + grid[None, :]).flatten()
    a = torch.arange(rows, device=device, dtype=torch.int32) * (stride * Wp)
    b = torch.arange(Wc, device=device, dtype=torch.int32) * stride
    centre = (a[:, None] + b[None, :] + (r * Wp + r)).flatten()
    columns = (centre[:, None] + offsets[None, :]).flatten()
    crow = torch.arange(0, rows * Wc * K + 1, K, device=device, dtype=torch.int32)
    return crow, columns


def _pool_rows(
    padded: Tensor, z: Tensor, centres: Tensor, kernel_size: int, stride: int
) -> tuple[Tensor, Tensor]:
    """Eq. (2) without the division, as a sparse matrix product per band of centres.

    For every centre ``(a, b)`` on the stride grid (pixel ``(stride a, stride b)``), row
    ``(a, b)`` of the matrix holds, for each window offset, the weight ``2 ** (1 - d)`` where
    the neighbour's label equals the centre's and 0 elsewhere (the neighbour outside the image,
    or of another label). Every row has ``kernel_size ** 2`` entries in increasing columns of
    the padded grid, so the structure is fixed and the product is one call to the sparse library
    (MKL on CPU, cuSPARSE on CUDA) per band.

    Args:
        padded: ``(B, H + 2r, W + 2r)`` labels padded by ``r = kernel_size // 2`` with -1
            (ignored pixels are -1 too).
        z: ``(B, (H + 2r) * (W + 2r), C)`` values on the padded grid, channels last (0 on the
            border).
        centres: ``(B, Hc, Wc)`` the centres' labels, -2 where ignored (so they keep nothing).
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.

    Returns:
        ``(pooled, kept)``: ``(B, Hc * Wc, C)`` weighted sums and ``(B, Hc * Wc)`` the number
        of kept neighbours of every centre (``xi`` of Eq. 2), both of ``z``'s dtype.
    """
    B, _, Wp = padded.shape
    _, Hc, Wc = centres.shape
    C, k, K = z.shape[-1], kernel_size, kernel_size * kernel_size
    weights = _offset_weight_tensor(k, z.dtype, z.device)
    band = max(1, min(Hc, BAND_PIXELS // Wc))
    crow, columns = _band_structure(band, Wc, Wp, k, stride, z.device)
    pooled = z.new_empty(B, Hc * Wc, C)
    kept = z.new_empty(B, Hc * Wc)
    same = z.new_empty(band, Wc, k, k)
    windows = padded.unfold(1, k, stride).unfold(2, k, stride)  # (B, Hc, Wc, k, k), a view
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is tested
        warnings.filterwarnings("ignore", "Sparse CSR tensor support", UserWarning)
        for b in range(B):
            for a0 in range(0, Hc, band):
                a1 = min(Hc, a0 + band)
                n, top = (a1 - a0) * Wc, a0 * stride * Wp
                values = same[: a1 - a0]
                torch.eq(windows[b, a0:a1], centres[b, a0:a1, :, None, None], out=values)
                values = values.view(n, K)
                rows = slice(a0 * Wc, a1 * Wc)
                torch.sum(values, -1, out=kept[b, rows])
                values.mul_(weights)
                width = ((a1 - a0 - 1) * stride + k) * Wp  # the padded rows the band reads
                matrix = torch.sparse_csr_tensor(
                    crow[: n + 1],
                    columns[: n * K],
                    values.view(-1),
                    (n, width),
                    check_invariants=False,
                )
                torch.addmm(
                    pooled[b, rows], matrix, z[b, top : top + width], beta=0, out=pooled[b, rows]
                )
    return pooled, kept


def _standard_score_padded(logits: Tensor, r: int) -> tuple[Tensor, Tensor, Tensor]:
    """The standard score of every pixel, written channels last into a grid padded by ``r``
    with zeros.

    Returns:
        ``(z, std, check)``: ``z`` is ``(B, H + 2r, W + 2r, C)`` in float32 or better, ``std``
        the ``(B, H, W, 1)`` population standard deviations, ``check`` a scalar that is 0, or
        NaN if a logit is not finite (read from the per-pixel means: no pass over the logits).
    """
    B, C, H, W = logits.shape
    dtype = _compute_dtype(logits)
    z = logits.new_zeros(B, H + 2 * r, W + 2 * r, C, dtype=dtype)  # one memset: faster than
    # zeroing the four border strips
    logits = logits.to(dtype)
    mean = logits.mean(1, keepdim=True)
    d = logits - mean
    std = torch.mul(d, d).mean(1, keepdim=True).sqrt_()  # faster than vector_norm on CPU
    torch.div(d, std + STD_EPS, out=z[:, r : r + H, r : r + W].permute(0, 3, 1, 2))
    return z, std.permute(0, 2, 3, 1), mean.sum() * 0.0


def _pad_labels(labels: Tensor, r: int, num_classes: int) -> Tensor:
    """Labels in ``[-1, num_classes)`` (-1 ignored) as int16 (or int32), padded by ``r`` with -1."""
    small = torch.int16 if num_classes < 2**15 else torch.int32
    return F.pad(labels.to(small), (r, r, r, r), value=-1)


def _first_order(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Marks the backward of an autograd function of the loss as first order only: called with
    ``create_graph=True`` it raises, where ``once_differentiable`` would return a gradient
    without a graph whenever the incoming gradient has none (a silent zero second derivative).
    """

    @functools.wraps(backward)
    def first_order_backward(ctx: Any, *grads: Any) -> Any:
        if torch.is_grad_enabled():  # autograd runs a backward in grad mode for create_graph
            raise RuntimeError(
                "the locally adaptive loss has no double backward: its gradient cannot be "
                "differentiated again, so create_graph=True (a gradient penalty, a Hessian "
                "product) is not supported; call backward or torch.autograd.grad without it"
            )
        return backward(ctx, *grads)

    return first_order_backward


class _SelectivePooling(torch.autograd.Function):
    """Eq. (2) on standard scores as banded sparse matrix products (:func:`_pool_rows`).

    The matrix is symmetric up to the division by ``xi``: entry (i, j) is nonzero when pixels i
    and j share a (valid) label, with the weight of offset ``j - i``, and the weights are even
    in the offset. So ``d x_j = sum_i S_ij g_i / xi_i`` is the forward product, at stride 1,
    applied to ``g / xi`` placed at the centres (0 elsewhere). The standard scores (one copy of
    the logits, channels last) are saved for the backward; nothing of size ``kernel_size ** 2``
    is. A second output, 0 or NaN, says whether every logit is finite.
    """

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, labels: Tensor, kernel_size: int, stride: int
    ) -> tuple[Tensor, Tensor]:
        r = kernel_size // 2
        B, C, H, W = logits.shape
        z, std, check = _standard_score_padded(logits, r)
        padded = _pad_labels(labels, r, C)
        centres = padded[:, r : r + H : stride, r : r + W : stride]
        centres = centres.masked_fill(centres < 0, -2)
        pooled, kept = _pool_rows(padded, z.view(B, -1, C), centres, kernel_size, stride)
        kept.clamp_(min=1.0)  # invalid centres: f = 0, their cost is dropped downstream
        pooled.div_(kept[..., None])
        ctx.save_for_backward(z, std, padded, kept)
        ctx.kernel_size, ctx.stride, ctx.input_dtype = kernel_size, stride, logits.dtype
        ctx.mark_non_differentiable(check)
        return pooled, check  # (B, Hc * Wc, C), ()

    @staticmethod
    @_first_order
    def backward(ctx: Any, grad_f: Tensor, _: Tensor) -> tuple[Tensor, None, None, None]:
        z, std, padded, kept = ctx.saved_tensors
        k, stride = ctx.kernel_size, ctx.stride
        r = k // 2
        B, Hp, Wp, C = z.shape
        H, W = Hp - 2 * r, Wp - 2 * r
        Hc, Wc = -(-H // stride), -(-W // stride)
        grid = torch.zeros_like(z)
        torch.div(
            grad_f.to(z.dtype).view(B, Hc, Wc, C),
            kept.view(B, Hc, Wc, 1),
            out=grid[:, r : r + H : stride, r : r + W : stride],
        )
        del grad_f
        labels = padded[:, r : r + H, r : r + W]
        g, _ = _pool_rows(padded, grid.view(B, -1, C), labels.masked_fill(labels < 0, -2), k, 1)
        del grid
        # Through the standard score x = d / s, d = z - mean, s = std + eps (std = |d| / sqrt C):
        # dL/dz = (g - mean(g)) / s - x <g, x> / (C std), the last term 0 where std = 0.
        g = g.view(B, H, W, C)
        x = z[:, r : r + H, r : r + W]
        g_dot_x = torch.linalg.vecdot(g, x, dim=-1).unsqueeze(-1)
        coef = torch.where(std > 0, g_dot_x / (C * std), torch.zeros_like(std))
        g_mean = g.mean(-1, keepdim=True)
        g.sub_(g_mean).div_(std + STD_EPS)
        # The last step writes the gradient in the logits' own layout (B, C, H, W).
        out = torch.empty(B, C, H, W, dtype=z.dtype, device=z.device)
        torch.addcmul(g, x, coef, value=-1.0, out=out.permute(0, 2, 3, 1))
        return out.to(ctx.input_dtype), None, None, None


def _pool_dense(
    z: Tensor, labels: Tensor, centres: Tensor, kernel_size: int, stride: int, divide: bool
) -> tuple[Tensor, Tensor | None]:
    """Eq. (2) written as one sum over the window offsets: compiled, it is one loop that reads
    every neighbour from the cache (:func:`_compiled`).

    Args:
        z: ``(B, C, H + 2r, W + 2r)`` values, padded by ``r = kernel_size // 2``.
        labels: ``(B, 1, H + 2r, W + 2r)`` labels as ``z``'s dtype, -1 on the border and where
            ignored.
        centres: ``(B, 1, Hc, Wc)`` the labels of the centres (pixels ``(stride a, stride b)``),
            -2 where ignored (so they keep nothing).
        kernel_size: odd side of the window.
        stride: spacing of the centre grid.
        divide: divide by the number of kept neighbours (at least 1), as Eq. (2) does; without,
            the weighted sums.

    Returns:
        ``(pooled, kept)``: ``(B, C, Hc, Wc)`` and the ``(B, 1, Hc, Wc)`` counts (at least 1);
        ``kept`` is None without ``divide`` (the backward needs only the sums: nothing is
        counted then).
    """
    Hc, Wc = centres.shape[-2:]
    pooled = kept = None
    for (du, dv), weight in zip(_offsets(kernel_size), _offset_weights(kernel_size), strict=True):
        rows = slice(du, du + (Hc - 1) * stride + 1, stride)
        cols = slice(dv, dv + (Wc - 1) * stride + 1, stride)
        same = labels[:, :, rows, cols] == centres
        term = torch.where(same, z[:, :, rows, cols] * weight, 0.0)
        pooled = term if pooled is None else pooled + term
        if divide:  # the backward needs only the sums
            count = same.to(z.dtype)
            kept = count if kept is None else kept + count
    assert pooled is not None  # kernel_size >= 1: one offset at least
    if kept is None:
        return pooled, None
    kept = kept.clamp(min=1.0)  # invalid centres: f = 0, their cost is dropped downstream
    return pooled / kept, kept


def _offsets(kernel_size: int) -> list[tuple[int, int]]:
    """The window offsets on the padded grid, in the order of :func:`_offset_weights`."""
    return [(du, dv) for du in range(kernel_size) for dv in range(kernel_size)]


def _scores_padded(logits: Tensor, labels: Tensor, r: int, stride: int) -> tuple[Tensor, ...]:
    """The standard scores padded by ``r`` with zeros, their standard deviations, the labels
    padded with -1 (in the scores' dtype), the centres' labels (-2 where ignored) and a scalar
    that is 0, or NaN if a logit is not finite."""
    H, W = logits.shape[-2:]
    z = logits.to(_compute_dtype(logits))
    mean = z.mean(1, keepdim=True)
    d = z - mean
    std = torch.mul(d, d).mean(1, keepdim=True).sqrt()
    x = F.pad(d / (std + STD_EPS), (r, r, r, r))
    padded = F.pad(labels[:, None].to(z.dtype), (r, r, r, r), value=-1.0)
    centres = padded[:, :, r : r + H : stride, r : r + W : stride]
    return x, std, padded, torch.where(centres < 0, -2.0, centres), mean.sum() * 0.0


def _grid(grad_f: Tensor, kept: Tensor, padded: Tensor, r: int, stride: int) -> tuple[Tensor, ...]:
    """The backward's input: ``grad_f / kept`` at the centres of a grid padded by ``r`` (0
    elsewhere), and the labels of every pixel as centres (-2 where ignored)."""
    B, _, Hp, Wp = padded.shape
    H, W = Hp - 2 * r, Wp - 2 * r
    q = grad_f.to(padded.dtype) / kept
    if stride > 1:
        grid = q.new_zeros(B, q.shape[1], H, W)
        grid[:, :, ::stride, ::stride] = q
        q = grid
    centres = padded[:, :, r : r + H, r : r + W]
    return F.pad(q, (r, r, r, r)), torch.where(centres < 0, -2.0, centres)


def _cross_entropy(f: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. (4): the softmax cross-entropy of every merged vector against its centre's label,
    0 at ignored centres (label -2), and the log-sum-exp the backward reuses. Both
    ``(B, 1, Hc, Wc)``."""
    lse = torch.logsumexp(f, 1, keepdim=True)
    picked = f.gather(1, centres.clamp(min=0).long())
    return torch.where(centres >= 0, lse - picked, 0.0), lse


def _grid_cross_entropy(
    grad_costs: Tensor,
    f: Tensor,
    lse: Tensor,
    kept: Tensor,
    centres: Tensor,
    padded: Tensor,
    r: int,
    stride: int,
) -> tuple[Tensor, ...]:
    """:func:`_grid` of the gradient of :func:`_cross_entropy`: ``(softmax(f) - onehot) g``."""
    classes = torch.arange(f.shape[1], device=f.device)[None, :, None, None]
    grad = torch.where(centres >= 0, grad_costs.view_as(lse).to(f.dtype), 0.0)
    grad_f = (torch.exp(f - lse) - (classes == centres).to(f.dtype)) * grad
    return _grid(grad_f, kept, padded, r, stride)


def _scores_backward(g: Tensor, x: Tensor, std: Tensor, r: int) -> Tensor:
    """Through the standard score ``x = d / s``, ``d = z - mean``, ``s = std + eps``
    (``std = |d| / sqrt C``): ``dL/dz = (g - mean(g)) / s - x <g, x> / (C std)``, the last term
    0 where ``std = 0`` (as :meth:`_SelectivePooling.backward`, channels first)."""
    C, H, W = g.shape[1], g.shape[2], g.shape[3]
    x = x[:, :, r : r + H, r : r + W]
    coef = torch.where(std > 0, torch.mul(g, x).sum(1, keepdim=True) / (C * std), 0.0)
    return (g - g.mean(1, keepdim=True)) / (std + STD_EPS) - x * coef


_STAGES: dict[str, Callable[..., Any]] = {
    "scores": _scores_padded,
    "pool": _pool_dense,
    "cross_entropy": _cross_entropy,
    "grid_cross_entropy": _grid_cross_entropy,
    "scores_backward": _scores_backward,
}


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
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
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


def minkowski_pooling(costs: Tensor, valid: Tensor, minkowski_k: float = 3.0) -> Tensor:
    """Minkowski pooling of every row (image) of local costs, Eq. (5) of Guo et al. 2018.

    ``(mean of costs ** k over the valid entries) ** (1 / k)``; a row without a valid entry, or
    whose costs are all 0, gives 0 with a finite (zero) gradient.

    Args:
        costs: ``(B, N)`` non-negative costs (differentiable).
        valid: ``(B, N)`` boolean mask of the entries that take part.
        minkowski_k: the exponent ``k >= 1``; larger values put more weight on high costs.

    Returns:
        ``(B,)`` pooled costs.

    Raises:
        ValueError: ``minkowski_k`` below 1 or not finite.
        TypeError: ``minkowski_k`` not a real number.

    Example:
        >>> costs = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 0.0]])
        >>> valid = torch.tensor([[True, True, False], [False, False, False]])
        >>> minkowski_pooling(costs, valid, minkowski_k=3)  # ((1 + 8) / 2) ** (1 / 3)
        tensor([1.6510, 0.0000])
    """
    k = check_minkowski_k(minkowski_k)
    if costs.shape[-1] == 0:  # rows without an entry: 0 with a graph
        return costs.sum(-1)
    kept = torch.where(valid, costs, torch.zeros_like(costs))
    # Divided by each row's largest cost before the power, so that a large k neither
    # overflows (costs ** 50) nor underflows: max * (mean of (c / max) ** k) ** (1 / k).
    # The maximum is held fixed; the gradient is still exact (the pooling is 1-homogeneous).
    scale = kept.detach().amax(-1, keepdim=True)
    positive = scale.squeeze(-1) != 0  # NaN stays NaN
    ratio = kept / scale.clamp(min=torch.finfo(kept.dtype).tiny)
    mean = ratio.pow(k).sum(-1) / valid.sum(-1).clamp(min=1)
    # Clamped so that the branch that where() drops has a finite gradient at 0.
    root = mean.clamp(min=torch.finfo(mean.dtype).tiny).pow(1.0 / k) * scale.squeeze(-1)
    return torch.where(positive, root, torch.zeros_like(root))
