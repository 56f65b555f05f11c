"""The LightningDataModule: a registered data set with the papers' augmentation."""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from lmp_lightning.data.base import SegmentationDataset, Split
from lmp_lightning.data.in_memory import InMemoryDataset
from lmp_lightning.data.registry import build_dataset, get_dataset_class
from lmp_lightning.errors import InputError
from lmp_lightning.sampling.crop_sampling import CropSampling

if TYPE_CHECKING:
    from lmp_lightning.sampling import PerformanceAwareSampler
    from lmp_lightning.sampling.class_statistics import ClassStatistics

from lmp_lightning.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    train_transform,
)

__all__ = [
    "EpochShuffle",
    "SegmentationDataModule",
    "TransformedDataset",
    "predict_input_scale",
    "run_seed",
]


def run_seed() -> int:
    """The run's seed: the one given to ``lightning.seed_everything`` (``--seed_everything`` of
    the CLI), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def predict_input_scale(
    dataset: str,
    dataset_options: dict[str, Any] | None = None,
    predict_rescale: bool = True,
    predict_scale: float | None = None,
) -> float:
    """The factor ``predict_dir`` images are resized by, from the data module's arguments (see
    :attr:`SegmentationDataModule.input_scale`).

    Example:
        >>> predict_input_scale("camvid", {"scale": 0.5}), predict_input_scale("synthetic")
        (0.5, 1.0)
    """
    if predict_scale is not None:
        return float(predict_scale)
    if not predict_rescale:
        return 1.0
    options = dataset_options or {}
    if "scale" in options:
        return float(options["scale"])
    return float(getattr(get_dataset_class(dataset), "default_scale", 1.0))


_STAGE_SPLITS: dict[str, tuple[Split, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}
"""The splits each stage reads."""


def _checked_marker(dataset: Any) -> Path | None:
    """Where the user's cache remembers that ``dataset``'s label files passed their check: a
    name hashed from its files' names, sizes and modification times and its label space."""
    from lmp_lightning.sampling.class_statistics import dataset_fingerprint, default_cache_dir

    if not callable(getattr(dataset, "files", None)):
        return None
    try:
        fingerprint = dataset_fingerprint(dataset)
    except (OSError, TypeError, AttributeError):
        return None
    space = f"{getattr(dataset, 'num_classes', '')}|{getattr(dataset, 'ignore_index', '')}"
    key = hashlib.sha256(f"{fingerprint}|{space}".encode()).hexdigest()[:16]
    return default_cache_dir().parent / "label_checks" / f"{key}.ok"


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch)``.

    Example:
        >>> epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2)
        True
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


class EpochShuffle(Sampler[int]):
    """A random permutation per epoch, drawn from ``(seed, epoch)`` alone.

    Lightning calls :meth:`set_epoch` before every training epoch; ``on_epoch`` gets the
    epoch's seed (the data module seeds every sample's augmentation from it and the sample's
    index). A run resumed from an epoch-end checkpoint thus sees the batches of a run that never
    stopped; one resumed mid-epoch skips the samples its epoch already used (:meth:`skip_next`).

    Args:
        size: number of samples.
        seed: the run's seed.
        epoch: the first epoch (a resumed run's loader is built before Lightning's first
            :meth:`set_epoch`, and may already draw from it).
        on_epoch: called with each epoch's seed.
        skip: samples of the first epoch's permutation to leave out (a mid-epoch resume).

    Example:
        >>> sampler = EpochShuffle(5, seed=0)
        >>> first = list(sampler)
        >>> sampler.set_epoch(1)
        >>> sorted(sampler) == sorted(first) and list(sampler) != first
        True
        >>> list(EpochShuffle(5, seed=0, epoch=1)) == list(sampler)
        True
        >>> list(EpochShuffle(5, seed=0, epoch=1, skip=2)) == list(sampler)[2:]
        True
    """

    def __init__(
        self,
        size: int,
        seed: int,
        epoch: int = 0,
        on_epoch: Callable[[int], None] | None = None,
        skip: int = 0,
    ) -> None:
        self.size, self.seed, self.on_epoch = int(size), int(seed), on_epoch
        self.generator = torch.Generator()
        self.set_epoch(epoch)
        self._skip = int(skip)

    def set_epoch(self, epoch: int) -> None:
        """Reseeds for ``epoch``."""
        self.epoch = int(epoch)
        seed = epoch_seed(self.seed, self.epoch)
        self.generator.manual_seed(seed)
        if self.on_epoch is not None:
            self.on_epoch(seed % 2**32)

    def skip_next(self, samples: int) -> None:
        """Makes the next iteration leave out the first ``samples`` of its permutation; later
        ones start at the beginning. The length stays the epoch's: Lightning counts the batches
        a resumed epoch already had."""
        self._skip = int(samples)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        order = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch) ^ 1)
        skip, self._skip = self._skip, 0
        return iter(torch.randperm(self.size, generator=order).tolist()[skip:])


