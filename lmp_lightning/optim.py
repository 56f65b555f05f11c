"""The papers' optimisation defaults: SGD with momentum and the "poly" decay over a whole fit."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.cli import instantiate_class
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import PolynomialLR

__all__ = [
    "DEFAULT_LR_SCHEDULER",
    "DEFAULT_OPTIMIZER",
    "PolyLR",
    "build_lr_scheduler",
    "build_optimizer",
    "describe_optimisation",
]

DEFAULT_OPTIMIZER: dict[str, Any] = {
    "class_path": "torch.optim.SGD",
    "init_args": {"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
}
"""SGD with momentum 0.9 and weight decay, as both papers train (``lmp-seg`` shows it in
``--print_config``; any ``torch.optim`` class replaces it: ``--model.optimizer AdamW``)."""

DEFAULT_LR_SCHEDULER: dict[str, Any] = {
    "class_path": "lmp_lightning.optim.PolyLR",
    "init_args": {"power": 0.9},
}
"""The poly decay ``lr * (1 - step / steps) ** 0.9`` over the fit's optimiser steps."""


class PolyLR(PolynomialLR):
    """``torch.optim.lr_scheduler.PolynomialLR`` that can run over a whole fit:
    ``lr * (1 - step / total_iters) ** power``, stepped after every optimiser step.

    ``total_iters=None`` (the default) stands for the fit's optimiser steps, which
    :class:`~lmp_lightning.SegmentationModule` fills in (``trainer.estimated_stepping_batches``),
    so that the schedule follows ``--trainer.max_epochs`` or ``max_steps`` without a second
    setting.

    Args:
        optimizer: the optimiser.
        total_iters: steps of the decay; ``None``: the fit's, set before the first step.
        power: the power of the decay (0 keeps the rate constant).
        last_epoch: as in PyTorch's schedulers.

    Raises:
        ValueError: ``power < 0`` or ``total_iters < 1``.
        RuntimeError: stepped while ``total_iters`` is still ``None``.

    Example:
        >>> import torch
        >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> scheduler = PolyLR(optimizer, power=1.0)
        >>> scheduler.total_iters = 4  # what SegmentationModule does
        >>> for _ in range(2):
        ...     optimizer.step()
        ...     scheduler.step()
        >>> scheduler.get_last_lr()
        [0.5]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_iters: int | None = None,
        power: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        if power < 0:
            raise ValueError(f"power must be >= 0, got {power}")
        if total_iters is not None and total_iters < 1:
            raise ValueError(
                f"total_iters must be >= 1 or None (the fit's steps), got {total_iters}"
            )
        super().__init__(
            optimizer, total_iters=total_iters or 1, power=power, last_epoch=last_epoch
        )
        self.total_iters: int | None = total_iters  # type: ignore[assignment]
        self.fit_length = total_iters is None
        """``total_iters`` follows the fit: it is not saved, so a fit resumed with more epochs
        decays over its own length instead of stopping at the old one's end (rate 0)."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.fit_length:
            state.pop("total_iters", None)
        return state

    def get_lr(self) -> list[float | Tensor]:
        if self.total_iters is None and self.last_epoch > 0:
            raise RuntimeError(
                "PolyLR has no total_iters: give it, or let SegmentationModule set the fit's steps"
            )
        return list(super().get_lr())


def build_optimizer(factory: Callable[[Any], Optimizer] | None, params: Any) -> Optimizer:
    """The optimiser of ``factory`` (LightningCLI's ``OptimizerCallable``) over ``params``;
    ``None``: :data:`DEFAULT_OPTIMIZER`."""
    if factory is None:
        return instantiate_class(params, DEFAULT_OPTIMIZER)
    return factory(params)


def build_lr_scheduler(factory: Callable[[Optimizer], Any] | None, optimizer: Optimizer) -> Any:
    """The scheduler of ``factory`` over ``optimizer``; ``None``: :data:`DEFAULT_LR_SCHEDULER`."""
    if factory is None:
        return instantiate_class(optimizer, DEFAULT_LR_SCHEDULER)
    return factory(optimizer)


def describe_optimisation(
    optimizer: Callable[[Any], Optimizer] | None,
    lr_scheduler: Callable[[Optimizer], Any] | None,
) -> dict[str, Any]:
    """Class paths and scalar arguments of what ``optimizer`` and ``lr_scheduler`` build,
    for results files and model cards (and for restoring a resumed fit's optimiser with them:
    :class:`~lmp_lightning.callbacks.TypedOptimizerOnResume`). They are built on a stand-in
    parameter, so that bad arguments fail when the model is made, not when the fit starts.

    Example:
        >>> described = describe_optimisation(None, None)
        >>> described["optimizer"]["class_path"], described["optimizer"]["init_args"]["lr"]
        ('torch.optim.sgd.SGD', 0.01)
        >>> described["lr_scheduler"]["class_path"]
        'lmp_lightning.optim.PolyLR'
    """
    built = build_optimizer(optimizer, [nn.Parameter(torch.zeros(1))])
    scheduler = build_lr_scheduler(lr_scheduler, built)

    def describe(obj: Any, values: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in values.items() if isinstance(v, int | float | str | bool)}
        return {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", "init_args": kept}

    arguments = inspect.signature(type(scheduler).__init__).parameters
    return {
        "optimizer": describe(built, built.defaults),
        "lr_scheduler": describe(
            scheduler, {k: getattr(scheduler, k) for k in arguments if hasattr(scheduler, k)}
        ),
    }
