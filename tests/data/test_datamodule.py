from __future__ import annotations

import pytest
import torch

from lmp_lightning.data import SegmentationDataModule, SyntheticStreetScenes, build_dataset
from lmp_lightning.data.sets import Synthetic


def _data(num_train_images: int = 6, **kwargs: object) -> SegmentationDataModule:
    synthetic = Synthetic(num_train_images=num_train_images, num_val_images=2, image_size=(64, 80))
    defaults = {"crop_size": 48, "batch_size": 3}
    return SegmentationDataModule(synthetic, **{**defaults, **kwargs})  # type: ignore[arg-type]


def test_label_space_known_before_setup() -> None:
    data = _data()
    assert data.num_classes == SyntheticStreetScenes.num_classes
    assert data.class_names == list(SyntheticStreetScenes.class_names)
    assert data.ignore_index == 255


def test_loaders() -> None:
    data = _data()
    data.setup("fit")
    train = next(iter(data.train_dataloader()))
    assert train["image"].shape == (3, 3, 48, 48) and train["image"].dtype == torch.float32
    assert train["mask"].shape == (3, 48, 48) and train["mask"].dtype == torch.int64
    assert len(data.train_dataloader()) == 2  # drop_last
    val = next(iter(data.val_dataloader()))
    assert val["image"].shape == (1, 3, 64, 80)  # full size
    data.setup("test")
    assert next(iter(data.test_dataloader()))["mask"].shape == (1, 64, 80)


def test_training_order_and_augmentation_reproducible() -> None:
    def first_batch() -> torch.Tensor:
        data = _data(seed=3)
        data.setup("fit")
        return next(iter(data.train_dataloader()))["image"]

    assert torch.equal(first_batch(), first_batch())


def test_per_image_counts() -> None:
    data = _data(num_train_images=3)
    counts = data.per_image_counts()
    assert counts.shape == (3, data.num_classes)
    raw = build_dataset("synthetic", "train", num_train_images=3, image_size=(64, 80))
    labelled = [(raw[i]["mask"] != 255).sum() for i in range(3)]
    assert counts.sum(1).tolist() == labelled


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(KeyError, match=r"unknown data set 'nope'; valid names are \[.*'synthetic'"):
        SegmentationDataModule(dataset="nope")


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _data(batch_size=0)
