"""Tile plans, agreement with whole-image inference, bounded memory and argument checks of
``lmp_lightning/inference/tiling.py``."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from itertools import pairwise

import pytest
import torch
from torch import Tensor

from lmp_lightning.inference import InferenceMode, sliding_windows, tile_plan, tiled_logits

# (width, num_tiles, overlap): the paper's Cityscapes setting, odd widths, widths not divisible by
# the number of tiles, odd overlaps, a single tile and the narrowest widths that fit.
PLANS = [
    (2048, 5, 200),
    (2047, 5, 200),
    (2049, 5, 199),
    (997, 3, 51),
    (211, 4, 17),
    (64, 5, 0),
    (31, 1, 200),
    (205, 5, 200),
    (7, 7, 0),
    (50, 5, 45),
]


def _image(H: int, W: int, B: int = 2) -> Tensor:
    return torch.rand(B, 3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _conv(kernel_size: int = 1) -> torch.nn.Conv2d:
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 4, kernel_size, padding=kernel_size // 2).double()


def _check_partition(plan: list[tuple[int, int, int, int]], width: int) -> None:
    """Kept ranges are non-empty, in order, inside their tiles, and partition [0, width)."""
    assert plan[0][2] == 0 and plan[-1][3] == width
    for (_, _, _, keep_end), (_, _, next_keep_start, _) in pairwise(plan):
        assert keep_end == next_keep_start
    for tile_start, tile_end, keep_start, keep_end in plan:
        assert 0 <= tile_start <= keep_start < keep_end <= tile_end <= width
    owners = torch.zeros(width, dtype=torch.long)
    for _, _, keep_start, keep_end in plan:
        owners[keep_start:keep_end] += 1
    assert torch.equal(owners, torch.ones(width, dtype=torch.long))


# ---------------------------------------------------------------- plans
@pytest.mark.parametrize(("width", "num_tiles", "overlap"), PLANS)
def test_efficient_plan_partitions_width_into_near_equal_tiles(
    width: int, num_tiles: int, overlap: int
) -> None:
    plan = tile_plan(width, "efficient", num_tiles, overlap)
    _check_partition(plan, width)
    assert len(plan) == num_tiles
    widths = [tile_end - tile_start for tile_start, tile_end, _, _ in plan]
    assert max(widths) - min(widths) <= 1
    assert all(tile[:2] == tile[2:] for tile in plan)  # non-overlapping: a tile keeps itself


@pytest.mark.parametrize(("width", "num_tiles", "overlap"), PLANS)
def test_optimized_plan_overlaps_and_splits_each_overlap_in_half(
    width: int, num_tiles: int, overlap: int
) -> None:
    plan = tile_plan(width, "optimized", num_tiles, overlap)
    _check_partition(plan, width)
    assert len(plan) == num_tiles
    w_tile = math.ceil((width + (num_tiles - 1) * overlap) / num_tiles)
    assert {tile_end - tile_start for tile_start, tile_end, _, _ in plan} == {w_tile}
    assert plan[0][0] == 0 and plan[-1][1] == width
    for left, right in pairwise(plan):
        shared = left[1] - right[0]
        assert shared in (overlap, overlap + 1)  # +1 where rounding w_tile up leaves columns
        assert left[3] - right[0] == shared // 2  # left tile: left half
        assert left[1] - right[2] == shared - shared // 2  # right tile: right half (+ odd one)


def test_optimized_plan_of_the_paper_setting() -> None:
    plan = tile_plan(2048, "optimized", 5, 200)
    assert [tile_end - tile_start for tile_start, tile_end, _, _ in plan] == [570] * 5
    assert [left[1] - right[0] for left, right in pairwise(plan)] == [201, 200] * 2


@pytest.mark.parametrize("width", [1, 17, 2048])
def test_whole_plan_is_one_tile(width: int) -> None:
    assert tile_plan(width, "whole") == [(0, width, 0, width)]


@pytest.mark.parametrize(
    ("length", "crop", "stride"),
    [(1024, 512, 341), (2048, 512, 512), (1000, 512, 341), (37, 8, 3), (8, 8, 5), (5, 8, 5)],
)
def test_sliding_windows_cover_the_axis(length: int, crop: int, stride: int) -> None:
    windows = sliding_windows(length, crop, stride)
    coverage = torch.zeros(length, dtype=torch.long)
    for start, end in windows:
        assert 0 <= start < end <= length and end - start == min(crop, length)
        coverage[start:end] += 1
    assert bool((coverage >= 1).all())
    assert windows[0][0] == 0 and windows[-1][1] == length  # last window on the border
    starts = [start for start, _ in windows]
    assert all(b - a == stride for a, b in pairwise(starts[:-1]))
    assert len(windows) == max(0, math.ceil((length - crop) / stride)) + 1


# ---------------------------------------------------------------- agreement with whole image
SIZES = [(5, 2048, 5, 200), (13, 997, 5, 200), (7, 211, 3, 51), (3, 37, 4, 5), (4, 9, 9, 0)]


def _pointwise(x: Tensor) -> Tensor:
    """A model without spatial context made of correctly rounded elementwise operations, so that
    its result at a pixel cannot depend on the input's size."""
    return torch.cat([x * 2 - 1, x.square()], dim=1)


