from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from lmp_lightning.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    Cityscapes,
    build_dataset,
    id_to_train_id,
)

H, W = 8, 12

# A few rows of the official table, written out independently: label id -> train id.
EXPECTED_TRAIN_IDS = {
    0: 255,  # unlabeled
    1: 255,  # ego vehicle
    6: 255,  # ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255,  # parking
    11: 2,  # building
    17: 5,  # pole
    20: 7,  # traffic sign
    23: 10,  # sky
    24: 11,  # person
    26: 13,  # car
    29: 255,  # caravan
    31: 16,  # train
    33: 18,  # bicycle
}


def make_cityscapes(root: Path, split: str, cities: dict[str, int]) -> dict[Path, np.ndarray]:
    """Writes a tiny Cityscapes split; returns the label ids of each image."""
    ids = np.array(sorted(EXPECTED_TRAIN_IDS), np.uint8)
    labels = {}
    for c, (city, count) in enumerate(cities.items()):
        (root / "leftImg8bit" / split / city).mkdir(parents=True)
        (root / "gtFine" / split / city).mkdir(parents=True)
        for i in range(count):
            name = f"{city}_{i:06d}_000019"
            image = root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
            cv2.imwrite(str(image), np.full((H, W, 3), 10 * i, np.uint8))
            label_ids = np.random.default_rng(10 * c + i).choice(ids, size=(H, W))
            label = root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png"
            cv2.imwrite(str(label), label_ids)
            labels[image] = label_ids
    return labels


def test_label_table() -> None:
    assert len(CITYSCAPES_LABELS) == 35 and len({label.id for label in CITYSCAPES_LABELS}) == 35
    assert len(CITYSCAPES_CLASSES) == 19 and Cityscapes.num_classes == 19
    assert CITYSCAPES_CLASSES == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle",
    )  # fmt: skip
    assert Cityscapes.ignore_index == 255
    table = id_to_train_id()
    for label_id, train_id in EXPECTED_TRAIN_IDS.items():
        assert table[label_id] == train_id, CITYSCAPES_LABELS[label_id].name
    assert (table[34:] == -1).all()  # no label id: an error when read
    trained = table[:34][table[:34] != 255]
    assert sorted(trained.tolist()) == list(range(19)) and (table[:34] == 255).sum() == 15


def test_samples_map_label_ids_to_train_ids(tmp_path: Path) -> None:
    labels = make_cityscapes(tmp_path, "train", {"aachen": 2, "bremen": 1})
    ds = Cityscapes(tmp_path, "train")
    assert len(ds) == 3
    assert [image for image, _ in ds.files()] == sorted(labels)
    for i, (image, _) in enumerate(ds.files()):
        sample = ds[i]
        assert sample["image"].dtype == np.uint8 and sample["image"].shape == (H, W, 3)
        assert sample["mask"].dtype == np.int64 and sample["mask"].shape == (H, W)
        expected = np.vectorize(EXPECTED_TRAIN_IDS.__getitem__)(labels[image])
        np.testing.assert_array_equal(sample["mask"], expected)
        assert (sample["mask"] == 255).any() and (sample["mask"] == 13).any()


def test_scale_and_registry(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, "val", {"lindau": 1})
    assert Cityscapes(tmp_path, "val", scale=0.5)[0]["mask"].shape == (H // 2, W // 2)
    assert len(build_dataset("cityscapes", "val", tmp_path)) == 1


def test_bad_label_id_names_the_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, "val", {"lindau": 1})
    ds = Cityscapes(tmp_path, "val")
    bad = ds.files()[0][1]
    cv2.imwrite(str(bad), np.full((H, W), 34, np.uint8))
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}.*values \[34\]"):
        ds[0]


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)leftImg8bit/train.*gtFine_labelIds"):
        Cityscapes(tmp_path, "train")
    labels = make_cityscapes(tmp_path, "train", {"aachen": 2})
    label = Path(str(sorted(labels)[1]).replace("leftImg8bit", "gtFine", 1))
    label = label.with_name(label.name.replace("_leftImg8bit", "_gtFine_labelIds"))
    label.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(label))):
        Cityscapes(tmp_path, "train")


def test_unavailable_split(tmp_path: Path) -> None:
    make_cityscapes(tmp_path, "val", {"lindau": 1})
    with pytest.raises(ValueError, match=r"'train'.*\['val'\]"):
        Cityscapes(tmp_path, "train")
