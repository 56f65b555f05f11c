"""The base class of every loss plug-in and the registry that finds them by short name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from torch import Tensor, nn

from lmp_lightning.losses.functional import check_logits_target

__all__ = ["LOSSES", "SegmentationLoss", "build_loss", "list_losses", "register_loss"]

LOSSES: dict[str, type[SegmentationLoss]] = {}
"""Short name -> loss class; filled by :func:`register_loss`, the single source of truth."""

_L = TypeVar("_L", bound="type[SegmentationLoss]")


def register_loss(name: str) -> Callable[[_L], _L]:
    """Class decorator that registers a :class:`SegmentationLoss` under a short name."""

    def decorator(cls: _L) -> _L:
        if name in LOSSES:
            raise ValueError(f"a loss is already registered as {name!r}: {LOSSES[name].__name__}")
        LOSSES[name] = cls
        cls.name = name
        return cls

    return decorator


def list_losses() -> list[str]:
    """The registered short names, sorted.

    Example:
        >>> list_losses()
        ['bootstrap', 'ce', 'center', 'focal', 'imf_ce', 'lall', 'lmp']
    """
    return sorted(LOSSES)


def build_loss(name: str, **kwargs: Any) -> SegmentationLoss:
    """Builds a registered loss by its short name.

    Args:
        name: one of :func:`list_losses`.
        **kwargs: the loss class's arguments.

    Raises:
        KeyError: an unknown name; the message lists the valid ones.

    Example:
        >>> build_loss("lmp", p=1.3, m=0.25)
        LossMaxPooling(p=1.3, m=0.25, ignore_index=255)
    """
    try:
        cls = LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid names are {list_losses()}") from None
    return cls(**kwargs)


class SegmentationLoss(nn.Module, ABC):
    """A loss of ``(logits (B, C, H, W), target (B, H, W))`` returning a scalar.

    Subclasses implement :meth:`compute` on validated input. Every loss shares the meaning of
    ``ignore_index``: those pixels take no part, and a batch without a valid pixel gives 0 with a
    graph (never NaN).

    Args:
        ignore_index: the label of pixels that take no part in the loss.
    """

    name: ClassVar[str]
    needs_features: ClassVar[bool] = False
    """True for a loss that also takes the decoder features: ``loss(logits, target,
    features=..., feature_target=...)``; the module then hands them over from its forward pass."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Validates the input (clear errors, no device asserts) and computes the loss."""
        target = check_logits_target(logits, target, self.ignore_index)
        return self.compute(logits, target)

    @abstractmethod
    def compute(self, logits: Tensor, target: Tensor) -> Tensor:
        """The loss on validated input: ``target`` is int64 with labels in range."""

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
