from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lmp_lightning.data import FolderDataset, SegmentationDataModule, read_classes
from lmp_lightning.data.folder import DEFAULT_IGNORE_INDEX

H, W = 8, 12
CLASSES = ("background", "crack", "hole")


def _mask(seed: int, ignore: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.integers(0, len(CLASSES), size=(H, W)).astype(np.uint8)
    mask[0, :] = ignore
    return mask


def make_folder(
    root: Path, counts: dict[str, int], ignore_line: str = "ignore: 7"
) -> dict[str, list[np.ndarray]]:
    """Writes a tiny folder data set (PNG and JPEG images); returns the masks of each split."""
    (root / "classes.txt").write_text("# defects\n\n" + "\n".join(CLASSES) + f"\n{ignore_line}\n")
    ignore = 7 if ignore_line else DEFAULT_IGNORE_INDEX
    masks: dict[str, list[np.ndarray]] = {}
    for split, count in counts.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        masks[split] = []
        for i in range(count):
            suffix = ".jpg" if i % 2 else ".png"
            image = np.full((H, W, 3), 40 * i, np.uint8)
            cv2.imwrite(str(root / "images" / split / f"img{i}{suffix}"), image)
            mask = _mask(i, ignore)
            cv2.imwrite(str(root / "masks" / split / f"img{i}.png"), mask)
            masks[split].append(mask)
    return masks


def test_read_classes(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("  road \n# comment\n\nsky\n")
    assert read_classes(path) == (("road", "sky"), 255)
    path.write_text("road\nsky\nIgnore : 0\n")
    with pytest.raises(ValueError, match=r"ignore must be .* other than the class labels 0\.\.1"):
        read_classes(path)
    for text, message in (
        ("road\nroad\n", r"repeats the class names \['road'\]"),
        ("# nothing\n", "names no classes"),
        ("road\nignore: x\n", "line 2: expected 'ignore: <int>'"),
        ("road\nignore: 9\nignore: 9\n", "line 3: a second 'ignore:' line"),
        ("road\nignore: -1\n", "non-negative"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_classes(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        read_classes(tmp_path / "nope.txt")


def test_samples_and_label_space(tmp_path: Path) -> None:
    masks = make_folder(tmp_path, {"train": 3, "val": 1})
    ds = FolderDataset(tmp_path, "train")
    assert len(ds) == 3 and len(FolderDataset(tmp_path, "val")) == 1
    assert ds.class_names == CLASSES and ds.num_classes == 3 and ds.ignore_index == 7
    assert not hasattr(FolderDataset, "class_names")  # per instance, read from the files
    assert [image.name for image, _ in ds.files()] == ["img0.png", "img1.jpg", "img2.png"]
    for i, mask in enumerate(masks["train"]):
        sample = ds[i]
        assert sample["image"].dtype == np.uint8 and sample["image"].shape == (H, W, 3)
        assert sample["mask"].dtype == np.int64
        np.testing.assert_array_equal(sample["mask"], mask)


def test_default_ignore_and_palette_masks(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": 1}, ignore_line="")
    mask = np.full((H, W), 2, np.uint8)
    mask[:, 0] = 255
    palette = Image.fromarray(mask)
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    palette.save(tmp_path / "masks" / "train" / "img0.png")
    ds = FolderDataset(tmp_path, "train")
    assert ds.ignore_index == 255
    np.testing.assert_array_equal(ds[0]["mask"], mask)  # indices, not colours


def test_bad_masks_name_the_file(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": 2})
    bad = tmp_path / "masks" / "train" / "img1.png"
    cv2.imwrite(str(bad), np.full((H, W), 5, np.uint8))  # neither a class nor ignore (7)
    ds = FolderDataset(tmp_path, "train")
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*values \[5\]"):
        ds[1]
    cv2.imwrite(str(bad), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*expected a single-channel"):
        ds[1]
    cv2.imwrite(str(bad), np.zeros((H + 1, W), np.uint8))
    with pytest.raises(ValueError, match=r"is \(8, 12\) but its label file .* is \(9, 12\)"):
        ds[1]


def test_missing_files_are_named(tmp_path: Path) -> None:
    class_file = re.escape(str(tmp_path / "classes.txt"))
    with pytest.raises(FileNotFoundError, match=rf"(?s){class_file}.*masks/"):
        FolderDataset(tmp_path, "train")
    make_folder(tmp_path, {"train": 2})
    mask = tmp_path / "masks" / "train" / "img1.png"
    mask.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(mask))):
        FolderDataset(tmp_path, "train")
    (tmp_path / "images" / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="an image"):
        FolderDataset(tmp_path, "val")


def test_unavailable_split_and_repeated_stem(tmp_path: Path) -> None:
    make_folder(tmp_path, {"train": 1, "test": 1})
    with pytest.raises(ValueError, match=r"'val'.*\['train', 'test'\]"):
        FolderDataset(tmp_path, "val")
    cv2.imwrite(str(tmp_path / "images" / "train" / "img0.jpg"), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="two images with the stem 'img0'"):
        FolderDataset(tmp_path, "train")


def test_datamodule_reads_the_label_space_from_the_files(tmp_path: Path) -> None:
    masks = make_folder(tmp_path, {"train": 2, "val": 1})
    data = SegmentationDataModule(dataset="folder", root=str(tmp_path), crop_size=8, batch_size=2)
    assert data.num_classes == 3 and data.class_names == list(CLASSES)
    assert data.ignore_index == 7
    data.setup("fit")
    train = next(iter(data.train_dataloader()))
    assert train["image"].shape == (2, 3, 8, 8) and train["mask"].dtype == torch.int64
    assert set(train["mask"].unique().tolist()) <= {0, 1, 2, 7}
    val = next(iter(data.val_dataloader()))
    np.testing.assert_array_equal(val["mask"][0].numpy(), masks["val"][0])
    counts = data.per_image_counts()
    assert counts.tolist() == [np.bincount(m[m != 7], minlength=3).tolist() for m in masks["train"]]
