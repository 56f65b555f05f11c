"""lmp_weights and the pooled loss against independent references (tests/losses/reference.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmp_lightning.losses.functional import (
    lmp_weights,
    loss_max_pooling,
    median_frequency_weights,
    pixel_cross_entropy,
    resolve_m,
)
from tests.losses.reference import feasible_set, generic_solver_value, reference_weights

P_VALUES = [1.0, 1.05, 1.3, 2.0, 4.0]


def _row_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        ("single", np.array([0.7])),
        ("two", np.array([0.2, 3.0])),
        ("random-10", rng.random(10) * 3),
        ("random-37", rng.exponential(1.0, 37)),
        ("random-300", rng.gamma(0.5, 2.0, 300)),
        ("ties", np.array([1.0, 1.0, 1.0, 0.5, 0.5, 2.0, 2.0, 0.0])),
        ("all-equal", np.full(20, 0.9)),
        ("zeros", np.array([0.0, 0.0, 0.0, 1.5, 0.0, 0.0])),
        ("all-zero", np.zeros(5)),
        ("heavy-tail", np.concatenate([np.full(50, 1e-3), [10.0, 50.0]])),
    ]


def _m_values(n: int) -> list[float]:
    return sorted({1.0, min(n, 1.5), min(n, 2.0), max(1.0, n / 4), max(1.0, n / 3 + 0.3), n})


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize(("name", "row"), _row_cases(), ids=[c[0] for c in _row_cases()])
def test_against_reference(name: str, row: np.ndarray, p: float) -> None:
    for m in _m_values(row.size):
        w = lmp_weights(torch.from_numpy(row)[None], p, m_pixels=m)[0].numpy()
        ref_w, ref_value = reference_weights(row, p, m)
        value = float(w @ row)
        assert value == pytest.approx(ref_value, rel=1e-5, abs=1e-12), (name, p, m)
        gamma, tau = feasible_set(row.size, p, m)
        assert np.all(w >= 0) and np.all(w <= tau * (1 + 1e-9)), (name, p, m)
        assert np.sum(w**p) ** (1 / p) <= gamma * (1 + 1e-9), (name, p, m)
        if p > 1 and row.max() > 0 and np.all(row > 0):  # unique maximiser
            np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-9 * tau)


@pytest.mark.parametrize("p", [1.001, 1.05, 1.125, 1.3, 2.0, 4.0])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_float32_losses_against_reference(p: float, scale: float) -> None:
    """float32 losses take float32 passes over the pixels when q = p / (p - 1) <= 9 (p = 1.125
    is the edge) and float64 ones below: both stay within 1e-5 of the reference solver."""
    for name, row in _row_cases():
        row32 = (row * scale).astype(np.float32)
        exact = row32.astype(np.float64)  # the reference sees the same rounded values
        for m in _m_values(row.size):
            w = lmp_weights(torch.from_numpy(row32)[None], p, m_pixels=m)[0]
            assert w.dtype == torch.float32
            value = float(w.double() @ torch.from_numpy(exact))
            ref_value = reference_weights(exact, p, m)[1]
            assert value == pytest.approx(ref_value, rel=1e-5, abs=1e-12 * scale), (name, p, m)


@pytest.mark.parametrize("p", [1.05, 1.3, 2.0, 4.0])
@pytest.mark.parametrize("n", [3, 6, 9])
def test_reference_agrees_with_generic_solver(p: float, n: int) -> None:
    """The bisection reference itself, checked by a general-purpose solver."""
    row = np.random.default_rng(n).random(n) * 2
    for m in (1.0, n / 2, float(n)):
        assert reference_weights(row, p, m)[1] == pytest.approx(
            generic_solver_value(row, p, m), rel=1e-5
        )


@pytest.mark.parametrize("p", P_VALUES)
def test_batched_equals_row_by_row_with_masks(p: float) -> None:
    g = torch.Generator().manual_seed(1)
    B, N = 6, 120
    losses = torch.rand(B, N, generator=g, dtype=torch.float64) ** 3 * 5
    valid = torch.rand(B, N, generator=g) < torch.tensor([1.0, 0.9, 0.5, 0.05, 0.02, 0.0])[:, None]
    valid[4] = False
    valid[4, 7] = True  # a single valid pixel
    n = valid.sum(-1)
    m = torch.clamp(n.double() * torch.tensor([0.25, 0.5, 1.0, 0.3, 1.0, 1.0]), min=1)
    w = lmp_weights(losses, p, valid=valid, m_pixels=m)
    assert torch.all(w[~valid] == 0)
    assert torch.all(w[5] == 0)  # the row without a valid entry
    for b in range(B - 1):
        row = losses[b, valid[b]].numpy()
        w_row = lmp_weights(torch.from_numpy(row)[None], p, m_pixels=float(m[b]))[0]
        assert torch.allclose(w[b, valid[b]], w_row, rtol=1e-12, atol=1e-15)
        assert float(w_row @ torch.from_numpy(row)) == pytest.approx(
            reference_weights(row, p, float(m[b]))[1], rel=1e-5
        )


def test_masked_entries_do_not_count_in_n() -> None:
    """Ignored pixels are not zero-loss pixels: n counts valid entries only."""
    losses = torch.tensor([[3.0, 1.0, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True, True, False, False, False]])
    masked = lmp_weights(losses, 1.3, valid=valid, m_pixels=1.5)
    alone = lmp_weights(losses[:, :3], 1.3, m_pixels=1.5)
    assert torch.equal(masked[:, :3], alone)


@pytest.mark.parametrize("p", [1.001, 1.01, 1.05])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_near_one_and_large_losses_are_finite_and_exact(p: float, scale: float) -> None:
    row = np.random.default_rng(3).random(200) * scale
    for m in (1.0, 7.5, 50.0):
        w = lmp_weights(torch.from_numpy(row)[None], p, m_pixels=m)[0].numpy()
        assert np.all(np.isfinite(w))
        gamma, _tau = feasible_set(row.size, p, m)
        assert np.sum(w**p) ** (1 / p) <= gamma * (1 + 1e-9)  # no overshoot near p = 1
        assert float(w @ row) == pytest.approx(reference_weights(row, p, m)[1], rel=1e-5)


def test_p_one_is_top_k_mean_with_fractional_remainder() -> None:
    row = torch.tensor([[0.3, 5.0, 1.0, 4.0, 2.0, 0.1]], dtype=torch.float64)
    pooled = (lmp_weights(row, 1.0, m_pixels=3.0) * row).sum().item()
    assert pooled == pytest.approx((5 + 4 + 2) / 3)
    # m = 2.5: tau = 1/2.5 on {5, 4}, tau * 0.5 on the loss alpha* = 2.
    w = lmp_weights(row, 1.0, m_pixels=2.5)
    expected = torch.tensor([[0, 0.4, 0, 0.4, 0.2, 0]], dtype=torch.float64)
    assert torch.allclose(w, expected)


def test_large_p_and_m_equal_n_tend_to_uniform() -> None:
    row = torch.rand(1, 50, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.1
    for p in (1.3, 2.0, 4.0):
        assert torch.allclose(lmp_weights(row, p, m_pixels=50.0), torch.full_like(row, 1 / 50))
    w = lmp_weights(row, 200.0, m_pixels=5.0)
    assert (w.max() - w.min()) / w.mean() < 0.05
    assert torch.allclose(lmp_weights(row, math.inf, m_pixels=5.0), torch.full_like(row, 1 / 50))


@settings(max_examples=60, deadline=None)
@given(
    row=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40),
    p=st.sampled_from(P_VALUES),
    frac=st.floats(0, 1),
)
def test_properties(row: list[float], p: float, frac: float) -> None:
    losses = torch.tensor([row], dtype=torch.float64)
    n = len(row)
    m = 1 + frac * (n - 1)
    w = lmp_weights(losses, p, m_pixels=m)
    value = float((w * losses).sum())
    assert value >= float(losses.mean()) * (1 - 1e-9) - 1e-12  # upper-bounds the mean
    gamma, tau = feasible_set(n, p, m)
    assert torch.all(w >= 0) and torch.all(w <= tau * (1 + 1e-9))
    assert float((w**p).sum() ** (1 / p)) <= gamma * (1 + 1e-9)
    assert value == pytest.approx(reference_weights(np.array(row), p, m)[1], rel=1e-5, abs=1e-9)


def test_gradient_is_that_of_fixed_weights() -> None:
    g = torch.Generator().manual_seed(2)
    losses = (torch.rand(3, 40, generator=g, dtype=torch.float64) * 2).requires_grad_()
    valid = torch.rand(3, 40, generator=g) < 0.8
    pooled = loss_max_pooling(losses, valid, 1.3, 0.25).sum()
    (grad,) = torch.autograd.grad(pooled, losses)
    w = lmp_weights(losses.detach(), 1.3, valid=valid, m_pixels=resolve_m(0.25, valid.sum(-1)))
    assert torch.equal(grad, w)


def test_low_precision_losses_give_float32_weights() -> None:
    row = torch.rand(2, 64, generator=torch.Generator().manual_seed(9)) * 4
    for dtype in (torch.float16, torch.bfloat16):
        w = lmp_weights(row.to(dtype), 1.3, m_pixels=16.0)
        assert w.dtype == torch.float32
        ref = lmp_weights(row.to(dtype).double(), 1.3, m_pixels=16.0)
        assert torch.allclose(w.double(), ref, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 0.5, "m": 0.2}, "p must be >= 1"),
        ({"p": 1.3, "m": 2.0}, r"m is a fraction .* in \(0, 1\], got m=2.0; give a pixel count"),
        ({"p": 1.3, "m": 0.0}, r"must be in \(0, 1\], got m=0.0"),
        ({"p": 1.3, "m_pixels": 0.5}, "m_pixels must be >= 1"),
        ({"p": 1.3, "m_pixels": torch.tensor([0.5, 2.0])}, "1 <= m_pixels <= n"),
        ({"p": 1.3, "m_pixels": torch.tensor([11.0, 2.0])}, "1 <= m_pixels <= n"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lmp_weights(torch.rand(2, 10), **kwargs)


def test_m_is_a_fraction_like_the_class() -> None:
    """``m`` is the fraction of each row's valid entries that ``LossMaxPooling(m=...)`` takes;
    a count goes to ``m_pixels`` (a number is capped at the row's valid entries)."""
    losses = torch.rand(2, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    valid = torch.ones_like(losses, dtype=torch.bool)
    valid[1, 10:] = False  # 20 and 10 valid entries
    by_fraction = lmp_weights(losses, 1.3, 0.25, valid)
    by_counts = lmp_weights(losses, 1.3, valid=valid, m_pixels=torch.tensor([5.0, 2.5]))
    torch.testing.assert_close(by_fraction, by_counts)
    torch.testing.assert_close(
        lmp_weights(losses, 1.3, valid=valid, m_pixels=15),
        lmp_weights(losses, 1.3, valid=valid, m_pixels=torch.tensor([15.0, 10.0])),
    )
    torch.testing.assert_close(lmp_weights(losses, 1.3), lmp_weights(losses, 1.3, m=0.25))


def test_bad_losses() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        lmp_weights(torch.tensor([[1.0, -2.0]]), 1.3, m_pixels=1.0)
    with pytest.raises(ValueError, match="finite"):
        lmp_weights(torch.tensor([[1.0, math.nan]]), 1.3, m_pixels=1.0)
    with pytest.raises(TypeError, match="floating"):
        lmp_weights(torch.tensor([[1, 2]]), 1.3, m_pixels=1.0)
    with pytest.raises(ValueError, match=r"shape \(B, N\)"):
        lmp_weights(torch.rand(10), 1.3, m_pixels=1.0)
    with pytest.raises(TypeError, match="bool"):
        lmp_weights(torch.rand(1, 3), 1.3, valid=torch.ones(1, 3), m_pixels=1.0)


def test_resolve_m() -> None:
    n = torch.tensor([100, 3, 0])
    assert resolve_m(0.25, n).tolist() == [25.0, 1.0, 1.0]
    assert resolve_m(1.0, n).tolist() == [100.0, 3.0, 1.0]
    assert resolve_m(1, n).tolist() == [100.0, 3.0, 1.0]  # an int is a fraction too: 1 is all
    assert resolve_m(0.25, n, pixels=10).tolist() == [10.0, 3.0, 1.0]
    for bad in (0, -1, 0.0, 1.5, -0.2, 2, 10):
        with pytest.raises(ValueError, match="m_pixels"):
            resolve_m(bad, n)
    with pytest.raises(TypeError, match="m"):
        resolve_m("0.25", n)  # type: ignore[arg-type]
    for bad_pixels in (0, -3):
        with pytest.raises(ValueError, match="pixel count"):
            resolve_m(0.25, n, pixels=bad_pixels)
    with pytest.raises(TypeError, match="pixel count"):
        resolve_m(0.25, n, pixels=2.5)  # type: ignore[arg-type]


def test_median_frequency_weights_by_hand() -> None:
    counts = torch.tensor([[30, 10, 0, 0], [60, 0, 40, 0]])
    # freq: c0 = 90 / 140, c1 = 10 / 40, c2 = 40 / 100; c3 never appears.
    freq = np.array([90 / 140, 10 / 40, 40 / 100])
    expected = np.append(np.median(freq) / freq, 0.0)
    np.testing.assert_allclose(median_frequency_weights(counts).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="per_image_counts"):
        median_frequency_weights(torch.tensor([1, 2]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_pixel_cross_entropy_against_loops_and_pytorch(small_batch, dtype: torch.dtype) -> None:
    """Values against explicit loops (conftest), gradients under random upstream weights against
    autograd through ``F.cross_entropy(reduction="none")``, ignored pixels included."""
    from tests.losses.conftest import brute_force_pixel_ce

    logits64, target = small_batch
    logits = logits64.to(dtype).requires_grad_()
    losses, valid = pixel_cross_entropy(logits, target, 255)
    assert losses.dtype == torch.promote_types(dtype, torch.float32)
    assert torch.equal(valid, (target != 255).flatten(1))
    for b, pixels in enumerate(brute_force_pixel_ce(logits.detach().double(), target, 255)):
        expected = torch.tensor([ce for _, ce in pixels], dtype=torch.float64)
        rtol = 1e-12 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(losses[b][valid[b]].double(), expected, rtol=rtol, atol=rtol)
        assert torch.all(losses[b][~valid[b]] == 0)
    weights = torch.rand(
        losses.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    (losses.double() * weights).sum().backward()
    reference = logits.detach().clone().requires_grad_()
    pytorch = torch.nn.functional.cross_entropy(
        reference.to(losses.dtype), target, ignore_index=255, reduction="none"
    )
    (pytorch.flatten(1).double() * weights).sum().backward()
    assert logits.grad.dtype == dtype
    tol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3}[dtype]
    torch.testing.assert_close(logits.grad, reference.grad, rtol=tol, atol=tol)


def test_pixel_cross_entropy_gradcheck() -> None:
    """Finite differences (float64), with an ignored pixel and a second use of the losses."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 2, 3), generator=g)
    target[0, 1, 1] = 255

    def fn(x: torch.Tensor) -> torch.Tensor:
        losses, _ = pixel_cross_entropy(x, target, 255)
        return losses * torch.exp(-losses)  # focal-like: the losses reach the output twice

    assert torch.autograd.gradcheck(fn, (logits,))


@pytest.mark.parametrize("name", ["ce", "lmp", "focal", "bootstrap"])
def test_compiled_losses_have_the_eager_gradient(name: str) -> None:
    """``torch.compile`` through the pixel cross-entropy's own backward (AOT autograd, without
    Inductor's code generation): the same value and gradient as eager. An in-place write in its
    forward once gave a zero compiled gradient (torch 2.11)."""
    from lmp_lightning.losses import build_loss

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    target[0, 0] = 255
    loss = build_loss(name)
    results = []
    for fn in (loss, torch.compile(loss, backend="aot_eager")):
        logits.grad = None
        value = fn(logits, target)
        value.backward()
        results.append((value.detach(), logits.grad.clone()))
    assert results[0][1].abs().max() > 0
    torch.testing.assert_close(results[1][0], results[0][0])
    torch.testing.assert_close(results[1][1], results[0][1])


def test_pixel_cross_entropy_mask_and_label_types() -> None:
    """The returned mask is the caller's to change in place (autograd saved none of it); int32
    labels give the int64 result."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5), generator=g)
    target[1, 2] = 255
    losses, valid = pixel_cross_entropy(logits, target, 255)
    valid &= losses.detach() > 1.0
    (losses * valid).sum().backward()
    reference = logits.detach().clone().requires_grad_()
    pytorch = torch.nn.functional.cross_entropy(
        reference, target, ignore_index=255, reduction="none"
    )
    (pytorch.flatten(1) * valid).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)
    assert torch.equal(pixel_cross_entropy(logits, target.int(), 255)[0], losses)
