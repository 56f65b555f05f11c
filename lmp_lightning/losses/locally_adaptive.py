"""The locally adaptive learning loss of Guo, Ren, Gu, Xu and Wu, 2018 (Section 3)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from lmp_lightning.losses.base import Reduction, SegmentationLoss, register_loss
from lmp_lightning.losses.functional import (
    check_backend,
    check_kernel_size,
    check_minkowski_k,
    check_p,
    check_stride,
    locally_adaptive_costs,
    loss_max_pooling,
    minkowski_pooling,
    resolve_m,
)

__all__ = ["LocallyAdaptiveLoss"]

POOLINGS = ("minkowski", "lmp")


@register_loss("lall")
class LocallyAdaptiveLoss(SegmentationLoss):
    """Locally adaptive learning loss: local costs of merged neighbourhoods, pooled per image.

    Every pixel's scores are normalised to standard scores; for every centre pixel on the stride
    grid whose label is not ``ignore_index``, the selective pooling filter of Eq. (2) averages
    the normalised scores of the ``kernel_size x kernel_size`` neighbours that share the centre's
    label, weighted ``2 ** (1 - d)`` by their chessboard distance ``d``; Eq. (4) takes the
    softmax cross-entropy of that merged vector against the centre's label
    (:func:`~lmp_lightning.losses.functional.locally_adaptive_costs`). The costs of each image
    are pooled with the Minkowski mean of Eq. (5),
    ``(mean of cost ** minkowski_k) ** (1 / minkowski_k)``, or, with ``pooling="lmp"``, with
    loss max-pooling (the combination Section 3.3 proposes). The result is the mean over the
    images that have a valid centre; a batch without one gives 0 with a graph, and so does an
    empty one (``B``, ``H`` or ``W`` = 0, on every backend; ``F.cross_entropy`` gives NaN there),
    as for the other losses.

    Memory is O(C * H * W) for any kernel size (no unfolded windows); logits of any floating
    dtype are computed in float32 or better.

    Args:
        kernel_size: odd side of the filter window, at most 63 (the paper tries 3, 5 and 7; 5
            is best): see :data:`~lmp_lightning.losses.functional.locally_adaptive.MAX_KERNEL_SIZE`.
        minkowski_k: exponent ``k >= 1`` of the Minkowski pooling (the paper uses 3).
        stride: spacing of the grid of centre pixels (the paper uses 1).
        ignore_index: the label of pixels that take no part in the loss (``None``: no
            label is ignored).
        reduction: ``"mean"`` (described above) or ``"sum"`` (the same terms summed; see
            :class:`~lmp_lightning.losses.SegmentationLoss`).
        pooling: ``"minkowski"`` (Eq. 5) or ``"lmp"`` (loss max-pooling of the local costs).
        p: the p-norm bound of loss max-pooling, ``p >= 1`` (used with ``pooling="lmp"``).
        m: loss max-pooling's minimum number of supported centres, as a fraction in ``(0, 1]``
            of each image's valid centres (used with ``pooling="lmp"``).
        m_pixels: the same as an absolute count ``>= 1``; it replaces ``m``.
        backend: how the selective pooling runs: ``"compiled"`` (one fused loop through
            ``torch.compile``; the first call of each input shape compiles, which needs a C++
            compiler for CPU tensors or Triton for CUDA ones), ``"sparse"`` (banded sparse
            matrix products, nothing to compile, slower: see the benchmarks) or ``"auto"``:
            compiled where ``torch.compile`` works, else sparse
            (after one warning the first time compiling fails on a device type). All give the
            same value and gradient up to float rounding.

    Raises:
        ValueError: ``kernel_size`` even, below 1 or above 63, ``minkowski_k`` below 1,
            ``stride`` below 1, an unknown ``pooling`` or ``backend``, ``p < 1``, ``m`` outside
            ``(0, 1]``, ``m_pixels < 1``.
        TypeError: an argument of the wrong type.

    Example:
        >>> import torch
        >>> loss = LocallyAdaptiveLoss(kernel_size=3, backend="sparse")  # nothing to compile
        >>> logits = torch.zeros(2, 3, 4, 4, requires_grad=True)
        >>> value = loss(logits, torch.randint(0, 3, (2, 4, 4)))
        >>> value.backward()
        >>> round(value.item(), 4)  # all scores equal: every merged vector is 0, its cost log 3
        1.0986
    """

    def __init__(
        self,
        kernel_size: int = 5,
        minkowski_k: float = 3.0,
        stride: int = 1,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        pooling: Literal["minkowski", "lmp"] = "minkowski",
        p: float = 1.3,
        m: float = 0.25,
        m_pixels: int | None = None,
        backend: Literal["auto", "sparse", "compiled"] = "auto",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(ignore_index, validate_args, reduction)
        self.kernel_size = check_kernel_size(kernel_size)
        self.minkowski_k = check_minkowski_k(minkowski_k)
        self.stride = check_stride(stride)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got pooling={pooling!r}")
        self.pooling = pooling
        self.p = check_p(p)
        resolve_m(m, Tensor([1]), m_pixels)  # validates m and m_pixels
        self.m, self.m_pixels = float(m), m_pixels
        self.backend = check_backend(backend)

    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        costs, valid = locally_adaptive_costs(
            logits, target, self.kernel_size, self.stride, self._ignore, self.backend
        )
        if self.pooling == "lmp":
            per_image = loss_max_pooling(costs, valid, self.p, self.m, self.m_pixels, check=False)
        else:
            per_image = minkowski_pooling(costs, valid, self.minkowski_k)
        return self._reduce_images(per_image, valid)

    def extra_repr(self) -> str:
        pooling = (
            f"pooling='lmp', p={self.p:g}, m={self.m:g}"
            if self.pooling == "lmp"
            else f"pooling='minkowski', minkowski_k={self.minkowski_k:g}"
        )
        backend = f", backend={self.backend!r}" if self.backend != "auto" else ""
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, {pooling}, "
            f"ignore_index={self.ignore_index}{self._reduction_repr()}{backend}"
        )
