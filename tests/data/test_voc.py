from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmp_lightning.data import (
    VOC_CLASSES,
    PascalVOC,
    build_dataset,
    convert_sbd,
    voc_palette,
)

H, W = 8, 12
VOC_TRAIN, VOC_VAL = ["2007_000032", "2007_000039"], ["2007_000033"]
SBD_TRAIN, SBD_VAL = ["2007_000032", "2008_000002"], ["2007_000033", "2008_000003"]


def _voc_label(class_index: int) -> np.ndarray:
    """An object of ``class_index`` inside a 255 border, on background."""
    label = np.zeros((H, W), np.uint8)
    label[2:6, 3:9] = 255
    label[3:5, 4:8] = class_index
    return label


def _save_palette_png(label: np.ndarray, path: Path) -> None:
    image = Image.fromarray(label)
    image.putpalette(voc_palette())
    image.save(path)


def make_voc(root: Path) -> None:
    """Writes a tiny VOC2012 and SBD (as .mat files, converted by convert_sbd)."""
    voc = root / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    for split, ids in (("train", VOC_TRAIN), ("val", VOC_VAL)):
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    for n, image_id in enumerate(sorted({*VOC_TRAIN, *VOC_VAL, *SBD_TRAIN, *SBD_VAL})):
        Image.new("RGB", (W, H), (10 * n, 0, 0)).save(voc / "JPEGImages" / f"{image_id}.jpg")
    for n, image_id in enumerate(VOC_TRAIN + VOC_VAL):
        _save_palette_png(_voc_label(n + 1), voc / "SegmentationClass" / f"{image_id}.png")


def make_sbd(sbd: Path) -> None:
    import scipy.io

    (sbd / "cls").mkdir(parents=True)
    (sbd / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (sbd / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    for n, image_id in enumerate(SBD_TRAIN + SBD_VAL):
        segmentation = np.full((H, W), 15, np.uint8)  # person
        segmentation[0] = n
        scipy.io.savemat(sbd / "cls" / f"{image_id}.mat", {"GTcls": {"Segmentation": segmentation}})


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "VOCdevkit"
    make_voc(root)
    make_sbd(tmp_path / "dataset")
    assert convert_sbd(tmp_path / "dataset", root / "SBD") == 4
    return root


def test_palette_and_classes() -> None:
    palette = np.array(voc_palette()).reshape(256, 3)
    assert palette[0].tolist() == [0, 0, 0] and palette[1].tolist() == [128, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # the ignore border
    assert PascalVOC.num_classes == 21 and PascalVOC.ignore_index == 255
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person"


def test_train_aug(voc_root: Path) -> None:
    ds = PascalVOC(voc_root, "train")
    # (SBD train + SBD val + VOC train) - VOC val
    assert [image.stem for image, _ in ds.files()] == [
        "2007_000032",
        "2007_000039",
        "2008_000002",
        "2008_000003",
    ]
    labels = {image.stem: label for image, label in ds.files()}
    assert labels["2007_000032"].parent == voc_root / "VOC2012" / "SegmentationClass"  # VOC's
    assert labels["2008_000002"].parent == voc_root / "SBD" / "SegmentationClass"
    assert len(PascalVOC(voc_root, "train", train_aug=False)) == 2
    assert len(build_dataset("voc", "train", voc_root)) == 4


def test_palette_indices_and_border(voc_root: Path) -> None:
    ds = PascalVOC(voc_root, "val")
    assert len(ds) == 1
    sample = ds[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (H, W, 3)
    assert sample["mask"].dtype == np.int64
    np.testing.assert_array_equal(sample["mask"], _voc_label(3))  # indices, not colours
    assert (sample["mask"] == 255).sum() == 24 - 8
    sbd = PascalVOC(voc_root, "train")[3]["mask"]  # 2008_000003, converted from SBD
    assert sbd[0].tolist() == [3] * W and (sbd[1:] == 15).all()


def test_bad_labels_name_the_file(voc_root: Path) -> None:
    ds = PascalVOC(voc_root, "val")
    bad = ds.files()[0][1]
    _save_palette_png(np.full((H, W), 21, np.uint8), bad)
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*values \[21\]"):
        ds[0]
    Image.new("RGB", (W, H)).save(bad)
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*mode 'RGB'"):
        ds[0]


def test_no_test_split(voc_root: Path) -> None:
    with pytest.raises(ValueError, match=r"'test'.*\['train', 'val'\]"):
        PascalVOC(voc_root, "test")


def test_missing_files_are_named(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit"
    make_voc(root)
    sbd_list = re.escape(str(root / "SBD" / "train.txt"))
    with pytest.raises(FileNotFoundError, match=rf"(?s){sbd_list}.*convert_sbd"):
        PascalVOC(root, "train")
    (root / "VOC2012" / "SegmentationClass" / "2007_000033.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"SegmentationClass/2007_000033\.png"):
        PascalVOC(root, "val")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/val\.txt"):
        PascalVOC(tmp_path, "val")


def test_convert_sbd(tmp_path: Path) -> None:
    sbd = tmp_path / "dataset"
    make_sbd(sbd)
    out = tmp_path / "SBD"
    assert convert_sbd(sbd, out) == 4 and convert_sbd(sbd, out) == 0  # once
    assert (out / "train.txt").read_text().split() == SBD_TRAIN
    with Image.open(out / "SegmentationClass" / "2008_000002.png") as png:
        assert png.mode == "P" and np.asarray(png)[1, 0] == 15
    import scipy.io

    scipy.io.savemat(sbd / "cls" / "bad.mat", {"GTcls": {"Segmentation": np.full((2, 2), 30)}})
    with pytest.raises(ValueError, match=r"bad\.mat.*labels 0\.\.20"):
        convert_sbd(sbd, out)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "cls"))):
        convert_sbd(tmp_path, out)


def test_convert_sbd_without_scipy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ModuleNotFoundError, match="pip install scipy"):
        convert_sbd(tmp_path, tmp_path / "SBD")
