"""Unlabelled images of a folder, for ``lmp-seg predict``."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lmp_lightning.data._files import read_rgb
from lmp_lightning.data.transforms import rescale_image

__all__ = ["IMAGE_SUFFIXES", "ImageFolder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageFolder(Dataset[dict[str, object]]):
    """The images of a folder (``.png``, ``.jpg``, ``.jpeg``), sorted by name, at full size.

    Samples: ``image`` (the normalised float32 ``(3, h, w)`` tensor, the image resized by
    ``scale``), ``raw`` (the uint8 ``(H, W, 3)`` RGB tensor at full size, for overlays),
    ``size`` (``[H, W]``, the size predictions are returned at) and ``name`` (the file's stem,
    unique in the folder).

    Args:
        folder: the folder of images.
        transform: the evaluation pipeline (normalisation and tensor conversion).
        scale: the factor images are resized by before the network (the data set's scale, with
            the data set's interpolation: :func:`~lmp_lightning.data.transforms.rescale_image`).

    Raises:
        FileNotFoundError: the folder does not exist or holds no image; the message names it.
    """

    def __init__(self, folder: str | Path, transform: A.Compose, scale: float = 1.0) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"predict folder not found: {str(self.folder)!r}")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FileNotFoundError(
                f"no {'/'.join(IMAGE_SUFFIXES)} image in the predict folder {str(self.folder)!r}"
            )
        self.transform = transform
        stems = [p.stem for p in self.files]
        self.names = [
            f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem
            for p in self.files
        ]
        """Output names: the file's stem, with its extension added where two files share one
        (``x.png`` and ``x.jpg`` give ``x_png`` and ``x_jpg``)."""
        self.scale = float(scale)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, object]:
        path = self.files[index]
        rgb = read_rgb(path)  # the reader of training and evaluation
        out: Tensor = self.transform(image=rescale_image(rgb, self.scale))["image"]
        return {
            "image": out,
            "raw": torch.from_numpy(rgb.copy()),
            "size": torch.tensor(rgb.shape[:2]),
            "name": self.names[index],
        }
