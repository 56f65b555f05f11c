"""A zoo entry as a ready-to-use model: verified weights, normalisation and padding built in."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from lmp_lightning.data.transforms import eval_transform, rescale_image
from lmp_lightning.models import required_stride
from lmp_lightning.zoo.card import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelCard,
    is_plain_name,
    read_json,
    sha256_file,
)

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "SegmentationModel", "load_entry"]


class SegmentationModel(nn.Module):
    """A segmentation_models_pytorch model with its card: normalises, pads and crops back.

    Args:
        model: the segmentation_models_pytorch model.
        card: the entry's model card (normalisation, classes).

    Example:
        >>> model = smp.create_model("fpn", "resnet18", encoder_weights=None, classes=2)
        >>> card = ModelCard(name="demo", architecture="fpn", encoder="resnet18",
        ...                  in_channels=3, num_classes=2, class_names=["bg", "fg"])
        >>> labels = SegmentationModel(model, card).segment(np.zeros((37, 50, 3), np.uint8))
        >>> labels.shape, labels.dtype
        ((37, 50), dtype('int64'))
    """

    def __init__(self, model: nn.Module, card: ModelCard) -> None:
        super().__init__()
        self.model = model
        self.card = card
        self.class_names = list(card.class_names)
        self.stride = required_stride(model)
        self.register_buffer("mean", torch.tensor(card.mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(card.std).view(-1, 1, 1), persistent=False)
        # the data module's evaluation pipeline: lmp-seg validate and predict see the same input
        self._normalisation = eval_transform(card.mean, card.std)
        self.eval()

    def forward(self, image: Tensor) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` of a normalised ``(B, C, H, W)`` batch of any size;
        pads to the stride and crops back, as :class:`~lmp_lightning.SegmentationModule` does."""
        H, W = image.shape[-2:]
        pad_h, pad_w = -H % self.stride, -W % self.stride
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h))
        weight = next(self.model.parameters(), None)  # run in the network's own type
        if weight is not None and image.is_floating_point():
            image = image.to(weight.dtype)
        logits: Tensor = self.model(image)
        return logits[..., :H, :W]

    def _check(self, image: np.ndarray) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise TypeError(
                "image must be a uint8 numpy array (HxWxC RGB), got "
                f"{type(image).__name__} of dtype {getattr(image, 'dtype', None)}"
            )
        channels = self.card.in_channels
        if image.ndim != 3 or image.shape[2] != channels or 0 in image.shape:
            raise ValueError(f"image must be HxWx{channels}, got shape {image.shape}")

    def normalise(self, image: np.ndarray) -> Tensor:
        """A ``(1, C, H, W)`` tensor of an ``HxWxC`` uint8 image, with the card's normalisation
        (``(image / 255 - mean) / std``), computed as the data module's evaluation pipeline
        computes it (:func:`~lmp_lightning.data.transforms.eval_transform`): ``segment`` and
        ``lmp-seg predict --ckpt_path zoo:NAME`` give the network the same values.

        Raises:
            TypeError: ``image`` is not a uint8 numpy array.
            ValueError: ``image`` is not ``HxWxC`` with ``C = in_channels``.
        """
        self._check(image)
        mean: Tensor = self.mean  # type: ignore[assignment]
        x: Tensor = self._normalisation(image=np.ascontiguousarray(image))["image"]
        return x.unsqueeze(0).contiguous().to(mean.device)

    @torch.no_grad()
    def segment(self, image: np.ndarray, rescale: bool = True) -> np.ndarray:
        """Labels of an RGB image of any size, at that size.

        The image is first resized by the card's ``input_scale`` (the scale the entry was
        trained and measured at; area interpolation when shrinking), and the logits are resized
        back (bilinear) before the arg-max.

        Args:
            image: ``HxWx3`` uint8 RGB (``HxWxC`` for ``C = in_channels``).
            rescale: apply ``input_scale`` (``False`` feeds the image as it is).

        Returns:
            ``HxW`` int64 labels in ``[0, num_classes)``.

        Raises:
            TypeError: ``image`` is not a uint8 numpy array.
            ValueError: ``image`` has the wrong shape.
        """
        self._check(image)
        scale = float(self.card.input_scale) if rescale else 1.0
        logits = self(self.normalise(rescale_image(image, scale))).float()
        if logits.shape[-2:] != image.shape[:2]:
            logits = F.interpolate(
                logits, size=image.shape[:2], mode="bilinear", align_corners=False
            )
        labels: np.ndarray = logits.argmax(1)[0].cpu().numpy().astype(np.int64)
        return labels


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"model configuration not found: {str(path)!r}")
    config = read_json(path)  # a key twice or nesting too deep is refused
    if not isinstance(config, dict) or "_model_class" not in config:
        raise ValueError(f"{path} is not a segmentation_models_pytorch config (no _model_class)")
    return config


