from __future__ import annotations

import numpy as np
import pytest

from lmp_lightning.data import SyntheticStreetScenes


def test_deterministic_and_split_dependent() -> None:
    a = SyntheticStreetScenes(num_images=3, split="train", seed=0)
    b = SyntheticStreetScenes(num_images=3, split="train", seed=0)
    for i in range(3):
        assert np.array_equal(a[i]["image"], b[i]["image"])
        assert np.array_equal(a[i]["mask"], b[i]["mask"])
    other_split = SyntheticStreetScenes(num_images=3, split="val", seed=0)[0]
    other_seed = SyntheticStreetScenes(num_images=3, split="train", seed=1)[0]
    assert not np.array_equal(a[0]["image"], other_split["image"])
    assert not np.array_equal(a[0]["image"], other_seed["image"])


def test_dtypes_and_shapes() -> None:
    sample = SyntheticStreetScenes(num_images=1, height=40, width=56)[0]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (40, 56, 3)
    assert sample["mask"].dtype == np.int64 and sample["mask"].shape == (40, 56)


def test_class_imbalance_and_coverage() -> None:
    ds = SyntheticStreetScenes(num_images=60)
    counts = np.zeros(ds.num_classes, dtype=np.int64)
    ignored = 0
    for i in range(len(ds)):
        mask = ds[i]["mask"]
        ignored += int((mask == ds.ignore_index).sum())
        counts += np.bincount(mask[mask != ds.ignore_index], minlength=ds.num_classes)
    assert ds.num_classes >= 8
    assert np.all(counts > 0), dict(zip(ds.class_names, counts.tolist(), strict=True))
    assert counts.max() / counts.min() >= 50
    assert ignored > 0
    assert set(np.unique(ds[0]["mask"])) <= {*range(ds.num_classes), ds.ignore_index}


def test_images_are_not_trivially_separable() -> None:
    """Texture and noise: a class's pixels are not one flat colour."""
    sample = SyntheticStreetScenes(num_images=1)[0]
    road = sample["image"][sample["mask"] == 0].astype(float)
    assert road.std(axis=0).min() > 2.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"num_images": 0}, ValueError),
        ({"height": 8}, ValueError),
        ({"split": "dev"}, ValueError),
        ({"seed": -1}, ValueError),
        ({"width": 64.0}, TypeError),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        SyntheticStreetScenes(**kwargs)
