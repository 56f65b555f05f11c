from __future__ import annotations

import math

import pytest
import torch


def brute_force_pixel_ce(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """Per-image lists of (label, cross-entropy) of the valid pixels, by explicit loops."""
    B, C, H, W = logits.shape
    out = []
    for b in range(B):
        pixels = []
        for i in range(H):
            for j in range(W):
                y = int(target[b, i, j])
                if y == ignore_index:
                    continue
                scores = [float(logits[b, c, i, j]) for c in range(C)]
                top = max(scores)
                log_z = top + math.log(sum(math.exp(s - top) for s in scores))
                pixels.append((y, log_z - scores[y]))
        out.append(pixels)
    return out


@pytest.fixture
def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 4, 5, 6) logits and labels with ignored pixels; the second image fully ignored."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 4, (3, 5, 6), generator=g)
    target[0, 0, :] = 255
    target[1] = 255
    target[2, torch.rand(5, 6, generator=g) < 0.5] = 255
    return logits, target
