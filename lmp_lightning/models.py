"""Model building on segmentation_models_pytorch, with errors that list the valid names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import segmentation_models_pytorch as smp
import timm
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import load_file as load_safetensors
from torch import nn

from lmp_lightning import hub
from lmp_lightning.checkpoints import load_checkpoint
from lmp_lightning.encoder_weights import list_packaged_weights, packaged_weights

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
        encoder_weights: pretrained encoder weights: a weight set that an installed package
            ships (:func:`~lmp_lightning.encoder_weights.list_packaged_weights`, e.g.
            ``"imagenet"`` for ``tu-tf_efficientnet_lite0``: no network), a name passed to
            segmentation_models_pytorch (``"imagenet"``, ...; taken from the local cache when
            there, else downloaded), a local ``.pth``/``.pt``/``.safetensors`` file of encoder
            weights, or ``None`` (the default, nothing is downloaded).
        output_stride: 8 or 16 for ``deeplabv3`` / ``deeplabv3plus`` (atrous encoder); the
            papers' DeepLab setting is ``deeplabv3`` with ``resnet101`` and output stride 8.
        **model_kwargs: further arguments of the architecture's class.

    Returns:
        The model; its ``forward`` maps ``(B, in_channels, H, W)`` to ``(B, num_classes, H, W)``.

    Raises:
        ValueError: an unknown architecture or encoder (the message lists the valid names), an
            ``output_stride`` the architecture does not take, named weights that are neither
            cached nor reachable (offline), or a weights file of another encoder.

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

    def create(weights: str | None) -> nn.Module:
        return smp.create_model(
            name,
            encoder_name=encoder_name,
            encoder_weights=weights,
            in_channels=in_channels,
            classes=num_classes,
            **model_kwargs,
        )

    if encoder_weights is None:
        return create(None)
    packaged = packaged_weights(encoder_name, encoder_weights)
    if packaged is not None:  # shipped by an installed package: no network
        model = create(None)
        packaged.load_into(model.encoder)  # type: ignore[arg-type]
        return model
    if Path(encoder_weights).expanduser().is_file():
        model = create(None)
        _load_encoder_file(model, Path(encoder_weights).expanduser(), encoder_name)
        return model
    try:  # weights already in the local cache: no network needed
        with hub.hub_offline():
            return create(encoder_weights)
    except (OSError, LocalEntryNotFoundError):
        pass
    if not hub.hub_reachable():
        raise ValueError(
            f"pretrained encoder weights {encoder_weights!r} of {encoder_name!r} are not in the "
            f"local cache and {constants.ENDPOINT} cannot be reached (offline?); download them "
            "once with network access, or pass a local file of encoder weights "
            "(--model.encoder_weights /path/to/encoder.pth), or use null; weight sets that "
            f"install with a package (encoder, weights): {list_packaged_weights()}"
        )
    return create(encoder_weights)


def _load_encoder_file(model: nn.Module, path: Path, encoder_name: str) -> None:
    """Loads a local ``.pth``/``.pt`` or ``.safetensors`` state dict into the model's encoder."""
    state: Any
    if path.suffix == ".safetensors":
        state = load_safetensors(str(path))
    else:
        state = load_checkpoint(path, what="encoder weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        model.encoder.load_state_dict(state)  # type: ignore[union-attr]
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"{path} does not hold weights of the {encoder_name!r} encoder: {str(error)[:300]}"
        ) from None


def required_stride(model: nn.Module) -> int:
    """The multiple that the model's input height and width must have (the encoder's stride)."""
    encoder = getattr(model, "encoder", None)
    return int(getattr(encoder, "output_stride", 32))
