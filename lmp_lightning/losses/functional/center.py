"""Center loss over tensors: Wen, Zhang, Li and Qiao, "A Discriminative Feature Learning
Approach for Deep Face Recognition", ECCV 2016 (Eqs. 2 and 4), applied to decoder features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["center_distances", "center_update", "nearest_labels"]


def nearest_labels(target: Tensor, size: tuple[int, int]) -> Tensor:
    """Labels of the pixels at the centres of a coarser ``size`` grid (nearest neighbour).

    Example:
        >>> nearest_labels(torch.arange(16).view(1, 4, 4), (2, 2))
        tensor([[[ 0,  2],
                 [ 8, 10]]])
    """
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()


def _flatten(features: Tensor, labels: Tensor, ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every pixel's feature vector ``(P, D)``, its label ``(P,)`` (0 where ignored) and whether
    it takes part ``(P,)``: a mask rather than an index, so that no host synchronisation is
    needed on a GPU."""
    if features.ndim != 4 or labels.shape != (features.shape[0], *features.shape[2:]):
        raise ValueError(
            f"features must be (B, D, h, w) with labels (B, h, w); got {tuple(features.shape)} "
            f"and {tuple(labels.shape)}"
        )
    vectors = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    return vectors, labels.masked_fill(~keep, 0), keep


def center_distances(
    features: Tensor, labels: Tensor, centers: Tensor, ignore_index: int = 255
) -> tuple[Tensor, Tensor]:
    """Sum of squared distances of the valid pixels' features to their class centres.

    The centres are constants of the gradient (Wen et al. update them by their own rule).

    Args:
        features: ``(B, D, h, w)`` features.
        labels: ``(B, h, w)`` labels at the features' resolution.
        centers: ``(C, D)`` class centres.
        ignore_index: label of the pixels that take no part.

    Returns:
        ``(sum of ||x_i - c_{y_i}||^2, number of valid pixels)``, both tensors.

    Example:
        >>> features = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
        >>> center_distances(features, torch.tensor([[[0, 1]]]), torch.zeros(2, 2))
        (tensor(10.), tensor(2))
    """
    vectors, safe_labels, keep = _flatten(features, labels, ignore_index)
    dtype = torch.promote_types(vectors.dtype, torch.float32)
    diff = vectors.to(dtype) - centers.detach().to(dtype)[safe_labels]
    return torch.where(keep, diff.pow(2).sum(-1), 0.0).sum(), keep.sum()


@torch.no_grad()
def center_update(
    features: Tensor, labels: Tensor, centers: Tensor, alpha: float, ignore_index: int = 255
) -> Tensor:
    r"""Centres after one update of Eq. (4) of Wen et al. 2016.

    :math:`\Delta c_j = \sum_i \delta(y_i = j) (c_j - x_i) / (1 + \sum_i \delta(y_i = j))`,
    :math:`c_j \leftarrow c_j - \alpha \Delta c_j`, over the valid pixels of the batch; under
    ``torch.distributed`` the sums run over every process, so all processes keep the same
    centres.

    Args:
        features: ``(B, D, h, w)`` features.
        labels: ``(B, h, w)`` labels at the features' resolution.
        centers: ``(C, D)`` current centres.
        alpha: the update rate in ``(0, 1]``.
        ignore_index: label of the pixels that take no part.

    Returns:
        The ``(C, D)`` updated centres (a new tensor).

    Example:
        >>> features = torch.tensor([[[[2.0, 4.0]]]])  # (1, 1, 1, 2), both pixels of class 0
        >>> center_update(features, torch.tensor([[[0, 0]]]), torch.zeros(2, 1), alpha=0.5)
        tensor([[1.],
                [0.]])
    """
    vectors, safe_labels, keep = _flatten(features.detach().to(centers.dtype), labels, ignore_index)
    kept = torch.where(keep[:, None], vectors, 0.0)
    sums = torch.zeros_like(centers).index_add_(0, safe_labels, kept)
    counts = torch.zeros(centers.shape[0], device=centers.device, dtype=centers.dtype)
    counts.index_add_(0, safe_labels, keep.to(centers.dtype))
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
    delta = (counts[:, None] * centers - sums) / (1.0 + counts[:, None])
    return centers - alpha * delta
