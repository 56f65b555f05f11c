"""The performance-aware sampler of Rota Bulò et al. 2017 (Section 4, "Complimentary sampling
strategy"): draws from under-performing classes, blended with uniform sampling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from lmp_lightning.errors import InputError
from lmp_lightning.sampling.class_statistics import ClassStatistics

__all__ = ["PerformanceAwareSampler", "class_weights_from_iou"]

NO_CLASS = -1
"""The class entry of a uniform draw: the crop is centred on a uniformly random pixel."""


def class_weights_from_iou(
    iou: Tensor,
    weighting: Literal["one_minus_iou", "inverse_iou"] = "one_minus_iou",
    iou_floor: float = 0.05,
) -> Tensor:
    """g(IoU_c): ``1 - IoU`` (default) or ``1 / max(IoU, floor)``; NaN (no estimate) counts as 0.

    Example:
        >>> class_weights_from_iou(torch.tensor([0.9, 0.5, 0.0]))
        tensor([0.1000, 0.5000, 1.0000])
        >>> class_weights_from_iou(torch.tensor([0.5, 0.01]), "inverse_iou", iou_floor=0.1)
        tensor([ 2., 10.])
    """
    iou = torch.nan_to_num(iou.double(), nan=0.0).clamp(0.0, 1.0)
    if weighting == "one_minus_iou":
        return (1.0 - iou).float()
    if weighting == "inverse_iou":
        if not 0 < iou_floor <= 1:
            raise ValueError(f"iou_floor must be in (0, 1], got {iou_floor}")
        return (1.0 / iou.clamp(min=iou_floor)).float()
    raise ValueError(f"weighting must be 'one_minus_iou' or 'inverse_iou', got {weighting!r}")


class PerformanceAwareSampler(Sampler[tuple[int, int, int]]):
    """Yields ``(image index, class or -1, crop seed)`` for class-aware crops.

    Each draw is uniform over images with probability ``uniform_mix`` (class ``-1``); otherwise
    a class ``c`` is drawn with the current class probabilities, then an image that contains
    ``c`` (uniformly, or in proportion to its pixels of ``c``), and the crop is to be centred on
    a pixel of ``c``. The crop seed fixes the crop's own random choices (scale, flip, which
    pixel), so that a draw is reproducible whatever the loader workers do. A class without
    pixels in the training set is never requested.

    One stream is drawn per epoch from a generator seeded with ``(seed, epoch)``; with
    ``num_replicas > 1`` this sampler keeps every ``num_replicas``-th draw starting at ``rank``
    (disjoint shares of the same stream). When Lightning wraps it in its distributed sampler
    instead (``num_replicas=1``, the default, in a ``DataLoader`` of one's own), every process
    draws the same stream and Lightning splits it; the probabilities in effect are then those at
    the start of the epoch. The data module's training loader shards it and wraps it in a
    :class:`~lmp_lightning.data.loaders.SamplerShard`, which Lightning leaves in place.

    Args:
        stats: the training set's :class:`ClassStatistics`.
        num_samples: draws per epoch over all processes (default: the number of images).
        uniform_mix: probability of a uniform draw.
        image_choice: ``"uniform"`` over the images that contain the class, or ``"pixels"``
            in proportion to their pixels of it.
        seed: seed of the stream.
        rank: this process's rank when the sampler shards itself.
        num_replicas: number of processes when the sampler shards itself.

    Example:
        >>> counts = torch.tensor([[10, 0], [5, 5], [9, 1]])
        >>> stats = ClassStatistics(counts, torch.zeros(3, 2, 1, 2, dtype=torch.int32))
        >>> sampler = PerformanceAwareSampler(stats, num_samples=4, uniform_mix=0.0)
        >>> sampler.set_class_probabilities(torch.tensor([0.0, 1.0]))
        >>> {image for image, c, _ in sampler} <= {1, 2}  # only images that contain class 1
        True
    """

    def __init__(
        self,
        stats: ClassStatistics,
        num_samples: int | None = None,
        uniform_mix: float = 0.5,
        image_choice: Literal["uniform", "pixels"] = "uniform",
        seed: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
    ) -> None:
        if not 0 <= uniform_mix <= 1:
            raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
        if image_choice not in ("uniform", "pixels"):
            raise ValueError(f"image_choice must be 'uniform' or 'pixels', got {image_choice!r}")
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}"
            )
        self.stats = stats
        self.num_samples = stats.num_images if num_samples is None else int(num_samples)
        self.uniform_mix = float(uniform_mix)
        self.image_choice = image_choice
        self.seed, self.rank, self.num_replicas = int(seed), int(rank), int(num_replicas)
        self.epoch = 0
        self._skip = 0
        counts = stats.pixel_counts.double()
        self.present = counts.sum(0) > 0  # classes with pixels in the training set
        if not bool(self.present.any()):
            raise InputError(
                "performance-aware sampling needs labelled pixels, but no training image has a "
                "pixel of any class (every label is ignore_index?)"
            )
        table = counts if image_choice == "pixels" else (counts > 0).double()
        self._image_weights = table.T.contiguous()  # (C, num_images)
        self.class_probabilities = self.present.double() / self.present.sum().clamp(min=1)

    def set_epoch(self, epoch: int) -> None:
        """Selects the stream of ``epoch``."""
        self.epoch = int(epoch)

    def skip_next(self, draws: int) -> None:
        """Makes the next iteration skip the first ``draws`` draws of the stream (all ranks),
        for a run resumed in the middle of an epoch; later iterations start at the beginning."""
        self._skip = int(draws)

    def set_class_probabilities(self, weights: Tensor) -> None:
        """Sets the class distribution, in proportion to ``weights``; classes without pixels get
        0. All-zero weights over the present classes fall back to uniform over them."""
        weights = torch.as_tensor(weights, dtype=torch.float64).cpu()
        if weights.shape != self.present.shape or bool((weights < 0).any()):
            raise ValueError(f"weights must be {tuple(self.present.shape)} and >= 0, got {weights}")
        weights = weights * self.present
        if float(weights.sum()) <= 0:
            weights = self.present.double()
        self.class_probabilities = weights / weights.sum()

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.num_replicas))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        g = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1, np.uint64)[0])
            >> 1  # a Python int: numpy 1.24 does not shift a uint64 by an int
        )
        skip, self._skip = self._skip, 0
        for k in range(self.num_samples):
            # Every draw consumes the generator alike on every rank: the stream is shared.
            uniform = float(torch.rand((), generator=g)) < self.uniform_mix
            c = int(torch.multinomial(self.class_probabilities, 1, generator=g))
            candidates = self._image_weights[c]
            image_u = int(torch.randint(self.stats.num_images, (), generator=g))
            image_c = int(torch.multinomial(candidates, 1, generator=g))
            crop_seed = int(torch.randint(2**62, (), generator=g))
            if k < skip or k % self.num_replicas != self.rank:
                continue
            yield (image_u, NO_CLASS, crop_seed) if uniform else (image_c, c, crop_seed)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "class_probabilities": self.class_probabilities.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.class_probabilities = state["class_probabilities"].clone()
