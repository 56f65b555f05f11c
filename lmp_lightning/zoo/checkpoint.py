"""Zoo entries wherever a Lightning checkpoint is accepted: ``--ckpt_path zoo:NAME``.

The CLI takes the entry's network from :func:`network_arguments` and its weights through
``--model.init_weights zoo:NAME``, which loads and verifies them; :func:`zoo_checkpoint`, which
writes a Lightning checkpoint of the entry, serves ``lmp_lightning.cli`` until it does so.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any

import lightning
import torch

from lmp_lightning.zoo.api import info, load
from lmp_lightning.zoo.card import ModelCard
from lmp_lightning.zoo.index import cache_dir

__all__ = ["ZOO_PREFIX", "network_arguments", "zoo_checkpoint"]

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
        'mobilenet_v2'
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


def _hyper_parameters(card: Any) -> dict[str, Any]:
    """``SegmentationModule`` arguments of an entry: its training config's model section when
    the card has one, else what the card states; never the loss (chosen by the user)."""
    from lmp_lightning.module import SegmentationModule

    accepted = set(inspect.signature(SegmentationModule.__init__).parameters) - {"self", "loss"}
    model = dict(card.training_config.get("model", {})) if card.training_config else {}
    model.update(
        arch=card.architecture,
        encoder_name=card.encoder,
        encoder_weights=None,
        in_channels=card.in_channels,
        num_classes=card.num_classes,
        class_names=list(card.class_names),
        ignore_index=card.ignore_index,
    )
    return {k: v for k, v in model.items() if k in accepted}


def zoo_checkpoint(name_or_path: str) -> Path:
    """A Lightning checkpoint file of a verified zoo entry, written once into the zoo cache.

    Args:
        name_or_path: an entry name, an entry directory, or either behind ``zoo:``.

    Returns:
        The path of a checkpoint with the entry's weights and model hyper-parameters (no
        optimizer state), usable as ``--ckpt_path`` for validate, test and predict.

    Raises:
        KeyError, FileNotFoundError, ValueError, ConnectionError: as :func:`load`.
    """
    name = name_or_path.removeprefix(ZOO_PREFIX)
    entry = load(name)  # verifies the sha256 and the card against config and weights
    weights = "-".join(sorted(entry.card.weights_sha256.values()))
    key = hashlib.sha256(weights.encode()).hexdigest()[:16]  # new weights, new file
    path = cache_dir() / "checkpoints" / f"{Path(name).name}-{key}.ckpt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {f"model.{k}": v for k, v in entry.model.state_dict().items()}
        checkpoint = {
            "state_dict": state,
            "hyper_parameters": _hyper_parameters(entry.card),
            "pytorch-lightning_version": lightning.__version__,
            "epoch": 0,
            "global_step": 0,
            "zoo_entry": entry.card.name,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(checkpoint, tmp)
        tmp.replace(path)
    return path