class TransformedDataset(Dataset[dict[str, Tensor]]):
    """Applies an albumentations pipeline to a :class:`SegmentationDataset`'s samples.

    Args:
        dataset: the untransformed data set.
        transform: a pipeline that ends in tensors (image ``(3, h, w)``, mask ``(h, w)``).
    """

    def __init__(self, dataset: SegmentationDataset, transform: A.Compose) -> None:
        self.dataset = dataset
        self.transform = transform
        self.epoch_seed: int | None = None
        """When set, sample ``i`` is augmented with a seed derived from ``(epoch_seed, i)``: the
        same whatever the order, the worker or the batches skipped before it."""

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = self.dataset[index]
        if self.epoch_seed is not None:
            self.transform.set_random_seed(epoch_seed(self.epoch_seed, index) % 2**32)
        try:
            out = self.transform(image=sample["image"], mask=sample["mask"])
        except cv2.error as error:  # e.g. an image too small to scale
            files = getattr(self.dataset, "files", None)
            name = repr(str(files()[index][0])) if callable(files) else f"sample {index}"
            height, width = sample["image"].shape[:2]
            detail = str(error).strip().splitlines()[-1].rsplit("error: ", 1)[-1][:120]
            raise InputError(
                f"image {name} ({height}x{width} pixels) cannot be scaled and cropped: {detail}"
            ) from None
        return {"image": out["image"], "mask": out["mask"].long()}


MAX_CROP_SIZE = 4096
"""The largest training crop side (a Cityscapes frame is 2048 x 1024)."""


def _check_normalisation(mean: Sequence[float], std: Sequence[float]) -> None:
    """``mean`` and ``std`` of three finite numbers each, ``std`` within [1e-6, 1e3] (a std of
    0 divides every pixel by zero)."""
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise ValueError(f"{name} must be three finite numbers (R, G, B), got {list(values)}")
    if not all(1e-6 <= v <= 1e3 for v in std):
        raise ValueError(f"std must lie within [1e-6, 1e3] in each channel, got {list(std)}")


