from __future__ import annotations

import numpy as np
import pytest
import torch

from lmp_lightning.losses import LossMaxPooling
from tests.losses.conftest import brute_force_pixel_ce
from tests.losses.reference import reference_weights


@pytest.mark.parametrize("p", [1.0, 1.3, 2.0])
@pytest.mark.parametrize("m", [0.25, 0.6, 1.0, 3])
def test_per_image_pooling_against_reference(small_batch, p: float, m: float | int) -> None:
    logits, target = small_batch
    size = {"m_pixels": m} if isinstance(m, int) else {"m": m}  # an int is a pixel count
    value = LossMaxPooling(p=p, **size)(logits, target)
    per_image = []
    for pixels in brute_force_pixel_ce(logits, target, 255):
        if not pixels:
            continue  # an image without a valid pixel takes no part
        losses = np.array([loss for _, loss in pixels])
        n = losses.size
        m_img = min(m, n) if isinstance(m, int) else max(1.0, m * n)
        per_image.append(reference_weights(losses, p, m_img)[1])
    assert value.item() == pytest.approx(np.mean(per_image), rel=1e-5)


def test_gradient_is_fixed_weights_times_ce_gradient(small_batch) -> None:
    logits, target = small_batch
    logits = logits.clone().requires_grad_()
    LossMaxPooling(p=1.3, m=0.5)(logits, target).backward()
    # Same gradient from explicit fixed weights on the cross-entropy pixel losses.
    from lmp_lightning.losses.functional import lmp_weights, resolve_m

    logits2 = logits.detach().clone().requires_grad_()
    pix = torch.nn.functional.cross_entropy(logits2, target, ignore_index=255, reduction="none")
    pix = pix.flatten(1)
    valid = (target != 255).flatten(1)
    w = lmp_weights(pix.detach(), 1.3, valid=valid, m_pixels=resolve_m(0.5, valid.sum(-1)))
    ((w * pix).sum(-1)[valid.any(-1)].mean()).backward()
    assert torch.allclose(logits.grad, logits2.grad, rtol=1e-10, atol=1e-14)


def test_no_valid_pixel_gives_zero_with_graph() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    value = LossMaxPooling()(logits, torch.full((2, 4, 4), 255))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert torch.all(logits.grad == 0)


def test_upper_bounds_cross_entropy(small_batch) -> None:
    logits, target = small_batch
    for pixels, b in zip(brute_force_pixel_ce(logits, target, 255), range(3), strict=False):
        if not pixels:
            continue
        lmp = LossMaxPooling(p=1.3, m=0.25)(logits[b : b + 1], target[b : b + 1]).item()
        assert lmp >= np.mean([loss for _, loss in pixels]) - 1e-12


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 8, 8, generator=g).to(dtype).requires_grad_()
    target = torch.randint(0, 5, (2, 8, 8), generator=g)
    value = LossMaxPooling()(logits, target)
    value.backward()
    expected = LossMaxPooling()(logits.detach().double(), target)
    assert torch.isfinite(value) and torch.isfinite(logits.grad.float()).all()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 0.9}, ValueError, "p must be >= 1"),
        ({"m": 0.0}, ValueError, "m"),
        ({"m": 1.5}, ValueError, "fraction"),
        ({"m": -3}, ValueError, "m"),
        ({"m": 1000}, ValueError, "m_pixels"),
        ({"m_pixels": 0}, ValueError, "pixel count"),
        ({"m_pixels": 0.5}, TypeError, "pixel count"),
        ({"m": "all"}, TypeError, "m"),
        ({"ignore_index": 2.5}, TypeError, "ignore_index"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        LossMaxPooling(**kwargs)


def test_m_is_a_fraction_whatever_its_type_and_m_pixels_a_count() -> None:
    """``m: 1`` in YAML (an int) is the whole crop, as ``m: 1.0``; a count is ``m_pixels``."""
    from tests.losses.reference import reference_weights

    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    whole = LossMaxPooling(p=1.3, m=1)(logits, target)
    assert whole == LossMaxPooling(p=1.3, m=1.0)(logits, target)
    # a bound of m = n: the weights are uniform, so the loss is the mean pixel loss
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert whole.item() == pytest.approx(ce.item(), rel=1e-5)
    value = LossMaxPooling(p=1.3, m_pixels=5)(logits, target)
    pixel = torch.nn.functional.cross_entropy(logits, target, reduction="none").flatten(1)
    expected = np.mean([reference_weights(row.numpy(), 1.3, 5.0)[1] for row in pixel])
    assert value.item() == pytest.approx(expected, rel=1e-5)
