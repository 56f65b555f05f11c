"""The sparse backend of the locally adaptive loss: the selective pooling filter of Eq. (2) as
one banded sparse matrix product per band of centres, and its autograd function (the approach
the docstring of :mod:`lmp_lightning.losses.functional.locally_adaptive` describes).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.losses.functional.locally_adaptive_common import (
    STD_EPS,
    _compute_dtype,
    _first_order,
    _offset_weights,
)


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
