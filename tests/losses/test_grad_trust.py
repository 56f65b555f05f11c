"""Gradients and edge inputs one can trust: second derivatives (``create_graph=True``) against
float64 references in plain PyTorch, a clear error where a loss has none, and the locally
adaptive loss's empty input and window bound."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmp_lightning.losses import LocallyAdaptiveLoss, build_loss, list_losses
from lmp_lightning.losses.functional import pixel_cross_entropy
from tests.losses.reference import reference_weights

Reference = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 logits (2, 3, 4, 5), labels with ignored pixels, features (2, 4, 2, 3)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[torch.rand(2, 4, 5, generator=g) < 0.25] = 255
    features = torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64)
    return logits, target, features


def pixel_ce(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    losses = F.cross_entropy(logits, target, ignore_index=255, reduction="none").flatten(1)
    return losses, (target != 255).flatten(1)


def pooled_reference(p: float, m: float) -> Reference:
    """Loss max-pooling with the weights of the independent solver of ``reference.py`` held
    fixed (Section 4), the mean over the images with a valid pixel."""

    def loss(logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        losses, valid = pixel_ce(logits, target)
        per_image = []
        for row, keep in zip(losses, valid, strict=True):
            if keep.any():
                x = row[keep]
                w, _ = reference_weights(x.detach().numpy(), p, max(1.0, m * x.numel()))
                per_image.append((torch.from_numpy(np.asarray(w)) * x).sum())
        return torch.stack(per_image).mean()

    return loss


def focal_reference(logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor):
    ce, valid = pixel_ce(logits, target)
    p_t = torch.exp(-ce)
    return (0.25 * (1 - p_t) ** 2 * ce)[valid].mean()


def center_reference(logits: torch.Tensor, target: torch.Tensor, features: torch.Tensor):
    """Cross-entropy plus 0.1 times the mean squared distance to the first call's centres, 0."""
    labels = F.interpolate(target[:, None].double(), size=(2, 3), mode="nearest")[:, 0].long()
    keep = labels != 255
    squared = features.permute(0, 2, 3, 1)[keep].pow(2).sum()
    return F.cross_entropy(logits, target, ignore_index=255) + 0.1 * squared / keep.sum()


REFERENCES: dict[str, tuple[dict, Reference]] = {
    "bootstrap": ({"k": 0.4}, pooled_reference(1.0, 0.4)),
    "ce": ({}, lambda x, t, f: F.cross_entropy(x, t, ignore_index=255)),
    "center": ({"lambda_": 0.1}, center_reference),
    "focal": ({}, focal_reference),
    "imf_ce": (
        {"class_weights": [1.0, 2.0, 0.5]},
        lambda x, t, f: F.cross_entropy(
            x, t, weight=torch.tensor([1.0, 2.0, 0.5], dtype=x.dtype), ignore_index=255
        ),
    ),
    "lmp": ({"p": 1.3, "m": 0.25}, pooled_reference(1.3, 0.25)),
}
"""Losses with a second derivative, their arguments and a plain-PyTorch float64 reference."""


def gradient_penalty(
    loss: Callable[..., torch.Tensor], logits: torch.Tensor, target, features
) -> tuple[torch.Tensor, ...]:
    """First gradients with their graph, and the gradients of ``||d loss / d inputs||^2`` (a
    gradient penalty): the second derivative applied to the first."""
    x, f = logits.clone().requires_grad_(), features.clone().requires_grad_()
    value = loss(x, target, f)
    first = torch.autograd.grad(value, [x, f], create_graph=True, allow_unused=True)
    penalty = sum(g.pow(2).sum() for g in first if g is not None)
    assert penalty.requires_grad, "the gradient has no graph: its derivative would be lost"
    second = torch.autograd.grad(penalty, [x, f], allow_unused=True)
    return value.detach(), *first, *second


def test_every_loss_is_covered() -> None:
    assert sorted([*REFERENCES, "lall"]) == list_losses()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_second_derivative_against_reference(name: str) -> None:
    kwargs, reference = REFERENCES[name]
    logits, target, features = batch()
    module = build_loss(name, **kwargs)
    got = gradient_penalty(lambda x, t, f: module(x, t, features=f), logits, target, features)
    expected = gradient_penalty(reference, logits, target, features)
    for g, e in zip(got, expected, strict=True):
        if e is None or g is None:  # features take no part in this loss
            assert (g is None or not g.any()) and (e is None or not e.any())
            continue
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-12)


def test_pixel_cross_entropy_gradgradcheck() -> None:
    """Second order through the fast backward (CPU), the ignored pixels included."""
    logits, target, _ = batch()
    x = logits[:, :, :2, :3].clone().requires_grad_()
    t = target[:, :2, :3]
    assert torch.autograd.gradgradcheck(lambda z: pixel_cross_entropy(z, t, 255)[0], (x,))


@pytest.mark.parametrize("backend", ["sparse", pytest.param("compiled", marks=pytest.mark.slow)])
def test_locally_adaptive_refuses_double_backward(backend: str) -> None:
    """No second derivative: a clear error, never a gradient without its graph."""
    logits, target, _ = batch()
    x = logits.clone().requires_grad_()
    value = LocallyAdaptiveLoss(kernel_size=3, backend=backend)(x, target)
    with pytest.raises(RuntimeError, match=r"no double backward.*create_graph=True"):
        torch.autograd.grad(value, x, create_graph=True)
    (first,) = torch.autograd.grad(value, x)
    assert first.abs().sum() > 0  # a plain backward still works


EMPTY = [(0, 3, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)]


@pytest.mark.parametrize("pooling", ["minkowski", "lmp"])
@pytest.mark.parametrize("backend", ["sparse", "compiled", "auto"])
@pytest.mark.parametrize("shape", EMPTY)
def test_locally_adaptive_empty_input_gives_zero_with_graph(shape, backend, pooling) -> None:
    """As every loss here (and unlike ``F.cross_entropy``, NaN): an empty batch is one without
    a valid pixel, 0 with a graph; nothing compiles."""
    B, _, H, W = shape
    logits = torch.randn(shape, requires_grad=True)
    target = torch.zeros(B, H, W, dtype=torch.long)
    value = LocallyAdaptiveLoss(kernel_size=3, backend=backend, pooling=pooling)(logits, target)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert logits.grad.shape == shape
    assert build_loss("ce")(logits, target).item() == 0.0  # the same as the other losses


@pytest.mark.parametrize("kernel_size", [65, 1000001])
def test_locally_adaptive_kernel_size_is_bounded(kernel_size: int) -> None:
    with pytest.raises(ValueError, match=f"kernel_size must be at most 63.*={kernel_size}"):
        LocallyAdaptiveLoss(kernel_size=kernel_size)


def test_locally_adaptive_largest_kernel_size() -> None:
    """63 is accepted; on a 5 x 5 image it equals a window that covers the image (9)."""
    logits, target = torch.randn(1, 3, 5, 5), torch.randint(0, 3, (1, 5, 5))
    largest = LocallyAdaptiveLoss(kernel_size=63, backend="sparse")(logits, target)
    covering = LocallyAdaptiveLoss(kernel_size=9, backend="sparse")(logits, target)
    torch.testing.assert_close(largest, covering)
