from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lmp_lightning.data import (
    CAMVID_CLASSES,
    CamVid,
    SegmentationDataModule,
    build_dataset,
    list_datasets,
)

H, W = 8, 12
REAL_CAMVID = Path(os.environ.get("LMP_CAMVID_ROOT", "/work/shared/data/camvid"))


def _raw_label(seed: int) -> np.ndarray:
    """Raw CamVid labels 0..11 (11 = Unlabelled), every value present."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 12, size=(H, W)).astype(np.uint8)
    raw.flat[:12] = np.arange(12)
    return raw


def make_camvid(root: Path, counts: dict[str, int]) -> dict[str, list[np.ndarray]]:
    """Writes a tiny CamVid layout; returns the raw labels of each split."""
    raws: dict[str, list[np.ndarray]] = {}
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines, raws[split] = [], []
        for i in range(count):
            image = np.zeros((H, W, 3), np.uint8)
            image[..., 0] = 200  # red in RGB
            image[0, 0] = (i, 2 * i, 3 * i)
            Image.fromarray(image).save(root / split / f"{i}.png")
            raw = _raw_label(len(raws) * 10 + i)
            cv2.imwrite(str(root / f"{split}annot" / f"{i}.png"), raw)
            raws[split].append(raw)
            lines.append(f"{split}/{i}.png {split}annot/{i}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return raws


@pytest.fixture
def camvid(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]]]:
    return tmp_path, make_camvid(tmp_path, {"train": 3, "val": 2})


def test_registered() -> None:
    assert "camvid" in list_datasets()
    assert CamVid.num_classes == 11 and CamVid.ignore_index == 255
    assert CamVid.class_names == CAMVID_CLASSES and CAMVID_CLASSES[-1] == "Bicyclist"


def test_samples_and_label_mapping(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    root, raws = camvid
    ds = CamVid(root, "train")
    assert len(ds) == 3 and len(CamVid(root, "val")) == 2
    for i, raw in enumerate(raws["train"]):
        sample = ds[i]
        assert sample["image"].dtype == np.uint8 and sample["image"].shape == (H, W, 3)
        assert sample["mask"].dtype == np.int64 and sample["mask"].shape == (H, W)
        assert (sample["image"][1:, 1:, 0] == 200).all()  # RGB order, not BGR
        assert tuple(sample["image"][0, 0]) == (i, 2 * i, 3 * i)
        expected = np.where(raw == 11, 255, raw)
        np.testing.assert_array_equal(sample["mask"], expected)
    assert ds[-1]["mask"].shape == (H, W)
    with pytest.raises(IndexError):
        ds[3]


def test_files_lists_the_pairs(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    root, _ = camvid
    assert CamVid(root, "val").files() == [
        (root / "val" / f"{i}.png", root / "valannot" / f"{i}.png") for i in range(2)
    ]


def test_scale(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    root, raws = camvid
    half = CamVid(root, "train", scale=0.5)[0]
    assert half["image"].shape == (H // 2, W // 2, 3) and half["image"].dtype == np.uint8
    assert half["mask"].shape == (H // 2, W // 2) and half["mask"].dtype == np.int64
    # Nearest neighbour on pixel centres, as Pillow does it: labels are never blended.
    nearest = np.asarray(Image.fromarray(raws["train"][0]).resize((W // 2, H // 2), Image.NEAREST))
    np.testing.assert_array_equal(half["mask"], np.where(nearest == 11, 255, nearest))
    assert CamVid(root, "train", scale=2.0)[0]["mask"].shape == (2 * H, 2 * W)
    with pytest.raises(ValueError, match="scale must be positive"):
        CamVid(root, "train", scale=0.0)
    with pytest.raises(TypeError, match="scale must be a number"):
        CamVid(root, "train", scale="half")  # type: ignore[arg-type]


def test_default_scale_of_a_subclass(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    class CamVidHalf(CamVid):
        default_scale = 0.5

    root, _ = camvid
    ds = CamVidHalf(root, "val")
    assert ds[0]["mask"].shape == (H // 2, W // 2)


def test_bad_label_value_names_the_file(
    camvid: tuple[Path, dict[str, list[np.ndarray]]],
) -> None:
    root, _ = camvid
    bad = root / "trainannot" / "1.png"
    cv2.imwrite(str(bad), np.full((H, W), 12, np.uint8))
    ds = CamVid(root, "train")
    ds[0]
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*values \[12\]"):
        ds[1]


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        CamVid(tmp_path / "nowhere")
    list_file = re.escape(str(tmp_path / "train.txt"))
    with pytest.raises(FileNotFoundError, match=rf"(?s){list_file}.*trainannot"):
        CamVid(tmp_path, "train")  # no list file at all: the message shows the layout
    make_camvid(tmp_path, {"train": 2})
    (tmp_path / "trainannot" / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "trainannot" / "1.png"))):
        CamVid(tmp_path, "train")


def test_unavailable_split_names_the_available_ones(
    camvid: tuple[Path, dict[str, list[np.ndarray]]],
) -> None:
    root, _ = camvid
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val'\]"):
        CamVid(root, "test")
    with pytest.raises(ValueError, match=r"'extra'.*\['train', 'val', 'test'\]"):
        CamVid(root, "extra")  # type: ignore[arg-type]


def test_malformed_list_line(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    root, _ = camvid
    (root / "val.txt").write_text("val/0.png\n")
    with pytest.raises(ValueError, match="line 1: expected 'image_path label_path'"):
        CamVid(root, "val")


def test_datamodule_batches(camvid: tuple[Path, dict[str, list[np.ndarray]]]) -> None:
    root, raws = camvid
    assert len(build_dataset("camvid", "train", root)) == 3
    data = SegmentationDataModule(dataset="camvid", root=str(root), crop_size=8, batch_size=2)
    assert data.num_classes == 11 and data.class_names == list(CAMVID_CLASSES)
    assert data.ignore_index == 255
    data.setup("fit")
    train = next(iter(data.train_dataloader()))
    assert train["image"].shape == (2, 3, 8, 8) and train["image"].dtype == torch.float32
    assert train["mask"].shape == (2, 8, 8) and train["mask"].dtype == torch.int64
    val = next(iter(data.val_dataloader()))
    assert val["image"].shape == (1, 3, H, W)  # full size
    expected = np.where(raws["val"][0] == 11, 255, raws["val"][0])
    np.testing.assert_array_equal(val["mask"][0].numpy(), expected)
    counts = data.per_image_counts()
    assert counts.shape == (3, 11)
    assert counts.sum().item() == sum(int((r != 11).sum()) for r in raws["train"])


@pytest.mark.skipif(not (REAL_CAMVID / "train.txt").is_file(), reason="no CamVid copy here")
def test_real_camvid() -> None:
    train, val = CamVid(REAL_CAMVID, "train"), CamVid(REAL_CAMVID, "val")
    assert (len(train), len(val)) == (367, 101)
    sample = val[0]
    assert sample["image"].shape == (360, 480, 3) and sample["mask"].shape == (360, 480)
    assert set(np.unique(sample["mask"]).tolist()) <= {*range(11), 255}
