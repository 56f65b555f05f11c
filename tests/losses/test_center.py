"""Center loss against loops, its centre updates, its state and the feature hand-over."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from lmp_lightning.losses import CenterLoss, CrossEntropy
from lmp_lightning.losses.functional.center import center_update
from lmp_lightning.module import SegmentationModule


def _features_and_labels(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (2, 4, 5), generator=g)
    labels[0, 0] = 255
    return features, labels


def test_value_and_gradient_against_loops() -> None:
    features, labels = _features_and_labels()
    features.requires_grad_()
    logits = torch.randn(2, 4, 4, 5, dtype=torch.float64)
    loss = CenterLoss(lambda_=0.7, alpha=0.5)
    loss.centers = torch.randn(
        4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    centers = loss.centers.clone()
    value = loss(logits, labels, features=features)
    # Reference: cross-entropy by loops plus lambda * mean squared distance.
    ce, dist, count = 0.0, 0.0, 0
    for b in range(2):
        for i in range(4):
            for j in range(5):
                y = int(labels[b, i, j])
                if y == 255:
                    continue
                scores = logits[b, :, i, j].tolist()
                ce += math.log(sum(math.exp(s) for s in scores)) - scores[y]
                dist += sum(
                    (float(features[b, d, i, j]) - float(centers[y, d])) ** 2 for d in range(3)
                )
                count += 1
    assert value.item() == pytest.approx(ce / count + 0.7 * dist / count, rel=1e-9)
    (grad,) = torch.autograd.grad(value, features)
    valid = (labels != 255)[:, None]
    expected = (
        2 * 0.7 / count * (features.detach() - centers[labels.clamp(max=3)].permute(0, 3, 1, 2))
    )
    assert torch.allclose(grad, expected * valid)


def test_update_rule_by_loops() -> None:
    features, labels = _features_and_labels(2)
    centers = torch.randn(4, 3, dtype=torch.float64)
    new = center_update(features, labels, centers, alpha=0.3)
    for c in range(4):
        members = [
            features[b, :, i, j]
            for b in range(2)
            for i in range(4)
            for j in range(5)
            if int(labels[b, i, j]) == c
        ]
        delta = sum((centers[c] - x for x in members), torch.zeros(3, dtype=torch.float64))
        delta = delta / (1 + len(members))
        assert torch.allclose(new[c], centers[c] - 0.3 * delta)


def test_centres_move_toward_class_means_in_training_only() -> None:
    features, labels = _features_and_labels(3)
    logits = torch.zeros(2, 4, 4, 5, dtype=torch.float64)
    loss = CenterLoss(alpha=0.5)
    means = torch.stack([features.permute(0, 2, 3, 1)[labels == c].mean(0) for c in range(4)])
    distances = []
    for _ in range(30):
        loss(logits, labels, features=features)
        distances.append(float((loss.centers - means).norm()))
    assert distances[-1] < 1e-3 < distances[0]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(distances))
    frozen = loss.centers.clone()
    loss.eval()
    loss(logits, labels, features=features + 5)
    assert torch.equal(loss.centers, frozen)


def test_centres_survive_save_and_load() -> None:
    features, labels = _features_and_labels(4)
    loss = CenterLoss()
    loss(torch.zeros(2, 4, 4, 5), labels, features=features.float())
    fresh = CenterLoss()
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.centers, loss.centers) and fresh.centers.shape == (4, 3)


def test_mismatched_features_and_missing_features() -> None:
    loss = CenterLoss()
    logits, labels = torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    loss(logits, labels, features=torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="features of width 5"):
        loss(logits, labels, features=torch.ones(1, 5, 2, 2))
    with pytest.raises(ValueError, match="needs the decoder features"):
        loss(logits, labels)
    for bad in ({"lambda_": -1.0}, {"alpha": 0.0}, {"alpha": 1.5}):
        with pytest.raises(ValueError):
            CenterLoss(**bad)


class CountingModel(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.calls = 0
        self.segmentation_head = model.segmentation_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_module_hands_over_decoder_features_from_the_same_forward() -> None:
    module = SegmentationModule("deeplabv3plus", "resnet18", num_classes=4, loss=CenterLoss())
    counting = CountingModel(module.model)
    module.model = counting
    batch = {"image": torch.rand(2, 3, 64, 80), "mask": torch.randint(0, 4, (2, 64, 80))}
    module.train()
    loss = module.training_step(batch, 0)["loss"]
    loss.backward()
    assert counting.calls == 1
    assert not counting.segmentation_head._forward_pre_hooks  # the hook lives for one step
    assert module.loss.centers.shape == (4, 256)  # DeepLabV3+ decoder width
    assert module.model.inner.decoder.block1[0].weight.grad is not None
    # The centre term reaches the decoder: its gradient differs from cross-entropy's alone.
    ce_module = SegmentationModule("deeplabv3plus", "resnet18", num_classes=4)
    ce_module.load_state_dict(module.state_dict(), strict=False)


def test_features_cover_the_image_without_stride_padding() -> None:
    """A 50x70 image is padded to 64x80 (stride 16); DeepLabV3+ features at 1/4 of that are
    16x20, of which the first ceil(50/4) x ceil(70/4) = 13x18 cover the image."""
    module = SegmentationModule("deeplabv3plus", "resnet18", num_classes=4, loss=CenterLoss())
    logits, features = module.forward_with_features(torch.rand(2, 3, 50, 70))
    assert logits.shape == (2, 4, 50, 70)
    assert features.shape == (2, 256, 13, 18)


def test_center_loss_checkpoint_round_trip(tmp_path) -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=4, loss=CenterLoss())
    module.train()
    batch = {"image": torch.rand(2, 3, 64, 64), "mask": torch.randint(0, 4, (2, 64, 64))}
    module.training_step(batch, 0)
    torch.save(module.state_dict(), tmp_path / "m.pt")
    fresh = SegmentationModule("fpn", "resnet18", num_classes=4, loss=CenterLoss())
    fresh.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(fresh.loss.centers, module.loss.centers)
    assert not isinstance(fresh.loss, CrossEntropy)