def pad_collate(batch: list[dict[str, Tensor]], ignore_index: int = 255) -> dict[str, Tensor]:
    """Collates full-size evaluation samples of different sizes: images are padded with 0 and
    masks with ``ignore_index`` at the bottom and right to the largest in the batch, so padding
    takes no part in the metrics; ``size`` holds each sample's own ``(H, W)``.

    Example:
        >>> a = {"image": torch.ones(3, 2, 3), "mask": torch.zeros(2, 3, dtype=torch.long)}
        >>> b = {"image": torch.ones(3, 4, 2), "mask": torch.zeros(4, 2, dtype=torch.long)}
        >>> out = pad_collate([a, b])
        >>> tuple(out["image"].shape), out["mask"][0, 3].tolist(), out["size"].tolist()
        ((2, 3, 4, 3), [255, 255, 255], [[2, 3], [4, 2]])
    """
    height = max(int(s["image"].shape[-2]) for s in batch)
    width = max(int(s["image"].shape[-1]) for s in batch)
    out = default_collate(
        [{k: v for k, v in s.items() if k not in ("image", "mask")} for s in batch]
    )

    def pad(x: Tensor, value: float) -> Tensor:
        return F.pad(x, (0, width - x.shape[-1], 0, height - x.shape[-2]), value=value)

    out["image"] = torch.stack([pad(s["image"], 0.0) for s in batch])
    if all("mask" in s for s in batch):
        out["mask"] = torch.stack([pad(s["mask"], ignore_index) for s in batch])
    out["size"] = torch.tensor([list(s["image"].shape[-2:]) for s in batch])
    return out


def _seed_worker_transform(worker_id: int) -> None:
    """Seeds a worker's copy of the training pipeline from the worker's torch seed.

    PyTorch gives every worker ``base_seed + worker_id``, with ``base_seed`` drawn from the
    loader's generator each epoch: augmentations differ across workers and epochs and are
    reproducible for a given ``seed``.
    """
    info = get_worker_info()
    dataset = getattr(info, "dataset", None)
    if isinstance(dataset, TransformedDataset):
        dataset.transform.set_random_seed(torch.initial_seed() % 2**32)


