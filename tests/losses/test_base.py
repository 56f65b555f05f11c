"""Registry, base class and input validation shared by every loss."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from lmp_lightning import losses as L

EXPECTED = {
    "ce": L.CrossEntropy,
    "imf_ce": L.InverseMedianFrequencyCrossEntropy,
    "bootstrap": L.BootstrappedCrossEntropy,
    "focal": L.SoftmaxFocalLoss,
    "lmp": L.LossMaxPooling,
    "lall": L.LocallyAdaptiveLoss,
    "center": L.CenterLoss,
}


def _build(name: str, **extra: object) -> L.SegmentationLoss:
    kwargs: dict[str, object] = {"class_weights": [1.0, 2.0, 0.5]} if name == "imf_ce" else {}
    if name == "lall":  # the default, "auto", would compile on the first call of each test
        kwargs["backend"] = "sparse"
    loss = L.build_loss(name, **kwargs, **extra)
    if loss.needs_features:  # hand it fixed features, as SegmentationModule does
        features = torch.linspace(-1, 1, 2 * 5 * 4 * 4).view(2, 5, 4, 4)
        return functools.partial(loss, features=features)  # type: ignore[return-value]
    return loss


def test_registry_is_complete() -> None:
    assert L.list_losses() == sorted(EXPECTED)
    for name, cls in EXPECTED.items():
        assert L.LOSSES[name] is cls
        assert issubclass(cls, L.SegmentationLoss)
        assert (
            type(L.build_loss(name, **({"class_weights": [1.0]} if name == "imf_ce" else {})))
            is cls
        )


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(
        KeyError, match=r"unknown loss 'dice'; valid losses: BootstrappedCrossEntropy \(bootstrap\)"
    ):
        L.build_loss("dice")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_gives_clear_errors(name: str) -> None:
    loss = _build(name)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    bad = target.clone()
    bad[0, 0, 0], bad[1, 1, 1] = 7, -1
    with pytest.raises(ValueError, match=r"labels \[-1, 7\] outside \[0, 3\)"):
        loss(logits, bad)
    with pytest.raises(ValueError, match="target must have shape"):
        loss(logits, target[:, :3])
    with pytest.raises(ValueError, match=r"logits must have shape \(B, C, H, W\)"):
        loss(logits[0], target)
    with pytest.raises(TypeError, match="target must be an integer tensor"):
        loss(logits, target.float())
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        loss(logits.long(), target)
    nan_logits = logits.clone()
    nan_logits[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        loss(nan_logits, target)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_all_ignored_gives_zero_with_graph(name: str) -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    value = _build(name)(logits, torch.full((2, 4, 4), 255, dtype=torch.uint8))
    assert value.item() == 0.0
    value.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_other_ignore_index(name: str) -> None:
    """ignore_index = -100 or 3 means the same thing for every loss."""
    loss_a = _build(name, ignore_index=-100)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (2, 4, 4), generator=g)
    target_255 = target.clone()
    target[0, :2] = -100
    target_255[0, :2] = 255
    assert loss_a(logits, target).item() == pytest.approx(_build(name)(logits, target_255).item())


def test_validate_args_false_skips_the_checks() -> None:
    """``validate_args=False`` computes on the input as it is (as torchmetrics' switch does);
    with it on, the same labels give a clear error before PyTorch sees them."""
    from lmp_lightning.losses import CrossEntropy, LossMaxPooling

    logits, target = torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    for loss in (CrossEntropy(validate_args=False), LossMaxPooling(validate_args=False)):
        assert torch.isfinite(loss(logits, target))
    target[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"labels \[7\] outside \[0, 3\)"):
        CrossEntropy()(logits, target)
    with pytest.raises(RuntimeError, match="out of bounds"):  # PyTorch's own (gather), unchecked
        CrossEntropy(validate_args=False)(logits, target)
    with pytest.raises(TypeError, match="validate_args"):
        CrossEntropy(validate_args="no")  # type: ignore[arg-type]
