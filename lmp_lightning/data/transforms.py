"""albumentations pipelines: random scale, pad, crop and flip for training; none at evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "eval_transform", "train_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _size(crop_size: int | Sequence[int]) -> tuple[int, int]:
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
        raise ValueError(
            f"crop_size must be an int or (height, width) of ints >= 1, got {crop_size}"
        )
    return size[0], size[1]


def train_transform(
    crop_size: int | Sequence[int],
    scale_range: Sequence[float] = (0.5, 1.5),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    ignore_index: int = 255,
    seed: int | None = None,
) -> A.Compose:
    """The training pipeline of both papers: random scale, pad, random crop, horizontal flip.

    The mask is scaled with nearest-neighbour interpolation and padded with ``ignore_index``
    where the scaled image is smaller than the crop; the image is padded with 0 (before
    normalisation). Output: image float32 ``(3, h, w)``, mask an integer ``(h, w)`` tensor
    (the data module makes it int64).

    Args:
        crop_size: side of the square crop, or ``(height, width)``.
        scale_range: ``(low, high)`` of the random scale factor.
        mean: per-channel mean of the normalisation (on [0, 1] pixel values).
        std: per-channel standard deviation of the normalisation.
        ignore_index: the mask value of padded pixels.
        seed: seed of the pipeline's own random generator.

    Raises:
        ValueError: a bad ``crop_size`` or ``scale_range``.

    Example:
        >>> import numpy as np
        >>> out = train_transform(64, seed=0)(image=np.zeros((40, 50, 3), np.uint8),
        ...                                   mask=np.zeros((40, 50), np.int64))
        >>> tuple(out["image"].shape), tuple(out["mask"].shape)
        ((3, 64, 64), (64, 64))
    """
    height, width = _size(crop_size)
    low, high = scale_range
    if not 0 < low <= high:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range}")
    return A.Compose(
        [
            # RandomScale multiplies by 1 + U(scale_limit): (low - 1, high - 1) gives [low, high].
            A.RandomScale(
                scale_limit=(low - 1.0, high - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                p=1.0,
            ),
            A.PadIfNeeded(
                min_height=height,
                min_width=width,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=ignore_index,
            ),
            A.RandomCrop(height=height, width=width),
            A.HorizontalFlip(p=0.5),
            A.Normalize(mean=tuple(mean), std=tuple(std)),
            ToTensorV2(),
        ],
        seed=seed,
    )


def eval_transform(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> A.Compose:
    """The evaluation pipeline: normalisation only, at full size (labels are never resized).

    Example:
        >>> import numpy as np
        >>> out = eval_transform()(image=np.zeros((37, 41, 3), np.uint8),
        ...                        mask=np.zeros((37, 41), np.int64))
        >>> tuple(out["image"].shape), tuple(out["mask"].shape)
        ((3, 37, 41), (37, 41))
    """
    return A.Compose([A.Normalize(mean=tuple(mean), std=tuple(std)), ToTensorV2()])