def _check_config(card: ModelCard, config: dict[str, Any], path: Path) -> None:
    """Refuses a config.json that disagrees with the card."""
    mapping: Mapping[str, type[nn.Module]] = smp.MODEL_ARCHITECTURES_MAPPING
    arch_class = mapping.get(card.architecture.lower())
    if arch_class is None:
        raise ValueError(
            f"card of {card.name!r} names unknown architecture {card.architecture!r}; "
            f"valid names are {sorted(mapping)}"
        )
    if config["_model_class"] != arch_class.__name__:
        raise ValueError(
            f"architecture mismatch: the card says {card.architecture!r} "
            f"({arch_class.__name__}) but {path} builds {config['_model_class']!r}"
        )
    for card_key, config_key in (
        ("encoder", "encoder_name"),
        ("in_channels", "in_channels"),
        ("num_classes", "classes"),
    ):
        if config.get(config_key) != getattr(card, card_key):
            raise ValueError(
                f"{card_key} mismatch: the card says {getattr(card, card_key)!r} but {path} "
                f"has {config_key}={config.get(config_key)!r}"
            )


def _verify(directory: Path, pins: Mapping[str, str], source: str) -> None:
    """Checks the SHA-256 of every file that ``source`` (the card or the index) pins; a file
    name that is not plain (``/etc/hostname``, ``../card.json``) is refused before any file is
    read."""
    for file in pins:
        if not is_plain_name(file):
            raise ValueError(
                f"{source} pins a file outside {str(directory)!r}: {file!r} is not a plain file "
                "name (an entry's files lie in its directory)"
            )
    for file, digest in pins.items():
        path = directory / file
        if not path.is_file():
            raise FileNotFoundError(f"zoo entry file not found: {str(path)!r}")
        actual = sha256_file(path)
        if actual != digest.lower():
            raise ValueError(
                f"sha256 mismatch for {str(path)!r}: {source} expects {digest}, the file has "
                f"{actual} (corrupt, truncated or replaced; export or download it again)"
            )


def load_entry(
    directory: str | Path,
    expected_sha256: Mapping[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> SegmentationModel:
    """Loads a zoo entry directory after verifying it.

    Every file pinned by ``expected_sha256`` (the zoo index's digests, ``card.json`` among them)
    and by the card must have its SHA-256. The card must pin both files the network is built
    from, ``model.safetensors`` and ``config.json`` (an older card that pins the weights alone
    is refused: another ``config.json`` loads the same weights and labels otherwise), and every
    pinned name must be a plain file name in the directory. The card must agree with
    ``config.json`` on architecture, encoder, input channels and classes. Only then does
    segmentation_models_pytorch's ``from_pretrained`` build the network from ``config.json``
    and load the weights, strictly.

    Args:
        directory: the entry directory (``card.json``, ``config.json``, ``model.safetensors``).
        expected_sha256: further digests by file name that the files must have.
        dtype: the floating-point type to run the network in, whatever type its weights are
            stored in (the card's ``weights_dtype``).

    Returns:
        The model in eval mode.

    Raises:
        FileNotFoundError: the directory or one of its files is missing (the message names it).
        ValueError: a digest mismatch, a card that does not pin ``model.safetensors`` and
            ``config.json``, a pinned name that is not a plain file name, a card that disagrees
            with ``config.json`` or with the weights, or a file that cannot be read (each
            message names the file).

    Example:
        >>> load_entry("/nonexistent/entry")
        Traceback (most recent call last):
        ...
        FileNotFoundError: zoo entry directory not found: '/nonexistent/entry'
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"zoo entry directory not found: {str(directory)!r}")
    _verify(directory, expected_sha256 or {}, "the zoo index")
    card = ModelCard.load(directory)
    if WEIGHTS_FILE not in card.weights_sha256:
        raise ValueError(
            f"card of {card.name!r} in {directory} lists no sha256 of {WEIGHTS_FILE!r}: "
            "refusing unverifiable weights"
        )
    if CONFIG_FILE not in card.weights_sha256:
        raise ValueError(
            f"card of {card.name!r} in {directory} lists no sha256 of {CONFIG_FILE!r}: refusing "
            "an unverifiable network configuration (export the entry again to pin it)"
        )
    _verify(directory, card.weights_sha256, "the card")
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    _check_config(card, _read_config(config_path), config_path)
    try:
        with safe_open(str(weights_path), "pt") as weights:  # reads the header only
            head = "segmentation_head.0.weight"
            shape = weights.get_slice(head).get_shape() if head in weights.keys() else None
    except SafetensorError as error:
        raise ValueError(f"cannot read weights {str(weights_path)!r}: {error}") from None
    if shape is not None and shape[0] != card.num_classes:
        # segmentation_models_pytorch would skip the head with a warning and report it missing
        raise ValueError(
            f"class count mismatch: the card says num_classes={card.num_classes} but the weights "
            f"in {str(weights_path)!r} have {shape[0]} output classes"
        )
    try:
        # huggingface_hub prints "Loading weights from local directory" on every load
        with contextlib.redirect_stdout(io.StringIO()):
            # encoder_weights=None: the entry's weights replace them, nothing is downloaded
            model = smp.from_pretrained(str(directory), encoder_weights=None).to(dtype)
    except RuntimeError as error:  # missing or unexpected keys
        detail = " ".join(str(error).split())[:300]
        raise ValueError(
            f"weights {str(weights_path)!r} do not fit the model of {str(config_path)!r}: {detail}"
        ) from None
    return SegmentationModel(model, card)
