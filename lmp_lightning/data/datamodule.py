"""The LightningDataModule: a registered data set with the papers' augmentation."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lmp_lightning.data.base import SegmentationDataset, Split
from lmp_lightning.data.loaders import (
    EpochShuffle,
    ResumableLoader,
    SamplerShard,
    TransformedDataset,
    pad_collate,
)
from lmp_lightning.data.registry import dataset_spec
from lmp_lightning.data.spec import DatasetSpec, run_seed
from lmp_lightning.data.splits import STAGE_SPLITS, DatasetSplits, predict_input_scale
from lmp_lightning.errors import InputError
from lmp_lightning.sampling.crop_sampling import CropSampling

if TYPE_CHECKING:
    from lmp_lightning.sampling import PerformanceAwareSampler
    from lmp_lightning.sampling.class_statistics import ClassStatistics

from lmp_lightning.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_normalisation,
    eval_transform,
    train_transform,
)

__all__ = [
    "EpochShuffle",
    "SegmentationDataModule",
    "TransformedDataset",
    "pad_collate",
    "predict_input_scale",
    "run_seed",
]


MAX_CROP_SIZE = 4096
"""The largest training crop side (a Cityscapes frame is 2048 x 1024)."""


class SegmentationDataModule(LightningDataModule):
    """Train, validation, test and predict loaders of a data set.

    Training samples get the papers' augmentation (random scale, pad with ``ignore_index``,
    random crop, horizontal flip, normalisation); validation, test and predict samples are only
    normalised and keep their full size. ``num_classes``, ``class_names`` and ``ignore_index``
    are known right after construction, so the CLI can link them to the model.

    Args:
        dataset: the data set, with its own arguments: one of :mod:`lmp_lightning.data.sets`
            (``CamVid(root="data/camvid", scale=0.5)``), any registered
            :class:`~lmp_lightning.data.spec.DatasetSpec`, or a registered name with the data
            set's defaults (``"synthetic"``, the embedded default; ``"camvid"``...). On the
            command line: ``--data.dataset camvid --data.dataset.scale 0.5``.
        root: the data directory of a data set that reads files, when the data set names none
            of its own (``--data.root DIR`` is ``--data.dataset.root DIR``).
        crop_size: side of the square training crop.
        batch_size: training batch size.
        val_batch_size: batch size of validation, test and predict (full-size images).
        num_workers: loader worker processes.
        pin_memory: pin loader memory (for GPU training).
        seed: seed of the shuffling, the augmentation, the sampler's stream and stored crop
            pixels, and a generated data set that has no seed of its own; ``None`` (the
            default) takes the run's seed
            (``--seed_everything``, :func:`lightning.seed_everything`), else 0, so that one seed
            drives the weights and the data.
        scale_range: ``(low, high)`` of the random training scale.
        mean: per-channel normalisation mean (on [0, 1] pixel values).
        std: per-channel normalisation standard deviation.
        predict_dir: a folder of images for ``predict`` (default: the test split).
        predict_rescale: resize ``predict_dir`` images by the data set's scale (its ``scale``
            argument, e.g. 0.5) before the network, as training and evaluation saw them;
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
        KeyError: an unknown ``dataset`` name (the message lists the valid names).
        ValueError: a bad size or count, ``predict_class_names`` or ``predict_scale``; a data
            set that reads files and no ``root``, or two different roots.
        FileNotFoundError: a data set that reads files and a ``root`` that is not a directory.
        InputError: (a data set read from files, without ``predict_dir``) a missing ``train``
            or ``val`` split, a label file of another size than its image, or (``folder``) a
            label value outside the classes that is not the ignore label; the message names the
            folder or file, and it is raised here, before a model is built.

    Example:
        >>> from lmp_lightning.data.sets import Synthetic
        >>> data = SegmentationDataModule(Synthetic(num_train_images=4, image_size=(64, 80)),
        ...                               crop_size=48, batch_size=2)
        >>> data.num_classes, data.ignore_index
        (10, 255)
        >>> data.setup("fit")
        >>> batch = next(iter(data.train_dataloader()))
        >>> tuple(batch["image"].shape), batch["mask"].dtype
        ((2, 3, 48, 48), torch.int64)
    """

    def __init__(
        self,
        dataset: DatasetSpec | str = "synthetic",
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
        predict_dir: str | None = None,
        predict_rescale: bool = True,
        sampler: CropSampling | None = None,
        in_memory: bool = False,
        predict_class_names: list[str] | None = None,
        predict_scale: float | None = None,
    ) -> None:
        super().__init__()
        spec = dataset_spec(dataset).with_root(root)
        for name, value in (
            ("crop_size", crop_size),
            ("batch_size", batch_size),
            ("val_batch_size", val_batch_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if crop_size > MAX_CROP_SIZE:
            raise ValueError(f"crop_size must be at most {MAX_CROP_SIZE} pixels, got {crop_size}")
        check_normalisation(mean, std)
        names = predict_class_names
        if names is not None and (not names or len(set(names)) != len(names)):
            raise ValueError(f"predict_class_names must be unique and non-empty, got {names}")
        if predict_scale is not None and (
            isinstance(predict_scale, bool) or not 0 < predict_scale < math.inf
        ):
            raise ValueError(f"predict_scale must be a number > 0, got {predict_scale!r}")
        spec.check()  # a missing directory fails now, naming the path
        if seed is None:
            seed = run_seed()
        self.save_hyperparameters(ignore=["sampler", "dataset"])
        self.hparams["dataset"] = spec.config()  # plain data, as checkpoints hold it
        self.hparams["seed"] = seed
        self.dataset: DatasetSpec = spec.with_seed(seed)
        """The data set whose splits the loaders read."""
        self._splits = DatasetSplits(self.dataset, in_memory)
        self.sampling = sampler
        self.train_sampler: PerformanceAwareSampler | None = None
        """The performance-aware sampler of a ``fit`` with ``sampler`` (built in ``setup``)."""
        self._crops: Dataset[dict[str, Tensor]] | None = None
        self._sampler_state: dict[str, Any] | None = None
        self.train_transform = train_transform(
            crop_size, scale_range, mean, std, self.ignore_index, seed=seed
        )
        self.eval_transform = eval_transform(mean, std)
        self.datasets: dict[Split, TransformedDataset] = {}
        self._statistics: dict[tuple[int, str | None], ClassStatistics] = {}
        self._resume: tuple[int, int] | None = None

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
        if stage == "predict" and self.hparams["predict_dir"] is not None:
            return
        self._splits.check(STAGE_SPLITS.get(stage, ()))

    @property
    def num_classes(self) -> int:
        """Number of classes of the data set (of ``predict_class_names`` when given)."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Class names of the data set (``predict_class_names`` when given), in label order."""
        names = self.hparams["predict_class_names"]
        return list(self._splits.label_space.class_names if names is None else names)

    @property
    def ignore_index(self) -> int:
        """The label of pixels without a class."""
        return self._splits.label_space.ignore_index

    @property
    def input_scale(self) -> float:
        """The factor ``predict_dir`` images are resized by: ``predict_scale`` when given, else
        the data set's scale (:attr:`DatasetSpec.input_scale
        <lmp_lightning.data.spec.DatasetSpec.input_scale>`: its ``scale`` argument, or its
        default) when ``predict_rescale``, else 1."""
        hp: Any = self.hparams
        return predict_input_scale(self.dataset, hp.predict_rescale, hp.predict_scale)

    @property
    def _val_batch_size(self) -> int:
        return int(self.hparams["val_batch_size"])

    def _raw(self, split: Split) -> SegmentationDataset:
        """The untransformed split, decoded once and kept with ``in_memory``."""
        return self._splits.raw(split)

    def _read(self, split: Split) -> SegmentationDataset:
        """The untransformed split, built from its files now."""
        return self._splits.read(split)

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
                f"{stage} reads the {self._splits.name} data set, whose classes are its "
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
        hp: Any = self.hparams
        rank, world = self._rank_world()
        stats = self.class_statistics(
            points_per_class=sampling.points_per_class,
            cache_dir=sampling.cache_dir,
            progress=rank == 0,
        )
        self._crops, self.train_sampler = sampling.build(
            self.train_dataset_raw(), stats, hp.crop_size, hp.scale_range, hp.mean, hp.std,
            self.ignore_index, hp.seed, rank, world,
        )  # fmt: skip
        if self._sampler_state is not None:
            self._restore_sampler(self._sampler_state)

    def _rank_world(self) -> tuple[int, int]:
        """This process's rank and the number of processes (``(0, 1)`` without a trainer)."""
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _rank_seed(self) -> int:
        """``seed`` on process 0, a seed derived from ``(seed, rank)`` on the others: the
        training pipeline's own seed (the training loader seeds each sample's augmentation from
        ``(seed, epoch, sample)`` instead)."""
        seed = int(self.hparams["seed"])
        rank = self._rank_world()[0]
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
        """An evaluation loader: full-size images of any size, padded per batch."""
        hp: Any = self.hparams
        return DataLoader(
            self.datasets[split],
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
            persistent_workers=False,
            collate_fn=functools.partial(pad_collate, ignore_index=self.ignore_index),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        """A :class:`~lmp_lightning.data.loaders.ResumableLoader`: each epoch's order from
        ``(seed, epoch)``, this process's share of it, and its position saved and restored by
        Lightning with the fit loop's state (a run resumed mid-epoch goes on where it stopped).
        """
        hp: Any = self.hparams
        rank, world = self._rank_world()
        sampler: EpochShuffle | SamplerShard
        if self.train_sampler is not None and self._crops is not None:
            dataset: Dataset[dict[str, Tensor]] = self._crops
            sampler = SamplerShard(self.train_sampler)
            if len(sampler) < hp.batch_size:
                raise InputError(
                    f"the sampler draws {len(sampler)} crops per epoch (num_samples, per "
                    f"process), fewer than --data.batch_size {hp.batch_size}: nothing would train"
                )
        else:
            train = dataset = self.datasets["train"]

            def on_epoch(seed: int) -> None:  # every sample augmented from (seed, its index)
                train.epoch_seed = seed

            sampler = EpochShuffle(train, hp.seed, 0, on_epoch, rank, world)
            if len(sampler) < hp.batch_size:
                images = f"{len(sampler)} training images{' per process' if world > 1 else ''}"
                raise InputError(
                    f"--data.batch_size {hp.batch_size} is larger than the {images}: every "
                    "batch would be incomplete and dropped, so nothing would train; lower "
                    "--data.batch_size"
                )
        loader: ResumableLoader[dict[str, Tensor]] = ResumableLoader(
            dataset,
            sampler,
            hp.batch_size,
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory,
        )
        if self._resume is not None:  # the position this data module's checkpoint holds
            loader.load_state_dict({"epoch": self._resume[0], "batches": self._resume[1]})
            self._resume = None
        return loader

    def state_dict(self) -> dict[str, Any]:
        """Where training stands, for a resumed run: the training loader's position (``epoch``
        and the ``batches`` it yielded in it, counted by the loader) and the sampler's state
        (epoch, class probabilities).

        Lightning saves the loader's own state with its training loop and restores it before a
        run resumed mid-epoch draws its first batch, but not when ``configure_optimizers`` asks
        for ``trainer.estimated_stepping_batches`` (the poly schedule does; Lightning issue
        20550), and not at all for an epoch-end checkpoint; so this copy is restored too, into
        the next loader :meth:`train_dataloader` builds (the same state twice is harmless).
        """
        state: dict[str, Any] = {}
        loader = self.trainer.train_dataloader if self.trainer is not None else None
        if isinstance(loader, ResumableLoader):
            position = loader.state_dict()
            state.update(epoch=position["epoch"], batches=position["batches"])
        if self.train_sampler is not None:
            state["sampler"] = self.train_sampler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning restores this before it builds the training loader: the loader is built
        at the saved position and the sampler gets its state back. (Checkpoints written before
        the loader kept its own state hold the same keys, read from Lightning's loop then.)"""
        if "epoch" in state_dict:
            self._resume = (int(state_dict["epoch"]), int(state_dict.get("batches", 0)))
        if "sampler" in state_dict:
            self._sampler_state = state_dict
            if self.train_sampler is not None:
                self._restore_sampler(state_dict)

    def _restore_sampler(self, state: dict[str, Any]) -> None:
        assert self.train_sampler is not None
        self.train_sampler.load_state_dict(state["sampler"])
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
