"""Tiled inference over large images: the "efficient" and "optimized" tiling of Rota Bulò et
al. 2017 (Section 5.2, Cityscapes evaluation, Tables 1 to 3) and a sliding window.

All modes take a ``model_fn`` that maps a ``(B, 3, h, w)`` tensor of any size to ``(B, C, h, w)``
logits (it pads to its own stride and crops back, as
:meth:`~lmp_lightning.module.SegmentationModule.forward` does), run it on one tile at a time and
write each tile's logits into one output buffer, so that memory is bounded by one tile.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Literal, get_args

from torch import Tensor

__all__ = [
    "InferenceMode",
    "TileMode",
    "sliding_windows",
    "tile_plan",
    "tiled_logits",
]

InferenceMode = Literal["whole", "efficient", "optimized", "sliding"]
"""How :func:`tiled_logits` covers the image."""

TileMode = Literal["whole", "efficient", "optimized"]
"""The modes made of full-height vertical tiles, planned by :func:`tile_plan`."""

INFERENCE_MODES: tuple[str, ...] = get_args(InferenceMode)
TILE_MODES: tuple[str, ...] = get_args(TileMode)


def _check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` of at least ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    """An ``int`` or an ``(h, w)`` pair of positive integers as ``(h, w)``."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be positive integers, got {value!r}")
    return pair[0], pair[1]


