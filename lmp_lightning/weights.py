"""Network weights from a zoo entry or a Lightning checkpoint, loaded in one place.

:func:`load_network_weights` is what ``SegmentationModule(init_weights=...)`` and
``lmp-seg zoo export`` load a network's weights with; every checkpoint is read by
:func:`~lmp_lightning.checkpoints.load_checkpoint` (``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lmp_lightning.checkpoints import load_checkpoint

__all__ = ["load_network_weights", "network_weights"]


def network_weights(spec: str | Path) -> tuple[dict[str, Tensor], tuple[Any, Any, Any]]:
    """The network's state dict held by ``spec``, and the ``(arch, encoder_name, num_classes)``
    it was trained with (``None`` where the file does not say).

    Args:
        spec: ``zoo:NAME``, a zoo entry directory, or a ``.ckpt`` of ``lmp-seg fit`` (its
            ``model.`` weights; the loss's are not the network's).

    Raises:
        FileNotFoundError: no zoo entry or checkpoint at ``spec``.
    """
    text = str(spec)
    if text.startswith("zoo:") or Path(text).is_dir():
        from lmp_lightning.zoo.api import load

        entry = load(text.removeprefix("zoo:"))
        card = entry.card
        return entry.model.state_dict(), (card.architecture, card.encoder, card.num_classes)
    if not Path(text).is_file():
        raise FileNotFoundError(f"init_weights: no zoo entry or checkpoint at {text!r}")
    saved = load_checkpoint(text, what="init_weights")
    saved = saved if isinstance(saved, dict) else {}
    hp = saved.get("hyper_parameters", {})
    state = {
        k.removeprefix("model."): v
        for k, v in saved.get("state_dict", {}).items()
        if k.startswith("model.")
    }
    return state, (hp.get("arch"), hp.get("encoder_name"), hp.get("num_classes"))


def load_network_weights(
    network: nn.Module, spec: str | Path, arch: str, encoder_name: str, num_classes: int
) -> None:
    """Loads the weights of ``spec`` (see :func:`network_weights`) into ``network``, an
    ``arch`` / ``encoder_name`` network with ``num_classes`` classes.

    Raises:
        FileNotFoundError: no zoo entry or checkpoint at ``spec``.
        ValueError: the weights are of another network or class count (the message names
            both), or do not fit ``network``.
    """
    state, theirs = network_weights(spec)
    ours = (arch, encoder_name, num_classes)
    if None not in theirs and (str(theirs[0]).lower(), *theirs[1:]) != (arch.lower(), *ours[1:]):
        raise ValueError(
            f"init_weights {str(spec)!r} holds a {theirs[0]} / {theirs[1]} network with "
            f"{theirs[2]} classes, but this model is {arch} / {encoder_name} with {num_classes} "
            "classes: set --model.arch, --model.encoder_name and the data to match"
        )
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise ValueError(
            f"init_weights {str(spec)!r} do not fit this model (arch={arch!r}, "
            f"encoder_name={encoder_name!r}, num_classes={num_classes}): {detail}"
        ) from None