@pytest.mark.parametrize(("H", "W", "num_tiles", "overlap"), SIZES)
@pytest.mark.parametrize("mode", ["whole", "efficient", "optimized"])
def test_tiles_agree_exactly_with_whole_image_without_context(
    mode: InferenceMode, H: int, W: int, num_tiles: int, overlap: int
) -> None:
    image = _image(H, W)
    tiled = tiled_logits(_pointwise, image, mode, num_tiles=num_tiles, overlap=overlap)
    assert torch.equal(tiled, _pointwise(image))  # every column copied from exactly one tile


@pytest.mark.parametrize(("H", "W", "num_tiles", "overlap"), SIZES)
@pytest.mark.parametrize("mode", ["whole", "efficient", "optimized"])
def test_tiles_agree_with_whole_image_for_a_1x1_convolution(
    mode: InferenceMode, H: int, W: int, num_tiles: int, overlap: int
) -> None:
    # the convolution backend may sum the 3 channels in another order for another input size
    model, image = _conv(1), _image(H, W)
    with torch.no_grad():
        expected = model(image)
        tiled = tiled_logits(model, image, mode, num_tiles=num_tiles, overlap=overlap)
    assert tiled.shape == expected.shape and tiled.dtype == torch.float64
    torch.testing.assert_close(tiled, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("H", "W", "crop_size", "stride"),
    [
        (37, 101, 16, None),
        (37, 101, (8, 24), (5, 7)),
        (64, 64, 32, 32),
        (5, 7, 16, None),  # smaller than the crop: one window
        (9, 300, (4, 64), (1, 16)),
    ],
)
def test_sliding_agrees_with_whole_image_without_context(
    H: int, W: int, crop_size: int | tuple[int, int], stride: int | tuple[int, int] | None
) -> None:
    model, image = _conv(1), _image(H, W)
    with torch.no_grad():
        expected = model(image)
        tiled = tiled_logits(model, image, "sliding", crop_size=crop_size, stride=stride)
    assert tiled.shape == expected.shape
    torch.testing.assert_close(tiled, expected, atol=1e-12, rtol=0)


def test_optimized_overlap_gives_tiles_the_context_efficient_tiles_lack() -> None:
    """A 3x3 convolution sees one column on each side: tiles overlapping by 4 decide every
    column with full context, as the whole image does; non-overlapping tiles do not."""
    model, image = _conv(3), _image(6, 50)
    with torch.no_grad():
        expected = model(image)
        optimized = tiled_logits(model, image, "optimized", num_tiles=4, overlap=4)
        efficient = tiled_logits(model, image, "efficient", num_tiles=4)
    torch.testing.assert_close(optimized, expected, atol=1e-12, rtol=0)
    assert not torch.allclose(efficient, expected)