class SegmentationDataModule(LightningDataModule):
    """Train, validation, test and predict loaders of a registered data set.

    Training samples get the papers' augmentation (random scale, pad with ``ignore_index``,
    random crop, horizontal flip, normalisation); validation, test and predict samples are only
    normalised and keep their full size. ``num_classes``, ``class_names`` and ``ignore_index``
    are known right after construction, so the CLI can link them to the model.

    Args:
        dataset: a registered data set name (``synthetic``, the embedded default).
        root: the data directory of a data set that reads files.
        crop_size: side of the square training crop.
        batch_size: training batch size.
        val_batch_size: batch size of validation, test and predict (full-size images).
        num_workers: loader worker processes.
        pin_memory: pin loader memory (for GPU training).
        seed: seed of the shuffling, the augmentation, the sampler's stream and stored crop
            pixels, and a generated data set; ``None`` (the default) takes the run's seed
            (``--seed_everything``, :func:`lightning.seed_everything`), else 0, so that one seed
            drives the weights and the data.
        scale_range: ``(low, high)`` of the random training scale.
        mean: per-channel normalisation mean (on [0, 1] pixel values).
        std: per-channel normalisation standard deviation.
        num_train_images: training images of a generated data set.
        num_val_images: validation (and test) images of a generated data set.
        image_size: ``(height, width)`` of a generated data set.
        dataset_options: further arguments of the data set, e.g. ``{scale: 0.5}`` for CamVid
            or Cityscapes at half resolution.
        predict_dir: a folder of images for ``predict`` (default: the test split).
        predict_rescale: resize ``predict_dir`` images by the data set's scale (its ``scale``
            option, e.g. 0.5) before the network, as training and evaluation saw them;
            predictions are written at each image's own size. ``False`` feeds them as they are.
        sampler: performance-aware crop sampling (:class:`~lmp_lightning.sampling.CropSampling`:
            ``--data.sampler CropSampling``); the data module then owns the
            :class:`~lmp_lightning.sampling.PerformanceAwareSampler` (:attr:`train_sampler`)
            whose class probabilities the
            :class:`~lmp_lightning.callbacks.PerformanceAwareSampling` callback updates.
            ``None``: shuffled uniform crops.
        in_memory: decode every image and label of a split once and keep them in memory
            (:class:`~lmp_lightning.data.in_memory.InMemoryDataset`), instead of reading the
            files every epoch; the same samples. For data sets that fit in memory.
        predict_class_names: the classes of ``predict_dir`` images, in label order, instead of
            the data set's (``lmp-seg predict --ckpt_path zoo:NAME`` sets the entry's); a stage
            that reads a split of the data set refuses them.
        predict_scale: the factor ``predict_dir`` images are resized by, instead of
            :attr:`input_scale`'s data set scale and ``predict_rescale`` (``lmp-seg predict
            --ckpt_path zoo:NAME`` sets the entry's input scale).

    Raises:
        KeyError: an unknown ``dataset`` (the message lists the valid names).
        ValueError: a bad size or count, ``predict_class_names`` or ``predict_scale``.
        FileNotFoundError: a data set that reads files and a ``root`` that is not a directory.
        InputError: (a data set read from files, without ``predict_dir``) a missing ``train``
            or ``val`` split, a label file of another size than its image, or (``folder``) a
            label value outside the classes that is not the ignore label; the message names the
            folder or file, and it is raised here, before a model is built.

    Example:
        >>> data = SegmentationDataModule(num_train_images=4, image_size=(64, 80), crop_size=48,
        ...                               batch_size=2)
        >>> data.num_classes, data.ignore_index
        (10, 255)
        >>> data.setup("fit")
        >>> batch = next(iter(data.train_dataloader()))
        >>> tuple(batch["image"].shape), batch["mask"].dtype
        ((2, 3, 48, 48), torch.int64)
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        crop_size: int = 96,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int | None = None,
        scale_range: tuple[float, float] = (0.5, 1.5),
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        num_train_images: int = 200,
        num_val_images: int = 40,
        image_size: tuple[int, int] = (128, 160),
        dataset_options: dict[str, Any] | None = None,
        predict_dir: str | None = None,
        predict_rescale: bool = True,
        sampler: CropSampling | None = None,
        in_memory: bool = False,
        predict_class_names: list[str] | None = None,
        predict_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.dataset_class = get_dataset_class(dataset)
        for name, value in (
            ("crop_size", crop_size),
            ("batch_size", batch_size),
            ("val_batch_size", val_batch_size),
            ("num_train_images", num_train_images),
            ("num_val_images", num_val_images),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if crop_size > MAX_CROP_SIZE:
            raise ValueError(f"crop_size must be at most {MAX_CROP_SIZE} pixels, got {crop_size}")
        _check_normalisation(mean, std)
        names = predict_class_names
        if names is not None and (not names or len(set(names)) != len(names)):
            raise ValueError(f"predict_class_names must be unique and non-empty, got {names}")
        if predict_scale is not None and (
            isinstance(predict_scale, bool) or not 0 < predict_scale < math.inf
        ):
            raise ValueError(f"predict_scale must be a number > 0, got {predict_scale!r}")
        self.dataset_class.check_root(root)  # a missing directory fails now, naming the path
        if seed is None:
            seed = run_seed()
        self.save_hyperparameters(ignore=["sampler"])
        self._in_memory: dict[Split, InMemoryDataset] = {}
        self.hparams["seed"] = seed
        self.sampling = sampler
        self.train_sampler: PerformanceAwareSampler | None = None
        """The performance-aware sampler of a ``fit`` with ``sampler`` (built in ``setup``)."""
        self._crops: Dataset[dict[str, Tensor]] | None = None
        self._sampler_state: dict[str, Any] | None = None
        self._label_dataset: SegmentationDataset | None = None
        self.train_transform = train_transform(
            crop_size, scale_range, mean, std, self.ignore_index, seed=seed
        )
        self.eval_transform = eval_transform(mean, std)
        self.datasets: dict[Split, TransformedDataset] = {}
        self._statistics: dict[tuple[int, str | None], ClassStatistics] = {}
        self._resume: tuple[int, int] | None = None
        self._checked: set[Split] = set()

    def check_files(self, stage: str) -> None:
        """Checks the files of the splits that ``stage`` reads (``fit``: train and val;
        ``validate``: val; ``test`` and ``predict`` without ``predict_dir``: test), each split
        once, before anything is trained: the split's folder or list is there, and every image
        has a label file of its size (read from the files' headers). For a data set whose
        classes are read from its files (``folder``: the user's own labels) every label file is
        also decoded and its values checked, remembered in the user's cache while the files
        keep their names, sizes and modification times; the published data sets' labels are
        checked as they are read. ``lmp-seg`` calls this between making the data module and
        the model; :meth:`setup` calls it too.

        Raises:
            InputError: a missing split, a label file of another size than its image, or a
                label value outside the classes that is not the ignore label; the message names
                the folder or the file.
        """
        if not self.dataset_class.requires_root:
            return
        if stage == "predict" and self.hparams["predict_dir"] is not None:
            return
        labels = not hasattr(self.dataset_class, "class_names")
        for split in _STAGE_SPLITS.get(stage, ()):
            if split in self._checked:
                continue
            dataset = self._read(split)
            check = getattr(dataset, "check_files", None)
            if callable(check):
                decode = labels and split not in self._in_memory
                marker = _checked_marker(dataset) if decode else None
                check(labels=decode and not (marker is not None and marker.is_file()))
                if marker is not None:
                    try:
                        marker.parent.mkdir(parents=True, exist_ok=True)
                        marker.touch()
                    except OSError:
                        pass  # an unwritable cache costs the decode next time
            self._checked.add(split)

    @property
    def _label_space(self) -> type[SegmentationDataset] | SegmentationDataset:
        """The data set class when it declares its label space, else (a data set whose classes
        are read from its files, like ``folder``) its training split, built once."""
        if hasattr(self.dataset_class, "class_names"):
            return self.dataset_class
        if self._label_dataset is None:
            self._label_dataset = self._raw("train")
        return self._label_dataset

    @property
    def num_classes(self) -> int:
        """Number of classes of the data set (of ``predict_class_names`` when given)."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Class names of the data set (``predict_class_names`` when given), in label order."""
        names = self.hparams["predict_class_names"]
        return list(self._label_space.class_names if names is None else names)

    @property
    def ignore_index(self) -> int:
        """The label of pixels without a class."""
        return self._label_space.ignore_index

    @property
    def input_scale(self) -> float:
        """The factor ``predict_dir`` images are resized by: ``predict_scale`` when given, else
        the data set's ``scale`` option (or its default scale) when ``predict_rescale``, else
        1."""
        hp: Any = self.hparams
        return predict_input_scale(
            hp.dataset, hp.dataset_options, hp.predict_rescale, hp.predict_scale
        )

    @property
    def _val_batch_size(self) -> int:
        return int(self.hparams["val_batch_size"])

    def _raw(self, split: Split) -> SegmentationDataset:
        hp: Any = self.hparams
        if hp.in_memory:  # decoded once, for every later use of the split
            if split not in self._in_memory:
                self._in_memory[split] = InMemoryDataset(self._read(split))
            return self._in_memory[split]  # type: ignore[return-value]
        return self._read(split)

    def _read(self, split: Split) -> SegmentationDataset:
        hp: Any = self.hparams
        count = hp.num_train_images if split == "train" else hp.num_val_images
        try:
            return build_dataset(
                hp.dataset,
                split,
                hp.root,
                seed=hp.seed,
                num_images=count,
                image_size=tuple(hp.image_size),
                **(hp.dataset_options or {}),
            )
        except (ValueError, TypeError) as error:  # the data set's arguments or files
            if isinstance(error, InputError):
                raise
            raise InputError(f"{hp.dataset} {split} split: {error}") from None

    def setup(self, stage: str) -> None:
        splits: dict[str, Split] = {
            "fit": "train",
            "validate": "val",
            "test": "test",
            "predict": "test",
        }
        if stage == "predict" and self.hparams["predict_dir"] is not None:
            return
        self.check_files(stage)
        if self.hparams["predict_class_names"] is not None:
            raise InputError(
                f"{stage} reads the {self.hparams['dataset']} data set, whose classes are its "
                "own; --data.predict_class_names names those of --data.predict_dir images only"
            )
        needed: set[Split] = {"train", "val"} if stage == "fit" else {splits[stage]}
        if "train" in needed:
            self.train_transform.set_random_seed(self._rank_seed())
        for split in needed:
            if split not in self.datasets:
                transform = self.train_transform if split == "train" else self.eval_transform
                self.datasets[split] = TransformedDataset(self._raw(split), transform)
        if stage == "fit" and self.sampling is not None and self.train_sampler is None:
            self._build_sampler(self.sampling)

    def _build_sampler(self, sampling: CropSampling) -> None:
        """The class statistics (cached), the class-centred crops and the sampler of a fit."""
        from lmp_lightning.sampling import ClassCenteredCrops, PerformanceAwareSampler

        hp: Any = self.hparams
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        stats = self.class_statistics(
            points_per_class=sampling.points_per_class,
            cache_dir=sampling.cache_dir,
            progress=rank == 0,
        )
        self._crops = ClassCenteredCrops(
            self.train_dataset_raw(),
            stats,
            hp.crop_size,
            hp.scale_range,
            hp.mean,
            hp.std,
            self.ignore_index,
        )
        self.train_sampler = PerformanceAwareSampler(
            stats,
            sampling.num_samples,
            sampling.uniform_mix,
            sampling.image_choice,
            seed=hp.seed,
            rank=rank if sampling.shard else 0,
            num_replicas=world if sampling.shard else 1,
        )
        if self._sampler_state is not None:
            self._restore_sampler(self._sampler_state)

    def _rank_seed(self) -> int:
        """``seed`` on process 0, a seed derived from ``(seed, rank)`` on the others, so that
        under DDP every process draws its own augmentations (worker seeds derive from it)."""
        seed = int(self.hparams["seed"])
        rank = self.trainer.global_rank if self.trainer is not None else 0
        if rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])

    def train_dataset_raw(self) -> SegmentationDataset:
        """The untransformed training split (numpy samples), for class statistics."""
        return self._raw("train")

    def class_statistics(
        self,
        points_per_class: int = 64,
        cache_dir: str | None = None,
        num_workers: int | None = None,
        progress: bool = True,
    ) -> ClassStatistics:
        """Class statistics of the training split, built once and cached in ``cache_dir`` or the
        user's cache (``lmp_lightning.sampling.ClassStatistics.for_dataset``)."""
        from lmp_lightning.sampling.class_statistics import ClassStatistics

        hp: Any = self.hparams
        key = (points_per_class, cache_dir)
        if key not in self._statistics:
            self._statistics[key] = ClassStatistics.for_dataset(
                self.train_dataset_raw(),
                self.num_classes,
                self.ignore_index,
                cache_dir=cache_dir,
                points_per_class=points_per_class,
                seed=hp.seed,
                num_workers=hp.num_workers if num_workers is None else num_workers,
                progress=progress,
            )
        return self._statistics[key]

    def per_image_counts(self) -> Tensor:
        """``(num_images, num_classes)`` labelled pixel counts of the training images (from the
        class statistics), used by the inverse median frequency loss."""
        return self.class_statistics().pixel_counts

    def _loader(self, split: Split, **kwargs: Any) -> DataLoader[dict[str, Tensor]]:
        hp: Any = self.hparams
        worker_init: Callable[[int], None] | None = (
            _seed_worker_transform if split == "train" else None
        )
        if split != "train":  # full-size images of any size: padded per batch
            kwargs["collate_fn"] = functools.partial(pad_collate, ignore_index=self.ignore_index)
        return DataLoader(
            self.datasets[split],
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            worker_init_fn=worker_init,
            persistent_workers=False,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        hp: Any = self.hparams
        if self.train_sampler is not None and self._crops is not None:
            draws = len(self.train_sampler)
            if draws < hp.batch_size:
                raise InputError(
                    f"the sampler draws {draws} crops per epoch (num_samples, per process), "
                    f"fewer than --data.batch_size {hp.batch_size}: nothing would train"
                )
            if self._resume is not None:  # the loader may draw before Lightning's set_epoch
                self.train_sampler.set_epoch(self._resume[0])
            self._resume = None
            return DataLoader(
                self._crops,
                batch_size=hp.batch_size,
                sampler=self.train_sampler,
                drop_last=True,
                num_workers=hp.num_workers,
                pin_memory=hp.pin_memory,
            )
        images = len(self.datasets["train"])
        if images < hp.batch_size:
            raise InputError(
                f"--data.batch_size {hp.batch_size} is larger than the {images} training images: "
                "every batch would be incomplete and dropped, so nothing would train; lower "
                "--data.batch_size"
            )
        if self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's DistributedSampler shuffles per (seed, epoch) and splits across ranks.
            generator = torch.Generator().manual_seed(self._rank_seed())
            return self._loader(
                "train", batch_size=hp.batch_size, shuffle=True, drop_last=True, generator=generator
            )
        train = self.datasets["train"]
        epoch, batches = self._resume if self._resume is not None else (0, 0)
        self._resume = None

        def on_epoch(seed: int) -> None:
            train.epoch_seed = seed

        shuffle = EpochShuffle(
            len(train), self._rank_seed(), epoch, on_epoch, skip=batches * hp.batch_size
        )
        return self._loader(
            "train",
            batch_size=hp.batch_size,
            sampler=shuffle,
            drop_last=True,
            generator=shuffle.generator,
        )

    def state_dict(self) -> dict[str, Any]:
        """Where training stands, for a resumed run: the epoch Lightning resumes in and the
        batches that epoch already trained (non-zero for a checkpoint written mid-epoch), and
        the sampler's state (epoch, class probabilities)."""
        if self.trainer is None:
            return {}
        loop: Any = self.trainer.fit_loop
        epochs = loop.epoch_progress.current
        mid_epoch = epochs.started > epochs.processed
        # processed, not completed: a checkpoint saved in on_train_batch_end (ModelCheckpoint
        # every_n_train_steps) is written before Lightning counts the batch completed
        batches = loop.epoch_loop.batch_progress.current.processed if mid_epoch else 0
        state: dict[str, Any] = {"epoch": int(epochs.processed), "batches": int(batches)}
        if self.train_sampler is not None:
            state["sampler"] = self.train_sampler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning restores this before it builds the training loader (and starts its
        workers), so the first loader of a resumed run is built for its epoch and position."""
        if state_dict:
            self._resume = (int(state_dict["epoch"]), int(state_dict.get("batches", 0)))
        if "sampler" in state_dict:
            self._sampler_state = state_dict
            if self.train_sampler is not None:
                self._restore_sampler(state_dict)

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        assert self.train_sampler is not None
        self.train_sampler.load_state_dict(state["sampler"])
        batches = int(state.get("batches", 0))
        if batches:  # resumed mid-epoch: skip the draws the epoch used, over all processes
            world = self.trainer.world_size if self.trainer is not None else 1
            self.train_sampler.skip_next(batches * int(self.hparams["batch_size"]) * world)
        self._sampler_state = None

    def val_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader("val", batch_size=self._val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        return self._loader("test", batch_size=self._val_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader[Any]:
        predict_dir = self.hparams["predict_dir"]
        if predict_dir is None:  # one image at a time: every prediction at its own size
            return self._loader("test", batch_size=1, shuffle=False)
        from lmp_lightning.data.image_folder import ImageFolder

        images = ImageFolder(predict_dir, self.eval_transform, self.input_scale)
        return DataLoader(images, batch_size=1, num_workers=self.hparams["num_workers"])
