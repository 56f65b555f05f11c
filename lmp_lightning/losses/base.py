"""The base class of every loss plug-in and the registry that finds them by short name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor, nn

from lmp_lightning.losses.functional.pixel import (
    check_shapes,
    drop_mask_channel,
    labels_out_of_range,
)

__all__ = [
    "LOSSES",
    "NO_IGNORE",
    "SegmentationLoss",
    "build_loss",
    "list_losses",
    "loss_choices",
    "register_loss",
]

LOSSES: dict[str, type[SegmentationLoss]] = {}
"""Short name -> loss class; filled by :func:`register_loss`, the single source of truth."""

_L = TypeVar("_L", bound="type[SegmentationLoss]")

NO_IGNORE = -(2**63)
"""The label that stands for ``ignore_index=None`` inside the losses: int64's smallest value,
which no label of an integer mask takes, so that no pixel is ignored."""

Reduction = Literal["mean", "sum"]


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
    """Builds a registered loss by its short name or its class name.

    Args:
        name: one of :func:`list_losses`, or a registered class's name (``"LossMaxPooling"``).
        **kwargs: the loss class's arguments.

    Raises:
        KeyError: an unknown name; the message lists the valid ones.

    Example:
        >>> build_loss("lmp", p=1.3, m=0.25)
        LossMaxPooling(p=1.3, m=0.25, ignore_index=255)
        >>> build_loss("CrossEntropy")
        CrossEntropy(ignore_index=255)
    """
    by_class = {cls.__name__: cls for cls in LOSSES.values()}
    cls = LOSSES.get(name) or by_class.get(name)
    if cls is None:
        raise KeyError(f"unknown loss {name!r}; valid losses: {loss_choices()}")
    return cls(**kwargs)


def loss_choices() -> str:
    """Every loss as ``ClassName (short name)``, for error messages.

    Example:
        >>> "LossMaxPooling (lmp)" in loss_choices()
        True
    """
    return ", ".join(
        f"{name} ({short})" for short, name in sorted((s, c.__name__) for s, c in LOSSES.items())
    )


def bad_labels_error(target: Tensor, num_classes: int, ignore_index: int) -> ValueError:
    """The error for labels of ``target`` outside ``[0, num_classes)`` that are not
    ``ignore_index``, naming up to 10 of them (a host synchronisation)."""
    values = labels_out_of_range(target, num_classes, ignore_index)
    if ignore_index == NO_IGNORE:
        return ValueError(
            f"target has labels {values} outside [0, {num_classes}) (ignore_index=None: no "
            "label is ignored)"
        )
    return ValueError(
        f"target has labels {values} outside [0, {num_classes}) that are not "
        f"ignore_index={ignore_index}"
    )


def _check_value(
    value: Tensor, logits: Tensor, target: Tensor, bad: Tensor, ignore_index: int, loss: str
) -> None:
    """Raises for bad labels (``bad``, the mask of them) or a non-finite ``value``, traced to
    non-finite logits when they are its cause; one host synchronisation when all is well."""
    bad_labels, not_finite = torch.stack(
        [bad.any(), ~torch.isfinite(value.detach()).all()]
    ).tolist()  # the one host synchronisation
    if bad_labels:
        raise bad_labels_error(target, logits.shape[1], ignore_index)
    if not_finite:
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("logits contain NaN or infinite values")
        raise ValueError(f"{loss} gave a non-finite value: {value}")


# The schema is written out: torch 2.4's schema inference does not read string annotations.
@torch.library.custom_op(
    "lmp_lightning::checked_value",
    mutates_args=(),
    schema="(Tensor value, Tensor logits, Tensor target, Tensor bad, int ignore_index, str loss)"
    " -> Tensor",
)
def _checked_value(
    value: Tensor, logits: Tensor, target: Tensor, bad: Tensor, ignore_index: int, loss: str
) -> Tensor:
    """:func:`_check_value` as an operator that ``torch.compile`` leaves opaque: it runs
    eagerly inside the compiled graph and returns ``value`` (a copy: an operator's output may
    not alias its input); its gradient is the identity."""
    _check_value(value, logits, target, bad, ignore_index, loss)
    return value.clone()


@_checked_value.register_fake
def _(
    value: Tensor, logits: Tensor, target: Tensor, bad: Tensor, ignore_index: int, loss: str
) -> Tensor:
    return torch.empty_like(value)


def _checked_value_backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    return grad, None, None, None, None, None


_checked_value.register_autograd(_checked_value_backward)


class SegmentationLoss(nn.Module, ABC):
    """A loss of ``(logits (B, C, H, W), target (B, H, W))`` returning a scalar.

    Subclasses implement :meth:`compute` on validated input. Every loss shares the meaning of
    ``ignore_index``: those pixels take no part, and a batch without a valid pixel gives 0 with a
    graph (never NaN).

    Input checks cost one pass over the integer labels and one host synchronisation per call,
    never a pass over the logits: labels out of range are
    reported after :meth:`compute`, together with a non-finite result, which is only then traced
    to non-finite logits. On a GPU they are set aside before :meth:`compute`, so that they
    cannot raise a device assert; on CPU an error they cause inside :meth:`compute` is reported
    as the bad labels it comes from. Under ``torch.compile`` they are set aside on every device,
    and the checks after :meth:`compute` run in one operator that the compiler leaves opaque
    (``torch.ops.lmp_lightning.checked_value``): the same errors, and no graph break, so that
    ``fullgraph=True`` compiles.

    Every loss is called the same way, ``loss(logits, target, *, features=None)``:
    ``features`` are the decoder features ``(B, D, h, w)`` of the same forward pass, covering
    the image (their labels are ``target`` at their pixels, nearest neighbour). A loss that
    needs them declares ``needs_features = True`` and
    :class:`~lmp_lightning.module.SegmentationModule` hands them over in training; any other
    loss ignores them. A loss that needs something from the data before training (class
    statistics) takes it in :meth:`setup`, which the module calls with the data module.

    Targets may be ``(B, H, W)`` or ``(B, 1, H, W)`` integer masks, as torch's,
    segmentation_models_pytorch's and torchgeo's losses take them.

    Args:
        ignore_index: the label of pixels that take no part in the loss; ``None``: no label is
            ignored (torchgeo's default), and every label must be a class.
        validate_args: check the input (``False`` skips every check, as torchmetrics'
            ``validate_args``; labels out of range then fail inside PyTorch).
        reduction: ``"mean"`` (the default; what each loss's docstring describes: a mean over
            the valid pixels, or over the images with a valid pixel for the losses pooled per
            image) or ``"sum"`` (the same terms summed, as ``F.cross_entropy``'s
            ``reduction="sum"``).
    """

    name: ClassVar[str]
    needs_features: ClassVar[bool] = False
    """True for a loss that needs ``features``."""

    def __init__(
        self,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if ignore_index is not None and (
            isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
        ):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        if not isinstance(validate_args, bool):
            raise TypeError(f"validate_args must be a bool, got {validate_args!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self.reduction = reduction

    @property
    def _ignore(self) -> int:
        """``ignore_index`` as the int the computations compare labels with."""
        return NO_IGNORE if self.ignore_index is None else self.ignore_index

    def _reduce_pixels(self, losses: Tensor, valid: Tensor) -> Tensor:
        """Pixel losses (0 where not ``valid``) summed, or averaged over the valid pixels."""
        total = losses.sum()
        return total if self.reduction == "sum" else total / valid.sum().clamp(min=1)

    def _reduce_images(self, per_image: Tensor, valid: Tensor) -> Tensor:
        """``(B,)`` per-image losses summed, or averaged over the images with a valid pixel
        (``valid`` is ``(B, N)``); 0 with a graph when none has."""
        has = valid.any(-1)
        total = (per_image * has).sum()
        return total if self.reduction == "sum" else total / has.sum().clamp(min=1)

    def setup(self, datamodule: Any | None) -> None:
        """Takes what the loss needs from the data before training; a no-op by default.

        Args:
            datamodule: the run's data module (``None`` when the trainer has none).
        """

    def forward(self, logits: Tensor, target: Tensor, *, features: Tensor | None = None) -> Tensor:
        """Validates the input (clear errors, no device asserts) and computes the loss.

        Args:
            logits: ``(B, C, H, W)`` scores.
            target: ``(B, H, W)`` (or ``(B, 1, H, W)``) integer labels.
            features: the decoder features ``(B, D, h, w)``, for a loss with
                :attr:`needs_features` (ignored by the others).
        """
        if self.needs_features and features is None:
            raise ValueError(
                f"{type(self).__name__} needs the decoder features: call it as loss(logits, "
                "target, features=...) (SegmentationModule does this itself in training)"
            )
        if not self.validate_args:
            return self.compute(logits, drop_mask_channel(target).long(), features)
        target = check_shapes(logits, target)
        num_classes = logits.shape[1]
        ignore = self._ignore
        bad = ((target < 0) | (target >= num_classes)) & (target != ignore)
        if torch.compiler.is_compiling():
            # Compiled, a bad label would fail inside a kernel ("index out of bounds") and the
            # host checks below would break the graph: the labels are set aside, and the
            # checks run after the loss in one operator opaque to the compiler (it raises the
            # same errors, and fullgraph=True compiles).
            value = self.compute(logits, target.masked_fill(bad, ignore), features)
            return torch.ops.lmp_lightning.checked_value(
                value, logits, target, bad, ignore, type(self).__name__
            )
        # On CPU a loss reads out-of-range labels as an IndexError at worst (caught below); on
        # a device, where it would be an assert, they are set aside before computing.
        safe = target if target.device.type == "cpu" else target.masked_fill(bad, ignore)
        try:
            value = self.compute(logits, safe, features)
        except (ValueError, IndexError, RuntimeError):
            if bool(bad.any()):
                raise bad_labels_error(target, num_classes, ignore) from None
            if not bool(torch.isfinite(logits).all()):  # the cause, named as such
                raise ValueError("logits contain NaN or infinite values") from None
            raise
        _check_value(value, logits, target, bad, ignore, type(self).__name__)
        return value

    @abstractmethod
    def compute(self, logits: Tensor, target: Tensor, features: Tensor | None = None) -> Tensor:
        """The loss on validated input: ``target`` is int64 with labels in range, ``features``
        given when the loss :attr:`needs_features`."""

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}{self._reduction_repr()}"

    def _reduction_repr(self) -> str:
        return f", reduction={self.reduction!r}" if self.reduction != "mean" else ""
