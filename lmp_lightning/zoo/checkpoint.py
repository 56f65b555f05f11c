"""Zoo entries wherever a Lightning checkpoint is accepted: ``--ckpt_path zoo:NAME``.

The CLI takes the entry's network from :func:`network_arguments` and its weights through
``--model.init_weights zoo:NAME``, which loads and verifies them: no checkpoint is written.
"""

from __future__ import annotations

from typing import Any

from lmp_lightning.zoo.api import info
from lmp_lightning.zoo.card import ModelCard

__all__ = ["ZOO_PREFIX", "network_arguments"]

ZOO_PREFIX = "zoo:"


def network_arguments(name_or_path: str) -> dict[str, Any]:
    """The ``SegmentationModule`` arguments that define a zoo entry's network.

    ``--ckpt_path zoo:NAME`` builds this network and loads the entry's weights into it with
    ``--model.init_weights zoo:NAME``, which verifies them.

    Args:
        name_or_path: an entry name, an entry directory, or either behind ``zoo:``.

    Returns:
        ``arch``, ``encoder_name`` and ``in_channels`` from the card, and ``output_stride`` and
        ``model_kwargs`` from its training configuration where it records them.

    Raises:
        KeyError, FileNotFoundError, ValueError, ConnectionError: as
        :func:`~lmp_lightning.zoo.api.info`.

    Example:
        >>> network_arguments("zoo:camvid-lmp")["encoder_name"]
        'tu-tf_efficientnet_lite0'
    """
    card = ModelCard.from_dict(info(name_or_path.removeprefix(ZOO_PREFIX)))
    model = card.training_config.get("model") or {}
    model = model.get("init_args", model) if isinstance(model, dict) else {}
    return {
        "arch": card.architecture,
        "encoder_name": card.encoder,
        "in_channels": card.in_channels,
        **{key: model[key] for key in ("output_stride", "model_kwargs") if key in model},
    }
