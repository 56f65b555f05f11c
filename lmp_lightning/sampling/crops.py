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
from lmp_lightning.sampling.class_statistics import ClassStatistics, sample_arrays
from lmp_lightning.sampling.sampler import NO_CLASS

__all__ = ["ClassCenteredCrops"]


class ClassCenteredCrops(Dataset[dict[str, Tensor]]):
    """Crops of ``(image index, class, crop seed)`` draws of :class:`PerformanceAwareSampler`.

        From the crop seed: a scale ``s`` uniform in ``scale_range``, a horizontal flip with
        probability 1/2, and the window of ``crop_size / s`` pixels: centred on one of the stored
        pixels of the class (``stats.points``), shifted only as far as needed to stay inside an
        image that is larger than the window (the pixel stays inside), or placed uniformly for a
        uniform draw (class ``-1``). Where the window is larger than the image it is padded with 0
        and ``ignore_index``. The window is resized to ``crop_size`` (the mask with nearest
        neighbour), flipped and normalised: the uniform pipeline's augmentation (random scale, pad,
        crop, flip) with the crop placed. The
    sample's ``"draw"`` entry is the ``(image, class, crop seed)`` it was made from.

        Args:
            dataset: the untransformed training set: ``{"image", "mask"}`` dicts or ``(image,
                mask)`` tuples of ``(H, W, 3)`` images and ``(H, W)`` labels (numpy or PIL).
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
        self, image_index: int, cls: int, rng: np.random.Generator
    ) -> tuple[int, int] | None:
        """The pixel ``(row, column)`` the crop is placed on; ``None`` for a uniform draw."""
        if cls == NO_CLASS:
            return None
        points = self.stats.points[image_index, cls]
        points = points[points[:, 0] >= 0]
        if len(points) == 0:
            raise ValueError(f"image {image_index} has no stored pixel of class {cls}")
        row, col = points[int(rng.integers(len(points)))].tolist()
        return int(row), int(col)

    @staticmethod
    def _start(size: int, window: int, at: int | None, rng: np.random.Generator) -> int:
        """First row (column) of a window: centred on ``at`` but shifted to waste no window on
        padding that the image could fill; uniformly placed when ``at`` is None."""
        low, high = min(0, size - window), max(0, size - window)
        if at is None:
            return int(rng.integers(low, high + 1))
        return int(np.clip(at - window // 2, low, high))

    def __getitem__(self, draw: tuple[int, int, int]) -> dict[str, Tensor]:
        image_index, cls, crop_seed = draw
        image, mask = sample_arrays(self.dataset[image_index])
        image = np.asarray(image)
        if image.ndim not in (2, 3) or image.shape[:2] != mask.shape:
            raise TypeError(
                f"image {image_index}: ClassCenteredCrops needs untransformed (H, W, C) images of "
                f"their mask's size {mask.shape}, got shape {image.shape}"
            )
        rng = np.random.default_rng(crop_seed)
        scale = rng.uniform(*self.scale_range)
        flip = bool(rng.random() < 0.5)
        point = self.centre(image_index, cls, rng)
        win_h = max(1, round(self.crop_h / scale))
        win_w = max(1, round(self.crop_w / scale))
        H, W = mask.shape
        top = self._start(H, win_h, None if point is None else point[0], rng)
        left = self._start(W, win_w, None if point is None else point[1], rng)
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
