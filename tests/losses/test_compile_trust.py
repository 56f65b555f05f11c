"""``torch.compile(loss)`` against the eager loss: values, gradients and input checks.

Every compiled loss is called at several shapes in one process, as a training run with crops
of several sizes calls it: Dynamo compiles the first shape statically and recompiles the
second with dynamic shapes (or is dynamic from the start with ``dynamic=True``). Dynamo's
caches are reset between test functions only, never between the shapes of one test. Loss max
-pooling used to go wrong here: Inductor read a dimension of size 1 that it could not prove to
be 1 (``top[:, :1]`` of a top-k of symbolic size) as an unbroadcast one, and the pooled loss
was off by 10%, or 0 with ``dynamic=True``. With ``dynamic=True`` a loss's float arguments
(``p``, ``minkowski_k``) are symbolic too: ``math.isnan(p)`` in their checks broke the graph
there, and the graph resumed after the break gave top-1 pooling (``p = 1``) a wrong value; the
checks are comparisons now, and ``fullgraph=True`` holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from lmp_lightning.losses import SegmentationLoss, build_loss, list_losses
from lmp_lightning.losses.functional import lmp_weights, loss_max_pooling, resolve_m

SHAPES = [(2, 3, 8, 6), (3, 3, 5, 7), (1, 3, 9, 4)]
"""Logit shapes (B, C, H, W) called in this order in one process."""

CONFIGS: dict[str, list[dict[str, Any]]] = {
    "bootstrap": [{}, {"k_pixels": 5}],
    "ce": [{}],
    "center": [{"lambda_": 0.1}],
    "focal": [{}],
    "imf_ce": [{"class_weights": [1.0, 2.0, 0.5]}],
    "lall": [
        {"kernel_size": 3, "backend": "sparse"},
        {"kernel_size": 3, "backend": "compiled", "pooling": "lmp"},
    ],
    "lmp": [
        {"p": 1.3, "m": 0.25},
        {"p": 1.0, "m": 0.3},
        {"p": 1.05, "m": 0.1},  # q = 21: the float64 log-domain walk
        {"p": float("inf")},
        {"p": 2.0, "m_pixels": 7},
    ],
}
"""Loss arguments by short name; every registered loss must have an entry."""


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    """Each test function compiles from scratch (but its shapes share one cache)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def batch(shape: tuple[int, int, int, int], seed: int) -> tuple[torch.Tensor, ...]:
    """float32 logits, labels with about 20% ignored pixels, and decoder features."""
    B, C, H, W = shape
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=g) * 2
    target = torch.randint(0, C, (B, H, W), generator=g)
    target[torch.rand(B, H, W, generator=g) < 0.2] = 255
    features = torch.randn(B, 4, max(1, H // 2), max(1, W // 2), generator=g)
    return logits, target, features


def value_and_grads(
    loss: Callable[..., torch.Tensor], logits: torch.Tensor, target: torch.Tensor, features
) -> list[torch.Tensor]:
    x = logits.clone().requires_grad_()
    f = features.clone().requires_grad_()
    value = loss(x, target, features=f)
    value.backward()
    return [value.detach(), x.grad, torch.zeros_like(f) if f.grad is None else f.grad]


def assert_compiled_matches_eager(
    make: Callable[[], SegmentationLoss], shapes: list[tuple[int, int, int, int]], **compile_kw
) -> None:
    """Separate eager and compiled instances (the centre loss has state) stepped in lockstep."""
    eager, compiled_module = make(), make()
    compiled = torch.compile(compiled_module, **compile_kw)
    for seed, shape in enumerate(shapes):
        logits, target, features = batch(shape, seed)
        expected = value_and_grads(eager, logits, target, features)
        got = value_and_grads(compiled, logits, target, features)
        for name, e, c in zip(("value", "logits", "features"), expected, got, strict=True):
            torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6, msg=f"{shape} {name}")
        state = compiled_module.state_dict()  # the centres of the centre loss
        for key, e in eager.state_dict().items():
            torch.testing.assert_close(state[key], e, rtol=1e-5, atol=1e-6, msg=f"{shape} {key}")


def test_every_loss_has_a_compile_case() -> None:
    assert sorted(CONFIGS) == list_losses()


def test_compiled_lmp_after_a_shape_change() -> None:
    """The reported case: p = 1.3, m = 0.25, a second shape in the same process."""
    assert_compiled_matches_eager(lambda: build_loss("lmp", p=1.3, m=0.25), SHAPES[:2])


@pytest.mark.parametrize(("name", "kwargs"), [("lmp", {"p": 1.0, "m": 0.3}), ("lmp", {})])
def test_compiled_lmp_with_symbolic_p_is_one_graph(name: str, kwargs: dict[str, Any]) -> None:
    """``dynamic=True`` makes ``p`` a symbolic float: no graph break in its checks."""
    make = lambda: build_loss(name, **kwargs)  # noqa: E731
    assert_compiled_matches_eager(make, SHAPES[:2], dynamic=True, fullgraph=True)


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [None, True])
@pytest.mark.parametrize(
    ("name", "kwargs"), [(name, kw) for name, kws in sorted(CONFIGS.items()) for kw in kws]
)
def test_compiled_loss_matches_eager_at_several_shapes(
    name: str, kwargs: dict[str, Any], dynamic: bool | None
) -> None:
    assert_compiled_matches_eager(lambda: build_loss(name, **kwargs), SHAPES, dynamic=dynamic)


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [None, True])
@pytest.mark.parametrize("p", [1.0, 1.3, 1.05])
def test_compiled_functional_lmp_matches_eager(dynamic: bool | None, p: float) -> None:
    """``lmp_weights`` (its checks break the graph, its ``k`` comes from ``.item()``) and
    ``loss_max_pooling`` compiled, at several row lengths."""

    def weights(losses: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return lmp_weights(losses, p, valid=valid, m_pixels=resolve_m(0.1, valid.sum(-1)))

    def pooled(losses: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return loss_max_pooling(losses, valid, p, 0.25, check=False)

    compiled_weights = torch.compile(weights, dynamic=dynamic)
    compiled_pooled = torch.compile(pooled, dynamic=dynamic)
    for B, N in [(2, 48), (3, 35), (4, 7), (1, 64)]:
        g = torch.Generator().manual_seed(N)
        losses = torch.rand(B, N, generator=g) * 3
        valid = torch.rand(B, N, generator=g) > 0.2
        torch.testing.assert_close(compiled_weights(losses, valid), weights(losses, valid))
        torch.testing.assert_close(compiled_pooled(losses, valid), pooled(losses, valid))


LABEL_CHECKED = ["ce", "bootstrap", "focal", "center", "imf_ce"]


def assert_bad_labels_raise_compiled(name: str, fullgraph: bool) -> None:
    """The compiled loss gives the eager value, then the eager loss's clear ValueError for
    labels out of range (never Inductor's "index out of bounds")."""
    kwargs = CONFIGS[name][0]
    compiled = torch.compile(build_loss(name, **kwargs), fullgraph=fullgraph)
    logits, target, features = batch(SHAPES[0], 0)
    expected = build_loss(name, **kwargs)(logits, target, features=features)
    torch.testing.assert_close(compiled(logits, target, features=features), expected)
    target[0, 0, 0], target[1, 2, 3] = 3, -2
    match = r"target has labels \[-2, 3\] outside \[0, 3\) that are not ignore_index=255"
    with pytest.raises(ValueError, match=match):
        build_loss(name, **kwargs)(logits, target, features=features)  # eager says the same
    with pytest.raises(ValueError, match=match):
        compiled(logits, target, features=features)


def test_compiled_cross_entropy_reports_bad_labels() -> None:
    assert_bad_labels_raise_compiled("ce", fullgraph=True)


@pytest.mark.slow
@pytest.mark.parametrize("fullgraph", [False, True])
@pytest.mark.parametrize("name", LABEL_CHECKED)
def test_compiled_loss_reports_bad_labels(name: str, fullgraph: bool) -> None:
    assert_bad_labels_raise_compiled(name, fullgraph)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ce", "lmp"])
def test_compiled_loss_reports_non_finite_logits(name: str) -> None:
    compiled = torch.compile(build_loss(name), fullgraph=True)
    logits, target, _ = batch(SHAPES[0], 0)
    logits[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="logits contain NaN or infinite values"):
        compiled(logits, target)