def tile_plan(
    width: int, mode: TileMode = "efficient", num_tiles: int = 5, overlap: int = 200
) -> list[tuple[int, int, int, int]]:
    """The full-height vertical tiles of one image and the columns each tile decides.

    * ``"whole"``: one tile, the whole width.
    * ``"efficient"`` ("efficient tiling", Rota Bulò et al. 2017, Sect. 5.2): ``num_tiles``
      non-overlapping tiles covering the width, widths as equal as possible (the first
      ``width % num_tiles`` tiles are one column wider); each tile decides all its columns.
    * ``"optimized"`` ("optimized tiling", ibid.): ``num_tiles`` tiles of equal width
      ``w_tile = ceil((width + (num_tiles - 1) * overlap) / num_tiles)``, the first at the left
      border, the last at the right border, the others evenly spaced. Consecutive tiles overlap by
      ``overlap`` columns, or ``overlap + 1`` at some junctions where the rounding up of
      ``w_tile`` leaves spare columns. In each overlap the left tile decides the left half and the
      right tile the right half; of an odd overlap the right tile decides the extra (middle)
      column.

    The kept ranges ``[keep_start, keep_end)`` partition ``[0, width)`` in order, and each lies
    within its tile ``[tile_start, tile_end)``.

    Args:
        width: image width ``W`` in pixels.
        mode: ``"whole"``, ``"efficient"`` or ``"optimized"``.
        num_tiles: number of tiles (ignored by ``"whole"``).
        overlap: columns shared by consecutive tiles (only used by ``"optimized"``).

    Returns:
        For each tile from left to right, ``(tile_start, tile_end, keep_start, keep_end)`` in
        image columns (ends exclusive).

    Raises:
        ValueError: if ``mode`` is unknown (the message lists the valid modes), ``width`` or
            ``num_tiles`` is below 1, ``overlap`` is negative, ``num_tiles > width`` for
            ``"efficient"``, or for ``"optimized"`` the image is too narrow for ``num_tiles``
            tiles with that overlap (every tile must start at least one column right of the
            previous one: ``width - w_tile >= num_tiles - 1``, which implies ``w_tile > overlap``).

    Example:
        >>> tile_plan(10, "efficient", num_tiles=3)
        [(0, 4, 0, 4), (4, 7, 4, 7), (7, 10, 7, 10)]
        >>> tile_plan(2048, "optimized", num_tiles=5, overlap=200)[:2]
        [(0, 570, 0, 469), (369, 939, 469, 839)]
    """
    if mode not in TILE_MODES:
        raise ValueError(
            f"mode must be one of {list(TILE_MODES)} for tile_plan, got {mode!r} "
            "(sliding windows are planned per axis by sliding_windows)"
        )
    _check_int("width", width, 1)
    n = _check_int("num_tiles", num_tiles, 1)
    _check_int("overlap", overlap, 0)
    if mode == "whole" or n == 1:
        return [(0, width, 0, width)]
    if mode == "efficient":
        if n > width:
            raise ValueError(
                f"efficient tiling needs num_tiles <= width, got num_tiles={n}, width={width}"
            )
        base, extra = divmod(width, n)
        edges = [i * base + min(i, extra) for i in range(n + 1)]
        return [(a, b, a, b) for a, b in pairwise(edges)]
    # optimized
    w_tile = -(-(width + (n - 1) * overlap) // n)
    span = width - w_tile  # total shift from the first tile to the last
    if span < n - 1:
        raise ValueError(
            f"optimized tiling needs an image wide enough for num_tiles={n} tiles overlapping by "
            f"overlap={overlap}: the tile width would be {w_tile} for width={width}, so tiles "
            f"could not each start one column apart (need width - tile width >= num_tiles - 1, "
            "and tile width > overlap); use fewer tiles or a smaller overlap"
        )
    starts = [i * span // (n - 1) for i in range(n)]
    # column where tile i stops deciding and tile i + 1 starts: the middle of their overlap
    splits = [starts[i + 1] + (starts[i] + w_tile - starts[i + 1]) // 2 for i in range(n - 1)]
    keeps = [0, *splits, width]
    return [(s, s + w_tile, keeps[i], keeps[i + 1]) for i, s in enumerate(starts)]


def sliding_windows(length: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Windows of a sliding window along one axis, clamped to the image.

    Windows of ``crop`` pixels start every ``stride`` pixels; the last one is aligned to the far
    border, and an axis shorter than ``crop`` gets one window over the whole axis. With
    ``stride <= crop`` every pixel lies in at least one window.

    Args:
        length: size of the axis in pixels.
        crop: window size.
        stride: step between window starts (``1 <= stride <= crop``).

    Returns:
        ``(start, end)`` of each window, ends exclusive.

    Raises:
        ValueError: if ``length``, ``crop`` or ``stride`` is below 1 or ``stride > crop``.

    Example:
        >>> sliding_windows(10, crop=4, stride=3)
        [(0, 4), (3, 7), (6, 10)]
        >>> sliding_windows(3, crop=4, stride=2)
        [(0, 3)]
    """
    _check_int("length", length, 1)
    _check_int("crop", crop, 1)
    _check_int("stride", stride, 1)
    if stride > crop:
        raise ValueError(
            f"stride must be <= crop so that windows cover the image, got stride={stride}, "
            f"crop={crop}"
        )
    if length <= crop:
        return [(0, length)]
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] != length - crop:
        starts.append(length - crop)
    return [(s, s + crop) for s in starts]


def _run(model_fn: Callable[[Tensor], Tensor], tile: Tensor) -> Tensor:
    """``model_fn(tile)``, checked to be ``(B, C, h, w)`` at the tile's batch and size."""
    logits = model_fn(tile.contiguous())
    B, _, h, w = tile.shape
    if logits.ndim != 4 or logits.shape[0] != B or tuple(logits.shape[-2:]) != (h, w):
        raise ValueError(
            f"model_fn must return (B, C, h, w) logits at its input's size; for an input of "
            f"shape {tuple(tile.shape)} it returned {tuple(logits.shape)}"
        )
    return logits


def tiled_logits(
    model_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    mode: InferenceMode = "whole",
    num_tiles: int = 5,
    overlap: int = 200,
    crop_size: int | tuple[int, int] = 512,
    stride: int | tuple[int, int] | None = None,
) -> Tensor:
    """Logits of a whole image from tiles, one tile at a time (Rota Bulò et al. 2017, Sect. 5.2).

    * ``"whole"``: ``model_fn(image)``.
    * ``"efficient"``: the paper's "efficient tiling": ``num_tiles`` non-overlapping full-height
      tiles (see :func:`tile_plan`).
    * ``"optimized"``: the paper's "optimized tiling": ``num_tiles`` full-height tiles of equal
      width overlapping by ``overlap`` pixels, each deciding its half of every overlap (see
      :func:`tile_plan`).
    * ``"sliding"``: windows of ``crop_size`` every ``stride`` pixels over both axes (see
      :func:`sliding_windows`), logits averaged over the windows covering each pixel.

    Each output column of ``"whole"``, ``"efficient"`` and ``"optimized"`` comes from exactly one
    tile. Tiles run one at a time with the batch dimension kept, so memory holds one tile's
    logits besides the ``(B, C, H, W)`` output (and, for ``"sliding"``, an ``(H, W)`` count).
    Gradients are not switched off here: call it under :func:`torch.no_grad` or
    :func:`torch.inference_mode` for bounded memory.

    Args:
        model_fn: maps a ``(B, 3, h, w)`` tensor of any size to ``(B, C, h, w)`` logits (e.g.
            :class:`~lmp_lightning.module.SegmentationModule`, which pads to its stride).
        image: ``(B, 3, H, W)`` images.
        mode: ``"whole"``, ``"efficient"``, ``"optimized"`` or ``"sliding"``.
        num_tiles: number of tiles of ``"efficient"`` and ``"optimized"`` (the paper uses 5).
        overlap: overlap in pixels of consecutive ``"optimized"`` tiles (the paper uses 200).
        crop_size: ``"sliding"`` window size, an int or ``(h, w)``.
        stride: ``"sliding"`` step, an int or ``(h, w)`` with ``1 <= stride <= crop_size``;
            ``None`` takes two thirds of the crop, ``max(1, 2 * crop_size // 3)`` per axis, so
            that windows overlap by a third of the crop.

    Returns:
        ``(B, C, H, W)`` logits (for ``"sliding"`` the average of the windows' logits), in the
        dtype and on the device of ``model_fn``'s output.

    Raises:
        ValueError: if ``mode`` is unknown (the message lists the valid modes), ``image`` is not
            ``(B, 3, H, W)``-shaped (4 dimensions), ``num_tiles < 1``, ``overlap < 0``,
            ``crop_size`` or ``stride`` is not positive or ``stride > crop_size``, the tiles do
            not fit the image (see :func:`tile_plan`), or ``model_fn`` returns logits of another
            batch size or spatial size than its input.

    Example:
        >>> import torch
        >>> model = torch.nn.Conv2d(3, 4, kernel_size=3, padding=1)  # sees 1 pixel around
        >>> image = torch.rand(2, 3, 37, 301)
        >>> with torch.no_grad():
        ...     whole = tiled_logits(model, image)
        ...     tiled = tiled_logits(model, image, "optimized", num_tiles=3, overlap=50)
        >>> tiled.shape, torch.allclose(tiled, whole, atol=1e-6)  # overlap gives full context
        (torch.Size([2, 4, 37, 301]), True)
    """
    if mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {list(INFERENCE_MODES)}, got {mode!r}")
    if image.ndim != 4:
        raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
    _check_int("num_tiles", num_tiles, 1)
    _check_int("overlap", overlap, 0)
    crop = _pair("crop_size", crop_size)
    steps = (
        (max(1, 2 * crop[0] // 3), max(1, 2 * crop[1] // 3))
        if stride is None
        else _pair("stride", stride)
    )
    if steps[0] > crop[0] or steps[1] > crop[1]:
        raise ValueError(
            f"stride must be <= crop_size on both axes so that windows cover the image, got "
            f"stride={stride!r}, crop_size={crop_size!r}"
        )
    H, W = image.shape[-2:]
    if mode == "whole":
        return _run(model_fn, image)
    if mode == "sliding":
        return _sliding(model_fn, image, crop, steps)

    out: Tensor | None = None
    for tile_start, tile_end, keep_start, keep_end in tile_plan(W, mode, num_tiles, overlap):
        logits = _run(model_fn, image[..., tile_start:tile_end])
        if out is None:
            out = logits.new_empty((*logits.shape[:2], H, W))
        out[..., keep_start:keep_end] = logits[..., keep_start - tile_start : keep_end - tile_start]
        del logits  # hold one tile's logits at a time
    assert out is not None  # tile_plan returns at least one tile
    return out


def _sliding(
    model_fn: Callable[[Tensor], Tensor],
    image: Tensor,
    crop: tuple[int, int],
    steps: tuple[int, int],
) -> Tensor:
    """Sliding-window logits averaged over the windows covering each pixel."""
    H, W = image.shape[-2:]
    rows = sliding_windows(H, crop[0], steps[0])
    cols = sliding_windows(W, crop[1], steps[1])
    out: Tensor | None = None
    count: Tensor | None = None
    for top, bottom in rows:
        for left, right in cols:
            logits = _run(model_fn, image[..., top:bottom, left:right])
            if out is None or count is None:
                out = logits.new_zeros((*logits.shape[:2], H, W))
                count = logits.new_zeros((H, W))
            out[..., top:bottom, left:right] += logits
            count[top:bottom, left:right] += 1
            del logits  # hold one window's logits at a time
    assert out is not None and count is not None  # at least one window per axis
    return out.div_(count)  # in place: no second output-sized buffer
