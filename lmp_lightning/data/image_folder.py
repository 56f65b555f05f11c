"""Unlabelled images of a folder, for ``lmp-seg predict``."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["IMAGE_SUFFIXES", "ImageFolder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageFolder(Dataset[dict[str, object]]):
    """The images of a folder (``.png``, ``.jpg``, ``.jpeg``), sorted by name, at full size.

    Samples: ``image`` (the normalised float32 ``(3, H, W)`` tensor), ``raw`` (the uint8
    ``(H, W, 3)`` RGB tensor, for overlays) and ``name`` (the file's stem).

    Args:
        folder: the folder of images.
        transform: the evaluation pipeline (normalisation and tensor conversion).

    Raises:
        FileNotFoundError: the folder does not exist or holds no image; the message names it.
    """

    def __init__(self, folder: str | Path, transform: A.Compose) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"predict folder not found: {str(self.folder)!r}")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FileNotFoundError(
                f"no {'/'.join(IMAGE_SUFFIXES)} image in the predict folder {str(self.folder)!r}"
            )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, object]:
        path = self.files[index]
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        out: Tensor = self.transform(image=rgb)["image"]
        return {"image": out, "raw": torch.from_numpy(rgb.copy()), "name": path.stem}
