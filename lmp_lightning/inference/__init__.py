"""Inference over large images: the "efficient" and "optimized" tiling of Rota Bulò et al.
2017 (Section 5.2) and a sliding window, one tile in memory at a time."""

from lmp_lightning.inference.tiling import (
    InferenceMode,
    TileMode,
    sliding_windows,
    tile_plan,
    tiled_logits,
)

__all__ = ["InferenceMode", "TileMode", "sliding_windows", "tile_plan", "tiled_logits"]
