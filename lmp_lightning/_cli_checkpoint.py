"""``--ckpt_path`` of ``lmp-seg``: the network from the checkpoint (or a zoo entry, whose card
also gives the data's classes, normalisation and input scale), every other value from the
command line and config files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from lmp_lightning.checkpoints import load_checkpoint
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.datamodule import predict_input_scale
from lmp_lightning.data.registry import dataset_name
from lmp_lightning.errors import InputError
from lmp_lightning.module import SegmentationModule
from lmp_lightning.zoo.api import info
from lmp_lightning.zoo.card import ModelCard
from lmp_lightning.zoo.checkpoint import ZOO_PREFIX, network_arguments

__all__ = ["NETWORK_KEYS", "info_line", "take_checkpoint"]


NETWORK_KEYS = ("arch", "encoder_name", "in_channels", "output_stride", "model_kwargs")
"""Model arguments that define the network: with ``--ckpt_path`` they come from the checkpoint."""


@rank_zero_only
def info_line(message: str) -> None:
    """Prints one line of information, on the first process only."""
    print(message, flush=True)


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 3) for v in values]


def _data_from_card(data: Any, entry: str, predict: bool = True) -> None:
    """Gives the data module of ``predict --ckpt_path zoo:NAME --data.predict_dir DIR`` the
    entry card's classes, normalisation and input scale, as ``segment()`` uses them (with
    ``predict`` false, for ``validate`` and ``test`` on a data set: the normalisation only);
    prints one line naming the values of the data module (flags, config files or a named data
    set) that differed from the card's.

    Args:
        data: the ``data`` namespace of the parsed configuration, changed in place.
        entry: ``zoo:NAME`` (an entry name or directory).
        predict: a ``predict_dir`` run (classes and input scale too).
    """
    card = ModelCard.from_dict(info(entry.removeprefix(ZOO_PREFIX)))
    defaults = inspect.signature(SegmentationDataModule.__init__).parameters

    named = dataset_name(data.get("dataset")) != dataset_name(defaults["dataset"].default)

    def given(key: str) -> bool:  # a named data set's values count as given, defaults too
        return named or data.get(key) != defaults[key].default

    differs = []
    names = data.get("predict_class_names")
    if names is not None and list(names) != list(card.class_names):
        differs.append(f"its {card.num_classes} classes instead of --data.predict_class_names")
    for key in ("mean", "std"):
        value, used = _rounded(data.get(key)), _rounded(getattr(card, key))
        if value != used and given(key):
            differs.append(f"{key} {used} instead of {value}")
    if not predict:
        data.mean, data.std = tuple(card.mean), tuple(card.std)
        if differs:
            info_line(f"{entry}: its card's normalisation is used: {', '.join(differs)}")
        return
    scale = predict_input_scale(
        data.get("dataset"), data.get("predict_rescale"), data.get("predict_scale")
    )
    scale_given = any(given(k) for k in ("predict_rescale", "predict_scale"))
    if scale != card.input_scale and scale_given:
        differs.append(f"input scale {float(card.input_scale)} instead of {scale}")
    data.predict_class_names = list(card.class_names)
    data.mean, data.std = tuple(card.mean), tuple(card.std)
    data.predict_scale = float(card.input_scale)
    if differs:
        info_line(f"predict uses the card of {entry}, not the data module: {', '.join(differs)}")


def _saved_hyper_parameters(path: Path) -> dict[str, Any]:
    # mmap: only the hyper-parameters are read here; Lightning loads the tensors later
    saved = load_checkpoint(path, what="--ckpt_path:", mmap=True)
    if not isinstance(saved, dict) or not {"state_dict", "pytorch-lightning_version"} <= set(saved):
        raise InputError(
            f"--ckpt_path: {str(path)!r} is not a checkpoint of a Lightning fit (it needs "
            "'state_dict' and 'pytorch-lightning_version'); to start from its weights, use "
            "--model.init_weights"
        )
    return saved.get("hyper_parameters", {})


def take_checkpoint(subcommand: str, config: Any) -> None:
    """Resolves ``zoo:NAME`` and takes the network from the checkpoint's hyper-parameters; a
    network argument given with another value than the checkpoint's is an error. ``predict
    --ckpt_path zoo:NAME --data.predict_dir DIR`` also takes the classes, the normalisation
    and the input scale from the entry's card (:func:`_data_from_card`)."""
    ckpt_path = config.get("ckpt_path")
    path = Path(ckpt_path)
    if str(ckpt_path).strip() == ZOO_PREFIX:
        raise InputError("--ckpt_path zoo: names no entry; `lmp-seg zoo list` lists them")
    if str(ckpt_path).startswith(ZOO_PREFIX):  # its weights: init_weights loads and verifies
        hparams = network_arguments(str(ckpt_path))
        if subcommand == "predict" and config.data.get("predict_dir") is not None:
            _data_from_card(config.data, str(ckpt_path))
        elif config.get("data") is not None:  # a data set: its normalisation is the card's
            _data_from_card(config.data, str(ckpt_path), predict=False)
        config.model.init_weights, config.model.encoder_weights = str(ckpt_path), None
        config.ckpt_path = None
    elif not path.is_file():
        if str(ckpt_path) in ("last", "hpc", "best", "registry"):
            return  # Lightning's own names
        raise InputError(f"--ckpt_path: checkpoint not found: {str(path)!r}")
    else:
        hparams = _saved_hyper_parameters(path)
    defaults = inspect.signature(SegmentationModule.__init__).parameters
    model = config.model
    for key in NETWORK_KEYS:
        if key not in hparams:
            continue
        value, default = model.get(key), defaults[key].default
        if value == hparams[key]:
            continue
        if value != default:
            raise InputError(
                f"--model.{key} is {value!r} but the checkpoint {str(path)!r} was trained "
                f"with {key}={hparams[key]!r}; drop the flag (the network comes from the "
                "checkpoint)"
            )
        model[key] = hparams[key]
