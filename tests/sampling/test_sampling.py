"""Class statistics, sampler, crops and tracker of performance-aware sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from lmp_lightning.data import SyntheticStreetScenes
from lmp_lightning.sampling import (
    NO_CLASS,
    ClassCenteredCrops,
    ClassStatistics,
    PerformanceAwareSampler,
    TrainingIoUTracker,
    class_weights_from_iou,
)


@pytest.fixture(scope="module")
def scenes() -> SyntheticStreetScenes:
    return SyntheticStreetScenes(num_images=12, height=64, width=80)


@pytest.fixture(scope="module")
def stats(scenes: SyntheticStreetScenes) -> ClassStatistics:
    return ClassStatistics.build(
        scenes, scenes.num_classes, 255, points_per_class=16, progress=False
    )


def test_statistics_count_and_point_at_their_class(scenes, stats) -> None:
    for i in range(len(scenes)):
        mask = scenes[i]["mask"]
        expected = np.bincount(mask[mask != 255], minlength=scenes.num_classes)
        assert stats.pixel_counts[i].tolist() == expected.tolist()
        for c in range(scenes.num_classes):
            points = stats.points[i, c]
            points = points[points[:, 0] >= 0]
            assert len(points) == min(16, expected[c])
            assert all(mask[r, col] == c for r, col in points.tolist())


def test_statistics_cache_reuses_and_invalidates(scenes, tmp_path, monkeypatch) -> None:
    built = []
    original = ClassStatistics.build.__func__

    def counting_build(cls, *args, **kwargs):
        built.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(ClassStatistics, "build", classmethod(counting_build))
    first = ClassStatistics.cached(scenes, 10, 255, "data-v1", tmp_path, progress=False)
    again = ClassStatistics.cached(scenes, 10, 255, "data-v1", tmp_path, progress=False)
    assert len(built) == 1 and torch.equal(first.pixel_counts, again.pixel_counts)
    ClassStatistics.cached(scenes, 10, 255, "data-v2", tmp_path, progress=False)  # data changed
    assert len(built) == 2
    (cached,) = [p for p in tmp_path.iterdir() if "class_statistics" in p.name][:1]
    cached.write_bytes(cached.read_bytes()[:100])  # a truncated cache file is rebuilt
    ClassStatistics.cached(scenes, 10, 255, "data-v1", tmp_path, progress=False)
    assert len(built) == 3


def test_mixture_frequencies_match_the_specification(stats) -> None:
    iou = torch.linspace(0.1, 0.9, stats.num_classes)
    weights = class_weights_from_iou(iou)
    sampler = PerformanceAwareSampler(stats, num_samples=20000, uniform_mix=0.3, seed=5)
    sampler.set_class_probabilities(weights)
    classes = np.array([c for _, c, _ in sampler])
    p = (weights * (stats.class_pixels > 0)).double()
    expected = np.concatenate([[0.3], 0.7 * (p / p.sum()).numpy()]) * len(classes)
    observed = np.array([(classes == c).sum() for c in [NO_CLASS, *range(stats.num_classes)]])
    keep = expected > 0
    assert observed[~keep].sum() == 0
    assert chisquare(observed[keep], expected[keep]).pvalue > 1e-3


def test_class_without_pixels_is_never_requested() -> None:
    counts = torch.tensor([[5, 0, 3], [2, 0, 0]])
    stats = ClassStatistics(counts, torch.zeros(2, 3, 1, 2, dtype=torch.int32))
    sampler = PerformanceAwareSampler(stats, num_samples=500, uniform_mix=0.0)
    sampler.set_class_probabilities(torch.tensor([0.0, 100.0, 1.0]))
    draws = list(sampler)
    assert {c for _, c, _ in draws} == {2}
    assert {i for i, _, _ in draws} == {0}  # the only image with class 2


def test_streams_per_epoch_and_disjoint_shards(stats) -> None:
    full = PerformanceAwareSampler(stats, num_samples=50, seed=1)
    shards = [
        PerformanceAwareSampler(stats, num_samples=50, seed=1, rank=r, num_replicas=2)
        for r in range(2)
    ]
    for s in (full, *shards):
        s.set_epoch(3)
    stream = list(full)
    assert list(shards[0]) == stream[0::2] and list(shards[1]) == stream[1::2]
    assert len(shards[0]) == 25
    full.set_epoch(4)
    assert list(full) != stream
    full.set_epoch(3)
    assert list(full) == stream


def test_crops_for_a_class_contain_it(scenes, stats) -> None:
    crops = ClassCenteredCrops(scenes, stats, 48)
    sampler = PerformanceAwareSampler(stats, num_samples=60, uniform_mix=0.0, seed=2)
    for image, c, seed in sampler:
        out = crops[(image, c, seed)]
        assert out["image"].shape == (3, 48, 48) and out["mask"].shape == (48, 48)
        assert bool((out["mask"] == c).any()), (image, c)
        assert torch.equal(out["mask"], crops[(image, c, seed)]["mask"])  # reproducible


def test_tracker_policy_and_decay() -> None:
    tracker = TrainingIoUTracker(3, decay=0.5)
    tracker.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 0]]))
    iou = tracker.iou()
    assert iou[:2].tolist() == pytest.approx([2 / 3, 1 / 2])
    assert iou[2].item() == pytest.approx((2 / 3 + 1 / 2) / 2)  # unseen: the mean
    assert TrainingIoUTracker(3, unseen="worst").iou().tolist() == [0.5, 0.5, 0.5]
    worst = TrainingIoUTracker(3, unseen="worst")
    worst.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    assert worst.iou().tolist() == [1.0, 1.0, 0.0]
    before = tracker.metric.confmat.clone()
    tracker.end_period()
    assert torch.equal(tracker.metric.confmat, (before * 0.5).round().long())
    reset = TrainingIoUTracker(3)
    reset.update(torch.tensor([[0]]), torch.tensor([[0]]))
    reset.end_period()
    assert int(reset.metric.confmat.sum()) == 0


def test_bad_arguments(stats) -> None:
    with pytest.raises(ValueError, match="uniform_mix"):
        PerformanceAwareSampler(stats, uniform_mix=1.5)
    with pytest.raises(ValueError, match="weighting"):
        class_weights_from_iou(torch.zeros(2), "best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decay"):
        TrainingIoUTracker(3, decay=1.0)


def test_statistics_of_a_file_data_set_never_land_in_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a cache_dir the statistics of a data set read from files go to the user's cache
    ($XDG_CACHE_HOME here), and the data folder is left as it was."""
    import cv2

    from lmp_lightning.data.folder import FolderDataset

    root = tmp_path / "data"
    for d in ("images/train", "masks/train"):
        (root / d).mkdir(parents=True)
    (root / "classes.txt").write_text("background\ncrack\nignore: 255\n")
    for i in range(3):
        cv2.imwrite(str(root / f"images/train/{i}.png"), np.zeros((8, 12, 3), np.uint8))
        cv2.imwrite(str(root / f"masks/train/{i}.png"), np.full((8, 12), i % 2, np.uint8))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stats = ClassStatistics.for_dataset(FolderDataset(root, "train"), 2, 255, progress=False)
    assert int(stats.pixel_counts.sum()) == 3 * 8 * 12
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    cached = list((tmp_path / "cache" / "lmp_lightning" / "class_statistics").glob("*.pt"))
    assert len(cached) == 1


def test_building_statistics_leaves_the_global_rng_alone() -> None:
    """A run that builds the statistics and one that reads them from the cache must train
    alike: building draws nothing from the global RNG (dropout, augmentation use it)."""
    masks = [{"mask": np.array([[0, 1], [1, 255]])}, {"mask": np.array([[1, 1]])}]
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ClassStatistics.build(masks, 3, 255, points_per_class=2, progress=False)
    assert torch.equal(torch.rand(3), expected)
