"""Per-pixel losses and input checks shared by every loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "check_logits_target",
    "median_frequency_weights",
    "pixel_cross_entropy",
    "softmax_focal_loss",
    "upcast",
]


def upcast(logits: Tensor) -> Tensor:
    """``logits`` in float32 or better: fp16 and bf16 are upcast, float64 stays.

    Example:
        >>> upcast(torch.zeros(1, dtype=torch.bfloat16)).dtype
        torch.float32
        >>> upcast(torch.zeros(1, dtype=torch.float64)).dtype
        torch.float64
    """
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def check_shapes(logits: Tensor, target: Tensor) -> Tensor:
    """Checks the types and shapes of a ``(logits, target)`` pair (no pass over the data) and
    returns ``target`` as int64 of shape ``(B, H, W)``.

    ``target`` may also be ``(B, 1, H, W)``, as torchgeo and segmentation_models_pytorch give
    masks; the channel is dropped.

    Raises:
        ValueError: on shape mismatches, or logits with one channel (these losses are
            multiclass: a binary task has two classes).
        TypeError: on non-floating logits or non-integer targets.
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(
            "logits must be a floating-point tensor of shape (B, C, H, W), got "
            + (f"dtype {logits.dtype}" if isinstance(logits, Tensor) else type(logits).__name__)
        )
    if not isinstance(target, Tensor) or target.is_floating_point() or target.is_complex():
        raise TypeError(
            "target must be an integer tensor of shape (B, H, W), got "
            + (f"dtype {target.dtype}" if isinstance(target, Tensor) else type(target).__name__)
        )
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (B, C, H, W), got {tuple(logits.shape)}")
    B, C, H, W = logits.shape
    if C < 2:
        raise ValueError(
            f"logits have {C} channel{'s' if C != 1 else ''} {tuple(logits.shape)}: these "
            "losses are multiclass softmax losses and need C >= 2 class scores (a binary task "
            "is C = 2: background and foreground)"
        )
    target = drop_mask_channel(target)
    if tuple(target.shape) != (B, H, W):
        raise ValueError(
            f"target must have shape (B, H, W) = {(B, H, W)} (or (B, 1, H, W)) to match logits "
            f"{tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    return target.long()


def drop_mask_channel(target: Tensor) -> Tensor:
    """``(B, 1, H, W)`` masks (torchgeo's, smp's) as ``(B, H, W)``; any other shape as it is."""
    return target[:, 0] if target.ndim == 4 and target.shape[1] == 1 else target


def labels_out_of_range(target: Tensor, num_classes: int, ignore_index: int) -> list[int]:
    """Up to 10 labels of ``target`` outside ``[0, num_classes)`` other than ``ignore_index``
    (a host synchronisation: for error messages)."""
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    return torch.unique(target[bad])[:10].tolist()


def check_logits_target(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Validates a segmentation ``(logits, target)`` pair and returns ``target`` as int64.

    Args:
        logits: ``(B, C, H, W)`` floating, finite class scores.
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        ignore_index: the label of pixels that take no part in the loss.

    Returns:
        ``target`` as an int64 tensor.

    Raises:
        ValueError: on shape mismatches, non-finite logits or labels out of range (the offending
            values are named).
        TypeError: on non-floating logits or non-integer targets.
    """
    target = check_shapes(logits, target)
    values = labels_out_of_range(target, logits.shape[1], ignore_index)
    if values:
        raise ValueError(
            f"target has labels {values} outside [0, {logits.shape[1]}) that are not "
            f"ignore_index={ignore_index}"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits contain NaN or infinite values")
    return target


class _PixelCrossEntropy(torch.autograd.Function):
    """Per-pixel cross-entropy ``-log softmax(logits)[target]`` (0 where ignored) with a backward
    of two passes, ``softmax(logits) g`` and ``-g`` added at the target class.

    PyTorch's own backward of ``F.cross_entropy(reduction="none")`` first zeroes a gradient of
    the logits' size for the NLL step, then reads it again in the log-softmax's backward: on CPU
    that makes forward+backward slower (``benchmarks/bench_losses.py`` measures it). The
    log-probabilities are saved, as autograd saves them for ``F.cross_entropy``,
    and are returned as a third output, which callers drop: saved as an output, they carry this
    function's node, so that a backward with ``create_graph=True`` (a gradient penalty, double
    backward) is written with differentiable operations on them and is differentiable again,
    to any order. Unused outputs get no gradient (``set_materialize_grads(False)``): the usual
    backward allocates nothing more. Not through ``torch.func`` transforms (they need the
    ``setup_context`` form). ``torch.compile`` works. The forward writes nothing in place (an
    in-place write on the gathered view gave a zero gradient under ``torch.compile`` in torch
    2.11), and the mask it returns is not the one it saves (``invalid``), so the caller may
    change it.
    """

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, target: Tensor, ignore_index: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        log_p = torch.log_softmax(logits, 1)
        invalid = target == ignore_index
        safe = target.masked_fill(invalid, 0)[:, None]
        losses = torch.where(invalid, 0.0, log_p.gather(1, safe)[:, 0].neg())
        ctx.save_for_backward(log_p, safe, invalid)
        ctx.set_materialize_grads(False)
        valid = ~invalid
        ctx.mark_non_differentiable(valid)
        return losses, valid, log_p

    @staticmethod
    def backward(
        ctx: Any, grad: Tensor | None, _: Tensor | None, grad_log_p: Tensor | None
    ) -> tuple[Tensor | None, None, None]:
        log_p, safe, invalid = ctx.saved_tensors
        if grad is None and grad_log_p is None:
            return None, None, None
        if grad is not None and grad_log_p is None and not torch.is_grad_enabled():  # in place
            g = grad.masked_fill(invalid, 0.0)[:, None]
            out = torch.exp(log_p).mul_(g)
            return out.scatter_add_(1, safe, g.neg_()), None, None
        # create_graph=True, or a gradient through log_p (the double backward of the line
        # above): the same formula through log_softmax's backward, out of place.
        total = torch.zeros_like(log_p) if grad_log_p is None else grad_log_p
        if grad is not None:
            total = total.scatter_add(1, safe, grad.masked_fill(invalid, 0.0)[:, None].neg())
        return total - torch.exp(log_p) * total.sum(1, keepdim=True), None, None


def pixel_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Per-pixel softmax cross-entropy, flattened per image, computed in float32 or better.

    The same values and gradients as ``F.cross_entropy(..., reduction="none")``, to any order
    (``create_graph=True`` works). On CPU with a faster backward (:class:`_PixelCrossEntropy`);
    on a GPU, where the kernels are launch-bound and ``scatter_add_`` has no deterministic CUDA
    kernel in every release (``Trainer(deterministic=True)``), it is ``F.cross_entropy`` itself.

    Args:
        logits: ``(B, C, H, W)`` class scores (fp16 and bf16 are upcast).
        target: ``(B, H, W)`` integer labels in ``[0, C)`` or ``ignore_index``.
        ignore_index: label of ignored pixels; their loss is 0 and their mask entry False.

    Returns:
        ``(losses, valid)``, both ``(B, H * W)``.

    Example:
        >>> target = torch.tensor([[[3, 255]]])
        >>> pixel_cross_entropy(torch.zeros(1, 4, 1, 2), target, ignore_index=255)
        (tensor([[1.3863, 0.0000]]), tensor([[ True, False]]))
    """
    logits, target = upcast(logits), target.long()
    if logits.device.type != "cpu":  # PyTorch's own: see the note above
        losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
        return losses.flatten(1), (target != ignore_index).flatten(1)
    losses, valid, _ = _PixelCrossEntropy.apply(logits, target, ignore_index)
    return losses.flatten(1), valid.flatten(1)


def softmax_focal_loss(
    logits: Tensor, target: Tensor, ignore_index: int, alpha: float = 0.25, gamma: float = 2.0
) -> tuple[Tensor, Tensor]:
    r"""Per-pixel softmax focal loss of Lin et al. 2017, :math:`-\alpha (1 - p_t)^\gamma \log p_t`.

    Args:
        logits: ``(B, C, H, W)`` class scores.
        target: ``(B, H, W)`` int64 labels.
        ignore_index: label of ignored pixels (loss 0, mask False).
        alpha: the constant weighting factor.
        gamma: the focusing parameter; ``gamma = 0`` is ``alpha`` times cross-entropy.

    Returns:
        ``(losses, valid)``, both ``(B, H * W)``.
    """
    ce, valid = pixel_cross_entropy(logits, target, ignore_index)
    p_t = torch.exp(-ce)
    return alpha * (1.0 - p_t).pow(gamma) * ce, valid


def median_frequency_weights(per_image_counts: Tensor | Sequence[Sequence[int]]) -> Tensor:
    """Class weights of median frequency balancing (Eigen and Fergus, ICCV 2015).

    ``freq_c`` is the number of pixels of class ``c`` divided by the number of labelled pixels
    of the images in which ``c`` appears; ``weight_c = median(freq) / freq_c``. Classes that
    never appear get weight 0 and are left out of the median.

    Args:
        per_image_counts: ``(num_images, C)`` labelled pixel counts of every class in every image.

    Returns:
        ``(C,)`` float32 weights.

    Raises:
        ValueError: if the counts are not a non-negative 2-D table with at least one pixel.

    Example:
        >>> median_frequency_weights(torch.tensor([[30, 10, 0], [60, 0, 40]]))
        tensor([0.6222, 1.6000, 1.0000])
    """
    counts = torch.as_tensor(per_image_counts, dtype=torch.float64)
    if (
        counts.ndim != 2
        or not bool(counts.isfinite().all())
        or bool((counts < 0).any())
        or counts.sum() <= 0
    ):
        raise ValueError(
            "per_image_counts must be a non-negative (num_images, num_classes) table with at least "
            f"one pixel, got shape {tuple(counts.shape)}"
        )
    image_totals = counts.sum(1, keepdim=True)  # labelled pixels of every image
    present = counts > 0
    freq = counts.sum(0) / (image_totals * present).sum(0).clamp(min=1.0)
    seen = present.any(0)
    median = torch.quantile(freq[seen], 0.5)  # the mean of the middle two for an even count
    weights = torch.where(seen, median / freq.clamp(min=1e-300), torch.zeros_like(freq))
    return weights.float()
