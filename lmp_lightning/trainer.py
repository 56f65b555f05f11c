"""The trainer of ``lmp-seg``: Lightning's :class:`~lightning.pytorch.Trainer`, its
``limit_*_batches`` arguments read int first."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer

__all__ = ["SegmentationTrainer"]


class SegmentationTrainer(Trainer):
    """Lightning's :class:`~lightning.pytorch.Trainer`, given to the CLI as its
    ``trainer_class``, whose ``limit_*_batches`` are annotated ``int | float | None``.

    Lightning annotates them ``Optional[Union[int, float]]``, and ``typing`` caches a union by
    its set of members: once any module has built ``Union[float, int]``, the trainer's
    annotation is that object, float first, and jsonargparse reads ``--trainer.limit_val_batches
    1`` (or ``1`` in YAML) as ``1.0``, every batch. Here an int is a number of batches and a
    float a fraction, as Lightning documents them. Every other argument is Lightning's.

    Example:
        >>> SegmentationTrainer(limit_val_batches=1, logger=False).limit_val_batches
        1
    """

    def __init__(
        self,
        *args: Any,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args,
            limit_train_batches=limit_train_batches,
            limit_val_batches=limit_val_batches,
            limit_test_batches=limit_test_batches,
            limit_predict_batches=limit_predict_batches,
            **kwargs,
        )
