"""Model building on segmentation_models_pytorch, with errors that list the valid names."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import timm
from torch import nn

__all__ = ["build_model", "list_architectures", "list_encoders", "required_stride"]

_DEEPLAB = ("deeplabv3", "deeplabv3plus")


def list_architectures() -> list[str]:
    """The architecture names of segmentation_models_pytorch (``smp.create_model``).

    Example:
        >>> "deeplabv3plus" in list_architectures()
        True
    """
    return sorted(smp.MODEL_ARCHITECTURES_MAPPING)


def list_encoders() -> list[str]:
    """segmentation_models_pytorch's own encoder names; any timm model works as ``tu-<name>``.

    Example:
        >>> "resnet101" in list_encoders()
        True
    """
    return sorted(smp.encoders.get_encoder_names())


def build_model(
    arch: str,
    encoder_name: str,
    num_classes: int,
    in_channels: int = 3,
    encoder_weights: str | None = None,
    output_stride: int | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Builds any segmentation_models_pytorch architecture with any of its encoders.

    Args:
        arch: an architecture of :func:`list_architectures` (case-insensitive).
        encoder_name: an encoder of :func:`list_encoders`, or ``tu-<timm model name>``.
        num_classes: number of output classes.
        in_channels: number of input channels.
        encoder_weights: pretrained encoder weights passed to segmentation_models_pytorch
            (``None``, the default, downloads nothing).
        output_stride: 8 or 16 for ``deeplabv3`` / ``deeplabv3plus`` (atrous encoder); the
            papers' DeepLab setting is ``deeplabv3`` with ``resnet101`` and output stride 8.
        **model_kwargs: further arguments of the architecture's class.

    Returns:
        The model; its ``forward`` maps ``(B, in_channels, H, W)`` to ``(B, num_classes, H, W)``.

    Raises:
        ValueError: an unknown architecture or encoder (the message lists the valid names), or
            an ``output_stride`` the architecture does not take.

    Example:
        >>> model = build_model("fpn", "resnet18", num_classes=5)
        >>> required_stride(model)
        32
    """
    name = arch.lower()
    if name not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(f"unknown architecture {arch!r}; valid names are {list_architectures()}")
    if encoder_name.startswith("tu-"):
        if not timm.is_model(encoder_name[3:]):
            raise ValueError(
                f"unknown timm encoder {encoder_name!r}: {encoder_name[3:]!r} is not a timm model "
                "(see timm.list_models())"
            )
    elif encoder_name not in smp.encoders.get_encoder_names():
        raise ValueError(
            f"unknown encoder {encoder_name!r}; valid names are {list_encoders()} "
            "or 'tu-<timm model name>'"
        )
    if output_stride is not None:
        if name not in _DEEPLAB:
            raise ValueError(
                f"output_stride applies to {list(_DEEPLAB)} only, not to arch={arch!r}"
            )
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        model_kwargs["encoder_output_stride"] = output_stride
    return smp.create_model(
        name,
        encoder_name=encoder_name,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
        **model_kwargs,
    )


def required_stride(model: nn.Module) -> int:
    """The multiple that the model's input height and width must have (the encoder's stride)."""
    encoder = getattr(model, "encoder", None)
    return int(getattr(encoder, "output_stride", 32))