# ---------------------------------------------------------------- bounded memory
class Recorder:
    """Wraps a model; records the input sizes and how many earlier outputs are still alive."""

    def __init__(self, model: Callable[[Tensor], Tensor]) -> None:
        self.model = model
        self.sizes: list[tuple[int, int]] = []
        self.max_alive = 0
        self._outputs: list[weakref.ref[Tensor]] = []

    def __call__(self, x: Tensor) -> Tensor:
        alive = sum(ref() is not None for ref in self._outputs)
        self.max_alive = max(self.max_alive, alive)
        self.sizes.append((x.shape[-2], x.shape[-1]))
        out = self.model(x)
        self._outputs.append(weakref.ref(out))
        return out


@pytest.mark.parametrize(
    ("mode", "W"),
    [("efficient", 2048), ("efficient", 997), ("optimized", 2048), ("optimized", 997)],
)
def test_tiles_bound_the_model_input(mode: InferenceMode, W: int) -> None:
    H, num_tiles, overlap = 3, 5, 200
    recorder = Recorder(_conv(1))
    with torch.no_grad():
        tiled_logits(recorder, _image(H, W, B=1), mode, num_tiles, overlap)
    w_tile = (
        math.ceil(W / num_tiles)
        if mode == "efficient"
        else math.ceil((W + (num_tiles - 1) * overlap) / num_tiles)
    )
    assert len(recorder.sizes) == num_tiles
    assert max(h for h, _ in recorder.sizes) == H
    assert max(w for _, w in recorder.sizes) == w_tile
    assert recorder.max_alive == 0  # the previous tile's logits are freed before the next call


@pytest.mark.parametrize(("crop_size", "stride"), [(16, None), ((8, 32), (3, 11))])
def test_sliding_windows_bound_the_model_input(
    crop_size: int | tuple[int, int], stride: int | tuple[int, int] | None
) -> None:
    crop_h, crop_w = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    recorder = Recorder(_conv(1))
    with torch.no_grad():
        tiled_logits(recorder, _image(40, 90), "sliding", crop_size=crop_size, stride=stride)
    assert max(h for h, _ in recorder.sizes) == crop_h
    assert max(w for _, w in recorder.sizes) == crop_w
    assert recorder.max_alive == 0


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "tiles"}, r"mode.*'whole', 'efficient', 'optimized', 'sliding'.*'tiles'"),
        ({"num_tiles": 0}, r"num_tiles.*0"),
        ({"num_tiles": 2.5}, r"num_tiles.*2\.5"),
        ({"overlap": -1}, r"overlap.*-1"),
        ({"mode": "sliding", "crop_size": 0}, r"crop_size.*0"),
        ({"mode": "sliding", "crop_size": (8, 8, 8)}, r"crop_size.*\(8, 8, 8\)"),
        ({"mode": "sliding", "stride": 0}, r"stride.*0"),
        ({"mode": "sliding", "crop_size": 8, "stride": 9}, r"stride=9.*crop_size=8"),
        ({"mode": "efficient", "num_tiles": 51}, r"num_tiles=51.*width=50"),
        ({"mode": "optimized", "overlap": 50}, r"num_tiles=5.*overlap=50.*width=50"),
        ({"mode": "optimized", "num_tiles": 5, "overlap": 46}, r"overlap=46"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiled_logits(_conv(1), _image(4, 50), **kwargs)


def test_bad_image_and_model_output_raise_value_errors() -> None:
    with pytest.raises(ValueError, match=r"image.*\(3, 4, 50\)"):
        tiled_logits(_conv(1), _image(4, 50)[0])
    with pytest.raises(ValueError, match=r"model_fn.*\(2, 3, 4, 10\).*\(2, 4, 4, 5\)"):
        tiled_logits(lambda x: _conv(1)(x)[..., ::2], _image(4, 50), "efficient")


def test_tile_plan_rejects_unknown_and_sliding_modes() -> None:
    with pytest.raises(ValueError, match=r"'whole', 'efficient', 'optimized'.*'sliding'"):
        tile_plan(100, "sliding")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"width.*0"):
        tile_plan(0, "efficient")


def test_optimized_plan_rejects_one_column_too_narrow() -> None:
    assert len(tile_plan(205, "optimized", 5, 200)) == 5  # tiles start one column apart
    with pytest.raises(ValueError, match=r"num_tiles=5.*overlap=200.*width=204"):
        tile_plan(204, "optimized", 5, 200)
