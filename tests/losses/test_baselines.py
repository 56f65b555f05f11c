"""Baseline losses against explicit per-pixel loops and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lmp_lightning.losses import (
    BootstrappedCrossEntropy,
    CrossEntropy,
    InverseMedianFrequencyCrossEntropy,
    LossMaxPooling,
    SoftmaxFocalLoss,
)
from tests.losses.conftest import brute_force_pixel_ce


def test_cross_entropy_hand_case() -> None:
    # One image, two classes, 3 valid pixels and one ignored.
    logits = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    target = torch.tensor([[[0, 1], [0, 255]]])
    expected = (math.log(2) + math.log(1 + math.e) + math.log(1 + math.exp(-2))) / 3
    assert CrossEntropy()(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_against_loop(small_batch) -> None:
    logits, target = small_batch
    pixels = [loss for image in brute_force_pixel_ce(logits, target, 255) for _, loss in image]
    assert CrossEntropy()(logits, target).item() == pytest.approx(np.mean(pixels), rel=1e-6)


def test_focal_against_loop(small_batch) -> None:
    logits, target = small_batch
    values = []
    for image in brute_force_pixel_ce(logits, target, 255):
        for _, ce in image:
            p_t = math.exp(-ce)
            values.append(-0.25 * (1 - p_t) ** 2 * math.log(p_t))
    assert SoftmaxFocalLoss()(logits, target).item() == pytest.approx(np.mean(values), rel=1e-6)


def test_focal_hand_case_and_arguments() -> None:
    logits = torch.tensor([[[[math.log(3.0)]], [[0.0]]]])  # p(class 0) = 3/4
    target = torch.tensor([[[0]]])
    expected = -0.5 * (1 / 4) ** 3 * math.log(3 / 4)
    assert SoftmaxFocalLoss(alpha=0.5, gamma=3)(logits, target).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="alpha"):
        SoftmaxFocalLoss(alpha=0)
    with pytest.raises(ValueError, match="gamma"):
        SoftmaxFocalLoss(gamma=-1)


@pytest.mark.parametrize("k", [1, 4, 0.3, 1.0])
def test_bootstrap_against_sorted_top_k(small_batch, k: float | int) -> None:
    logits, target = small_batch
    per_image = []
    for image in brute_force_pixel_ce(logits, target, 255):
        if not image:
            continue
        losses = sorted((loss for _, loss in image), reverse=True)
        kk = min(k, len(losses)) if isinstance(k, int) else max(1.0, k * len(losses))
        whole = math.floor(kk)
        rest = losses[whole] * (kk - whole) if whole < len(losses) else 0.0
        per_image.append((sum(losses[:whole]) + rest) / kk)
    size = {"k_pixels": k} if isinstance(k, int) else {"k": k}  # an int is a pixel count
    value = BootstrappedCrossEntropy(**size)(logits, target).item()
    assert value == pytest.approx(np.mean(per_image), rel=1e-6)
    lmp_size = {"m_pixels": k} if isinstance(k, int) else {"m": k}
    lmp = LossMaxPooling(p=1.0, **lmp_size)(logits, target).item()
    assert value == pytest.approx(lmp, rel=1e-12)


def test_bootstrap_hand_case() -> None:
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 1, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    target = torch.zeros(1, 1, 4, dtype=torch.long)  # losses log(1 + e^s) for s = 0..3
    expected = (math.log(1 + math.e**3) + math.log(1 + math.e**2)) / 2
    assert BootstrappedCrossEntropy(k_pixels=2)(logits, target).item() == pytest.approx(expected)
    assert BootstrappedCrossEntropy(k=0.5)(logits, target).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="k_pixels"):
        BootstrappedCrossEntropy(k=2)  # a count is k_pixels, never k


def test_inverse_median_frequency_against_loop(small_batch) -> None:
    logits, target = small_batch
    weights = [0.5, 2.0, 1.0, 3.0]
    num = den = 0.0
    for image in brute_force_pixel_ce(logits, target, 255):
        for y, loss in image:
            num += weights[y] * loss
            den += weights[y]
    loss = InverseMedianFrequencyCrossEntropy(class_weights=weights)
    assert loss(logits, target).item() == pytest.approx(num / den, rel=1e-6)


def test_inverse_median_frequency_from_statistics() -> None:
    counts = torch.tensor([[30, 10, 0], [60, 0, 40]])
    freq = np.array([90 / 140, 10 / 40, 40 / 100])
    expected = np.median(freq) / freq
    by_init = InverseMedianFrequencyCrossEntropy(per_image_counts=counts)
    later = InverseMedianFrequencyCrossEntropy()
    with pytest.raises(RuntimeError, match="no class weights"):
        later(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    later.set_pixel_statistics(counts)
    for loss in (by_init, later):
        np.testing.assert_allclose(loss.class_weights.numpy(), expected, rtol=1e-6)
    assert "class_weights" in later.state_dict()  # saved with the checkpoint
    with pytest.raises(ValueError, match="3 entries but the logits have 4"):
        later(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        InverseMedianFrequencyCrossEntropy(class_weights=[1.0], per_image_counts=counts)
    with pytest.raises(ValueError, match="class_weights"):
        InverseMedianFrequencyCrossEntropy(class_weights=[1.0, -1.0])


def test_imf_takes_its_statistics_in_setup() -> None:
    """The loss contract's ``setup(datamodule)`` hook: class weights from ``per_image_counts()``
    when none were given, kept when they were, a clear error without statistics."""
    counts = [[10, 0], [30, 5]]

    class Data:
        def per_image_counts(self) -> list[list[int]]:
            return counts

    loss = InverseMedianFrequencyCrossEntropy()
    loss.setup(Data())
    assert torch.equal(
        loss.class_weights,
        InverseMedianFrequencyCrossEntropy(per_image_counts=counts).class_weights,
    )
    given = InverseMedianFrequencyCrossEntropy(class_weights=[1.0, 2.0])
    given.setup(Data())
    assert given.class_weights.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="needs class statistics"):
        InverseMedianFrequencyCrossEntropy().setup(None)
