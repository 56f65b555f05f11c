"""The data module's crop sampling option: the performance-aware sampler's settings."""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["CropSampling"]


class CropSampling:
    """Performance-aware crop sampling for :class:`~lmp_lightning.data.SegmentationDataModule`
    (its ``sampler`` argument; Rota Bulò et al. 2017, Section 4).

    The data module builds the training set's
    :class:`~lmp_lightning.sampling.ClassStatistics` (cached), and trains on
    :class:`~lmp_lightning.sampling.ClassCenteredCrops` drawn by a
    :class:`~lmp_lightning.sampling.PerformanceAwareSampler`: a crop is uniform over the images
    with probability ``uniform_mix``, otherwise centred on a pixel of a class drawn with the
    sampler's class probabilities. Those are uniform over the classes present until the
    :class:`~lmp_lightning.callbacks.PerformanceAwareSampling` callback sets them from the
    training IoU (BASE+ and LMP of the paper use both). The sampler's state (epoch, class
    probabilities) and the draws of the current epoch are checkpointed with the training loader
    and the data module, so a resumed run draws what an uninterrupted one draws.

    Args:
        uniform_mix: probability that a draw is uniform over images (0.5: the paper's blend).
        image_choice: ``"uniform"`` over the images containing the class, or ``"pixels"``.
        points_per_class: pixels per image and class kept to centre crops on.
        num_samples: draws per epoch over all processes (default: the number of training
            images; under DDP rounded up to a multiple of the number of processes).
        shard: kept for older configurations; it changes nothing: under DDP the sampler always
            splits its stream across the processes itself (every process takes every
            ``world_size``-th draw), and Lightning leaves it in place whatever
            ``--trainer.use_distributed_sampler`` says.
        cache_dir: where the class statistics are cached (default: the user's cache,
            ``~/.cache/lmp_lightning/class_statistics`` or under ``$XDG_CACHE_HOME``; never a
            data folder unless given; generated data sets such as ``synthetic`` are not cached
            unless a directory is given).

    Raises:
        ValueError: a value out of range.

    Example:
        >>> CropSampling(uniform_mix=0.25).options()["uniform_mix"]
        0.25
        >>> CropSampling(uniform_mix=2)
        Traceback (most recent call last):
        ...
        ValueError: uniform_mix must be in [0, 1], got 2
    """

    def __init__(
        self,
        uniform_mix: float = 0.5,
        image_choice: Literal["uniform", "pixels"] = "uniform",
        points_per_class: int = 64,
        num_samples: int | None = None,
        shard: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if not 0 <= uniform_mix <= 1:
            raise ValueError(f"uniform_mix must be in [0, 1], got {uniform_mix}")
        if image_choice not in ("uniform", "pixels"):
            raise ValueError(f"image_choice must be 'uniform' or 'pixels', got {image_choice!r}")
        if isinstance(points_per_class, bool) or points_per_class < 1:
            raise ValueError(f"points_per_class must be >= 1, got {points_per_class!r}")
        if num_samples is not None and (isinstance(num_samples, bool) or num_samples < 1):
            raise ValueError(f"num_samples must be None or >= 1, got {num_samples!r}")
        self.uniform_mix = float(uniform_mix)
        self.image_choice = image_choice
        self.points_per_class = int(points_per_class)
        self.num_samples = num_samples
        self.shard = bool(shard)
        self.cache_dir = cache_dir

    def options(self) -> dict[str, Any]:
        """The arguments, by name (for results files and model cards)."""
        return {
            "uniform_mix": self.uniform_mix,
            "image_choice": self.image_choice,
            "points_per_class": self.points_per_class,
            "num_samples": self.num_samples,
            "shard": self.shard,
            "cache_dir": self.cache_dir,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"

    def build(
        self,
        dataset: Any,
        stats: Any,
        crop_size: int,
        scale_range: tuple[float, float],
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        ignore_index: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ) -> tuple[Any, Any]:
        """The class-centred crops of ``dataset`` (untransformed training images with their
        class statistics ``stats``) and the performance-aware sampler that indexes them: one
        stream over all ``world`` processes, each taking every world-th draw, the draws
        rounded up to equal shares as DistributedSampler pads (as many batches on every
        process)."""
        import math

        from lmp_lightning.sampling import ClassCenteredCrops, PerformanceAwareSampler

        crops = ClassCenteredCrops(dataset, stats, crop_size, scale_range, mean, std, ignore_index)
        draws = stats.num_images if self.num_samples is None else self.num_samples
        sampler = PerformanceAwareSampler(
            stats,
            math.ceil(draws / world) * world,
            self.uniform_mix,
            self.image_choice,
            seed=seed,
            rank=rank,
            num_replicas=world,
        )
        return crops, sampler
