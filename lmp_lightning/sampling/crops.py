"""Training crops placed by the performance-aware sampler: centred on a pixel of the requested
class, randomly scaled and flipped (albumentations with explicitly drawn parameters)."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from torch import Tensor
from torch.utils.data import Dataset

from lmp_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lmp_lightning.sampling.class_statistics import ClassStatistics
from lmp_lightning.sampling.sampler import NO_CLASS

__all__ = ["ClassCenteredCrops"]


class ClassCenteredCrops(Dataset[dict[str, Tensor]]):
    """Crops of ``(image index, class, crop seed)`` draws of :class:`PerformanceAwareSampler`.

    From the crop seed: a scale ``s`` uniform in ``scale_range``, a horizontal flip with
    probability 1/2, and the centre: one of the stored pixels of the class (``stats.points``),
    or a uniformly random pixel for a uniform draw (class ``-1``). The window of
    ``crop_size / s`` pixels around the centre is cut (padded with 0 and ``ignore_index`` where
    it leaves the image), resized to ``crop_size`` (the mask with nearest neighbour), flipped
    and normalised: the same augmentation as the uniform pipeline, with the crop placed. The
    sample's ``"draw"`` entry is the ``(image, class, crop seed)`` it was made from.

    Args:
        dataset: the untransformed training set (``{"image", "mask"}`` numpy samples).
        stats: its :class:`ClassStatistics`.
        crop_size: ``(height, width)`` of the crops.
        scale_range: ``(low, high)`` of the random scale.
        mean: normalisation mean.
        std: normalisation standard deviation.
        ignore_index: the mask value of padding.
    """

    def __init__(
        self,
        dataset: Dataset,
        stats: ClassStatistics,
        crop_size: int | Sequence[int],
        scale_range: Sequence[float] = (0.5, 1.5),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
    ) -> None:
        self.dataset, self.stats = dataset, stats
        size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.crop_h, self.crop_w = int(size[0]), int(size[1])
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.ignore_index = ignore_index
        self.finish = A.Compose([A.Normalize(mean=tuple(mean), std=tuple(std)), ToTensorV2()])

    def __len__(self) -> int:
        return self.stats.num_images

    def centre(
        self, image_index: int, cls: int, rng: np.random.Generator, shape: tuple[int, int]
    ) -> tuple[int, int]:
        """The crop's centre pixel ``(row, column)``."""
        if cls == NO_CLASS:
            return int(rng.integers(shape[0])), int(rng.integers(shape[1]))
        points = self.stats.points[image_index, cls]
        points = points[points[:, 0] >= 0]
        if len(points) == 0:
            raise ValueError(f"image {image_index} has no stored pixel of class {cls}")
        row, col = points[int(rng.integers(len(points)))].tolist()
        return int(row), int(col)

    def __getitem__(self, draw: tuple[int, int, int]) -> dict[str, Tensor]:
        image_index, cls, crop_seed = draw
        sample = self.dataset[image_index]
        image, mask = sample["image"], np.asarray(sample["mask"])
        rng = np.random.default_rng(crop_seed)
        scale = rng.uniform(*self.scale_range)
        flip = bool(rng.random() < 0.5)
        row, col = self.centre(image_index, cls, rng, mask.shape)
        win_h = max(1, round(self.crop_h / scale))
        win_w = max(1, round(self.crop_w / scale))
        top, left = row - win_h // 2, col - win_w // 2
        H, W = mask.shape
        pad = (max(0, -left), max(0, -top), max(0, left + win_w - W), max(0, top + win_h - H))
        x0, y0 = left + pad[0], top + pad[1]
        placed = A.Compose(
            [
                A.Pad(
                    padding=pad,
                    fill=0,
                    fill_mask=self.ignore_index,
                    border_mode=cv2.BORDER_CONSTANT,
                ),
                A.Crop(x_min=x0, y_min=y0, x_max=x0 + win_w, y_max=y0 + win_h),
                A.Resize(
                    self.crop_h,
                    self.crop_w,
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_NEAREST,
                ),
                A.HorizontalFlip(p=1.0 if flip else 0.0),
            ]
        )(image=image, mask=mask)
        out = self.finish(image=placed["image"], mask=placed["mask"])
        draw_tensor = torch.tensor([image_index, cls, crop_seed], dtype=torch.int64)
        return {"image": out["image"], "mask": out["mask"].long(), "draw": draw_tensor}
