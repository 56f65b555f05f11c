"""The losses drop in where torch's, segmentation_models_pytorch's and torchgeo's go:
``ignore_index=None``, ``(B, 1, H, W)`` masks, ``reduction="mean" | "sum"``, and a clear error
for single-channel logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from lmp_lightning.losses import build_loss, list_losses

ARGS: dict[str, dict[str, Any]] = {
    "bootstrap": {"k": 0.3},
    "ce": {},
    "center": {"lambda_": 0.1},
    "focal": {},
    "imf_ce": {"class_weights": [1.0, 2.0, 0.5]},
    "lall": {"kernel_size": 3, "backend": "sparse"},
    "lmp": {"p": 1.3, "m": 0.25},
}
POOLED = {"bootstrap", "lall", "lmp"}
"""Losses pooled per image: their mean is over the images, the others' over the pixels."""


def batch(ignored: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 3, 6, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 3, (3, 6, 5), generator=g)
    if ignored:
        target[torch.rand(3, 6, 5, generator=g) < 0.3] = 255
    features = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    return logits, target, features


def call(name: str, logits, target, features, **kwargs: Any) -> torch.Tensor:
    return build_loss(name, **{**ARGS[name], **kwargs})(logits, target, features=features)


def test_every_loss_is_covered() -> None:
    assert sorted(ARGS) == list_losses()


@pytest.mark.parametrize("name", sorted(ARGS))
def test_ignore_index_none_counts_every_pixel(name: str) -> None:
    """Without label 255 in the masks, ``None`` equals 255; with it, 255 is a bad label."""
    logits, target, features = batch(ignored=False)
    expected = call(name, logits, target, features)
    torch.testing.assert_close(call(name, logits, target, features, ignore_index=None), expected)
    target[0, 0, 0] = 255
    with pytest.raises(ValueError, match=r"labels \[255\] outside \[0, 3\) \(ignore_index=None"):
        call(name, logits, target, features, ignore_index=None)


def test_ignore_index_none_is_torch_cross_entropy_without_ignore() -> None:
    logits, target, _ = batch(ignored=False)
    value = build_loss("ce", ignore_index=None)(logits, target)
    torch.testing.assert_close(value, F.cross_entropy(logits, target))
    assert "ignore_index=None" in repr(build_loss("lmp", ignore_index=None))


@pytest.mark.parametrize("name", sorted(ARGS))
def test_masks_with_a_channel(name: str) -> None:
    """``(B, 1, H, W)`` masks, as torchgeo and smp give them, equal ``(B, H, W)``, with and
    without the input checks."""
    logits, target, features = batch()
    expected = call(name, logits, target, features)
    for validate in (True, False):
        got = call(name, logits, target[:, None], features, validate_args=validate)
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_single_channel_logits_are_refused(name: str) -> None:
    logits, target, features = batch()
    with pytest.raises(ValueError, match=r"1 channel .*need C >= 2.*binary task is C = 2"):
        call(name, logits[:, :1], torch.zeros_like(target), features)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_sum_is_the_mean_times_its_count(name: str) -> None:
    """``"sum"`` sums the terms that ``"mean"`` averages: over the images with a valid pixel
    for the pooled losses, over the valid pixels for the others (imf_ce: their weights)."""
    logits, target, features = batch()
    target[2] = 255  # an image without a valid pixel: no term of its own
    mean = call(name, logits, target, features)
    total = call(name, logits, target, features, reduction="sum")
    valid = target != 255
    if name in POOLED:
        count = valid.flatten(1).any(-1).sum()
    elif name == "imf_ce":
        count = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)[target[valid]].sum()
    else:
        count = valid.sum()
    if name == "center":  # two terms with counts of their own: checked against torch below
        return
    torch.testing.assert_close(total, mean * count)


def test_sum_against_torch() -> None:
    """Cross-entropy, class-weighted and with the centre loss's weight at 0, as
    ``F.cross_entropy(reduction="sum")``."""
    logits, target, features = batch()
    expected = F.cross_entropy(logits, target, ignore_index=255, reduction="sum")
    torch.testing.assert_close(build_loss("ce", reduction="sum")(logits, target), expected)
    center = build_loss("center", lambda_=0.0, reduction="sum")
    torch.testing.assert_close(center(logits, target, features=features), expected)
    weights = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    imf = build_loss("imf_ce", class_weights=weights.tolist(), reduction="sum")
    torch.testing.assert_close(
        imf(logits, target),
        F.cross_entropy(logits, target, weight=weights, ignore_index=255, reduction="sum"),
    )


@pytest.mark.parametrize("reduction", ["none", "avg", 1])
def test_bad_reduction(reduction: Any) -> None:
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        build_loss("lmp", reduction=reduction)
