"""The losses on a GPU (skipped where CUDA is not available, as in CI): the same value and
gradient as on CPU, the host synchronisations the base class promises, and clear errors instead
of device asserts."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lmp_lightning.losses import SegmentationLoss, build_loss, list_losses

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CONFIGS = [(name, {}) for name in list_losses()] + [
    ("lall", {"kernel_size": 7, "backend": "sparse"}),
    ("lall", {"backend": "compiled"}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CONFIGS]


def _loss(name: str, device: str, **kwargs: Any) -> SegmentationLoss:
    if name == "imf_ce":
        kwargs["class_weights"] = [0.5, 1.0, 2.0, 1.5, 0.7]
    return build_loss(name, **kwargs).to(device)


def _inputs(
    device: str, dtype: torch.dtype, shape: tuple[int, int, int, int] = (2, 5, 24, 20)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    B, C, H, W = shape
    logits = torch.randn(*shape, generator=g, dtype=dtype) * 2
    target = torch.randint(0, C, (B, H, W), generator=g)
    target[0, :3] = 255
    features = torch.randn(B, 8, H // 4, W // 4, generator=g, dtype=dtype)
    return logits.to(device).requires_grad_(), target.to(device), features.to(device)


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_value_and_gradient_match_cpu(name: str, kwargs: dict[str, Any]) -> None:
    results = []
    for device in ("cpu", "cuda"):
        logits, target, features = _inputs(device, torch.float64)
        value = _loss(name, device, **kwargs)(logits, target, features=features)
        value.backward()
        results.append((value.detach().cpu(), logits.grad.cpu()))
    (value_cpu, grad_cpu), (value_gpu, grad_gpu) = results
    torch.testing.assert_close(value_gpu, value_cpu, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_gpu, grad_cpu, rtol=1e-10, atol=1e-14)


def _synchronisations(fn: Callable[[], Any]) -> int:
    """Host synchronisations that PyTorch's sync debug mode reports while ``fn`` runs."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing CUDA operation" in str(w.message) for w in caught)


@pytest.mark.parametrize("validate_args", [True, False])
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_host_synchronisations(name: str, kwargs: dict[str, Any], validate_args: bool) -> None:
    """One in the forward with the input checks (their verdict), none without; none in the
    backward."""
    loss = _loss(name, "cuda", validate_args=validate_args, **kwargs)
    logits, target, features = _inputs("cuda", torch.float32, (2, 5, 64, 64))
    loss(logits, target, features=features).backward()  # first call: compiling, caches
    values = []
    forward = _synchronisations(lambda: values.append(loss(logits, target, features=features)))
    backward = _synchronisations(lambda: values[0].backward())
    assert (forward, backward) == (int(validate_args), 0)


@pytest.mark.parametrize("name", list_losses())
def test_bad_labels_give_a_clear_error_not_a_device_assert(name: str) -> None:
    logits, target, features = _inputs("cuda", torch.float32)
    target[0, 5, 5], target[1, 2, 2] = 9, -3
    with pytest.raises(ValueError, match=r"labels \[-3, 9\] outside \[0, 5\)"):
        _loss(name, "cuda")(logits, target, features=features)
    torch.cuda.synchronize()  # the context is still usable: no assert fired on the device
    assert torch.ones(3, device="cuda").sum().item() == 3.0


@pytest.mark.parametrize("p", [1.3, 1.05])
def test_compiled_loss_max_pooling_matches_eager(p: float) -> None:
    """``torch.compile`` of LMP on a GPU (its suffix scan runs eagerly there, see
    ``_suffix_scan``): the same value and gradient as the eager loss. p = 1.05 takes the
    log-domain walk."""
    loss = build_loss("lmp", p=p).cuda()
    compiled = torch.compile(loss)
    results = []
    for fn in (loss, compiled):
        logits, target, _ = _inputs("cuda", torch.float32, (2, 5, 64, 64))
        value = fn(logits, target)
        value.backward()
        results.append((value.detach(), logits.grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-8)
