from __future__ import annotations

import numpy as np
import pytest
import torch

from lmp_lightning.data.transforms import eval_transform, train_transform


def _sample(h: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "mask": rng.integers(0, 5, (h, w)).astype(np.int64),
    }


def test_train_crop_size_and_dtypes() -> None:
    transform = train_transform((48, 64), seed=0)
    for _ in range(10):
        out = transform(**_sample(100, 120))
        assert out["image"].shape == (3, 48, 64) and out["image"].dtype == torch.float32
        assert out["mask"].shape == (48, 64)


def test_small_image_is_padded_with_ignore_index() -> None:
    transform = train_transform(96, scale_range=(1.0, 1.0), ignore_index=255, seed=0)
    out = transform(**_sample(20, 30))
    mask = out["mask"]
    assert mask.shape == (96, 96)
    assert int((mask != 255).sum()) == 20 * 30  # the image's own pixels, the rest is padding
    assert set(mask.unique().tolist()) <= {0, 1, 2, 3, 4, 255}


def test_scale_range_is_respected() -> None:
    """With a crop larger than any scaled image, the labelled area measures the scale."""
    transform = train_transform(200, scale_range=(0.5, 1.5), seed=1)
    areas = [int((transform(**_sample(60, 60))["mask"] != 255).sum()) for _ in range(40)]
    assert min(areas) >= (30 - 1) ** 2 and max(areas) <= (90 + 1) ** 2
    assert max(areas) > 2 * min(areas)  # the scale really varies


def test_mask_labels_never_interpolated() -> None:
    transform = train_transform(64, seed=2)
    sample = _sample(80, 80)
    for _ in range(5):
        values = set(transform(**sample)["mask"].unique().tolist())
        assert values <= {0, 1, 2, 3, 4, 255}


def test_eval_transform_is_deterministic_and_keeps_labels() -> None:
    sample = _sample(37, 41)
    first, second = eval_transform()(**sample), eval_transform()(**sample)
    assert torch.equal(first["image"], second["image"])
    assert first["image"].shape == (3, 37, 41)
    assert np.array_equal(np.asarray(first["mask"]), sample["mask"])


def test_bad_crop_size() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        train_transform(0)
    with pytest.raises(ValueError, match="scale_range"):
        train_transform(32, scale_range=(1.5, 0.5))
