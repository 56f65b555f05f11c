"""albumentations pipelines: random scale, pad, crop and flip for training; none at evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "check_normalisation",
    "eval_transform",
    "rescale_image",
    "rescale_label",
    "scaled_size",
    "train_transform",
]

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


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` times ``scale``, rounded, at least 1.

    Example:
        >>> scaled_size(360, 480, 0.5)
        (180, 240)
    """
    return max(1, round(height * scale)), max(1, round(width * scale))


def rescale_image(image: np.ndarray, scale: float) -> np.ndarray:
    """An ``HxWxC`` image resized by ``scale``: area interpolation when shrinking, linear when
    enlarging. The one resize of every path: data sets with a ``scale`` option, zoo entries'
    ``segment`` and ``lmp-seg predict``.

    Example:
        >>> rescale_image(np.zeros((360, 480, 3), np.uint8), 0.5).shape
        (180, 240, 3)
    """
    if scale == 1.0:
        return image
    height, width = scaled_size(image.shape[0], image.shape[1], scale)
    smooth = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=smooth)


def rescale_label(label: np.ndarray, scale: float) -> np.ndarray:
    """An ``HxW`` label map resized by ``scale`` with nearest-neighbour interpolation."""
    if scale == 1.0:
        return label
    height, width = scaled_size(label.shape[0], label.shape[1], scale)
    return cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


def check_normalisation(mean: Sequence[float], std: Sequence[float]) -> None:
    """``mean`` and ``std`` of three finite numbers each, ``std`` within [1e-6, 1e3] (a std of
    0 divides every pixel by zero)."""
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise ValueError(f"{name} must be three finite numbers (R, G, B), got {list(values)}")
    if not all(1e-6 <= v <= 1e3 for v in std):
        raise ValueError(f"std must lie within [1e-6, 1e3] in each channel, got {list(std)}")
