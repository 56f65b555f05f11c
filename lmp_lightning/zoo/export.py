"""Exporting a Lightning checkpoint of :class:`~lmp_lightning.SegmentationModule` to a zoo entry."""

from __future__ import annotations

import datetime
import inspect
import math
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from lmp_lightning import __version__
from lmp_lightning.checkpoints import load_checkpoint
from lmp_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lmp_lightning.reports.results import ClassResults
from lmp_lightning.weights import load_network_weights
from lmp_lightning.zoo.card import (
    CONFIG_FILE,
    WEIGHTS_DTYPES,
    WEIGHTS_FILE,
    ModelCard,
    sha256_file,
)

__all__ = ["export_checkpoint"]


def _read_training_config(config: str | Path | dict[str, Any] | None, ckpt: Path) -> dict[str, Any]:
    """The CLI's ``config.yaml``: given, or found next to the checkpoint's ``checkpoints/``."""
    if isinstance(config, dict):
        return config
    if config is None:
        found = (ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml")
        config = next((p for p in found if p.is_file()), None)
        if config is None:
            return {}
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {str(path)!r}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a training config (a YAML mapping)")
    return data


def _sampler(config: dict[str, Any]) -> dict[str, Any] | None:
    """The data module's crop sampler (``data.sampler``) with the callback that steers it
    under ``"callback"``; a run of before the data module owned the sampler: the callback."""
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    callback = next(
        (
            c
            for c in (callbacks if isinstance(callbacks, list) else [])
            if isinstance(c, dict) and "Sampling" in str(c.get("class_path", ""))
        ),
        None,
    )
    sampler = (config.get("data") or {}).get("sampler")
    if isinstance(sampler, dict):
        return {**sampler, **({"callback": callback} if callback else {})}
    return callback


def export_checkpoint(
    ckpt_path: str | Path,
    name: str,
    out_dir: str | Path,
    results: str | Path | ClassResults | None = None,
    license: str = "MIT",
    config: str | Path | dict[str, Any] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Writes a zoo entry from a Lightning checkpoint of ``SegmentationModule``.

    The module is rebuilt from the checkpoint's ``hyper_parameters`` (``encoder_weights=None``:
    nothing is downloaded), its ``state_dict`` loaded, and the model saved with
    segmentation_models_pytorch's ``save_pretrained`` (``config.json``, ``model.safetensors``);
    optimizer and scheduler states are dropped. ``card.json`` (with the SHA-256 of both files)
    and ``README.md`` (a Hugging Face Hub model card made from it) describe it; every file gets
    the permissions of a new file. :func:`~lmp_lightning.zoo.index.add_to_index` lists the
    entry in a zoo index.

    Args:
        ckpt_path: the ``.ckpt`` file.
        name: the entry's name in the zoo.
        out_dir: the entry directory to create (it must be absent or empty).
        results: per-class results (``results_val.json`` of ``lmp-seg validate``, or a
            :class:`~lmp_lightning.reports.results.ClassResults`) for the card's metrics.
        license: the license of the weights.
        config: the training configuration (the CLI's ``config.yaml``, its path, or a dict);
            by default the ``config.yaml`` of the checkpoint's run directory, if any. Source of
            the loss, sampler, data set, crop size and normalisation on the card.
        weights_dtype: the type the floating-point weights are stored in
            (:data:`~lmp_lightning.zoo.card.WEIGHTS_DTYPES`): ``"float16"`` halves the file;
            :func:`~lmp_lightning.zoo.load` runs them in float32. Measure the card's metrics
            from the exported entry (``zoo.load``), not from the checkpoint.

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: ``ckpt_path``, ``results`` or ``config`` does not exist.
        FileExistsError: ``out_dir`` exists and is not empty (the message names it).
        ValueError: the checkpoint is not one of ``SegmentationModule``, the results have
            other classes than the model, or ``weights_dtype`` is not one of the types.

    Example:
        >>> export_checkpoint("/nonexistent.ckpt", "demo", "/tmp/entry")
        Traceback (most recent call last):
        ...
        FileNotFoundError: checkpoint not found: '/nonexistent.ckpt'
    """
    from lmp_lightning.module import SegmentationModule  # heavy import, only when exporting

    ckpt_path, out_dir = Path(ckpt_path), Path(out_dir)
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(
            f"weights_dtype must be one of {list(WEIGHTS_DTYPES)}, got {weights_dtype!r}"
        )
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(ckpt_path)!r}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"refusing to write into non-empty {str(out_dir)!r}")
    if isinstance(results, (str, Path)):
        results = ClassResults.load(results)
    training_config = _read_training_config(config, ckpt_path)

    checkpoint = load_checkpoint(ckpt_path, mmap=True)  # the hyper-parameters; weights below
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= set(
        checkpoint
    ):
        raise ValueError(
            f"{ckpt_path} is not a Lightning checkpoint of SegmentationModule "
            "(needs 'state_dict' and 'hyper_parameters')"
        )
    accepted = set(inspect.signature(SegmentationModule.__init__).parameters) - {"self"}
    # LightningCLI adds its own keys (``_instantiator``, ``_class_path``): keep the arguments.
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}
    trained_from = hparams.get("encoder_weights")  # for the card: what training started from
    hparams["encoder_weights"] = None
    module = SegmentationModule(**hparams)
    load_network_weights(
        module.model,
        ckpt_path,
        module.hparams["arch"],
        module.hparams["encoder_name"],
        module.num_classes,
    )
    module.eval()

    if results is not None and list(results.class_names) != module.class_names:
        raise ValueError(
            f"results are for classes {results.class_names}, the checkpoint has "
            f"{module.class_names}"
        )
    data = training_config.get("data") or {}
    data = data.get("init_args", data) if isinstance(data, dict) else {}
    model_cfg = training_config.get("model") or {}
    model_cfg = model_cfg.get("init_args", model_cfg) if isinstance(model_cfg, dict) else {}
    loss = model_cfg.get("loss") or (results.config.get("loss") if results else None)
    metrics: dict[str, Any] = {}
    if results is not None:
        metrics = {
            "miou": results.miou,
            "iou": [None if math.isnan(v) else v for v in results.iou],
            "pixel_counts": list(results.pixel_counts),
        }

    out_dir.mkdir(parents=True, exist_ok=True)
    model: Any = module.model  # a segmentation_models_pytorch model (SMPHubMixin)
    model.to(getattr(torch, weights_dtype))  # floating-point tensors only; counters stay int
    model.save_pretrained(out_dir)
    scale = data.get("scale_range")
    card = ModelCard(
        name=name,
        architecture=str(hparams["arch"]).lower(),
        encoder=str(hparams["encoder_name"]),
        in_channels=int(hparams.get("in_channels", 3)),
        num_classes=module.num_classes,
        class_names=module.class_names,
        ignore_index=module.ignore_index,
        mean=[float(v) for v in data.get("mean", IMAGENET_MEAN)],
        std=[float(v) for v in data.get("std", IMAGENET_STD)],
        stride=module.stride,
        input_scale=_input_scale(data),
        encoder_weights=trained_from,
        crop_size=data.get("crop_size"),
        scale_range=[float(v) for v in scale] if scale is not None else None,
        dataset=_dataset_name(data),
        split=results.split if results is not None else None,
        loss=loss,
        sampler=_sampler(training_config),
        training_config=training_config,
        metrics=metrics,
        weights_sha256={f: sha256_file(out_dir / f) for f in (WEIGHTS_FILE, CONFIG_FILE)},
        license=license,
        date=datetime.date.today().isoformat(),
        version=__version__,
        source_checkpoint=ckpt_path.name,
        weights_dtype=weights_dtype,
    )
    card.save(out_dir)
    (out_dir / "README.md").write_text(card.readme())  # replaces smp's generic card
    _normal_permissions(out_dir)
    return out_dir


def _normal_permissions(directory: Path) -> None:
    """Gives every file of ``directory`` the permissions a new file gets (``0o666`` less the
    umask): safetensors writes through a private temporary file (``-rw-------``)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def _dataset_name(data: dict[str, Any]) -> str | None:
    """The short name of the training config's data set (the card's ``dataset``), ``None`` when
    it names none."""
    if data.get("dataset") is None:
        return None
    from lmp_lightning.data.registry import dataset_name

    return dataset_name(data["dataset"])


def _input_scale(data: dict[str, Any]) -> float:
    """The scale of the training data set's images: its ``scale`` argument, else its default.
    The data set is ``dataset: {class_path, init_args}`` (or a name) of the training config, or
    ``dataset: NAME`` with ``dataset_options`` in a config of lmp-lightning 0.1."""
    if data.get("dataset") is None:
        return 1.0
    from lmp_lightning.data.registry import dataset_spec

    return float(dataset_spec(data["dataset"], data.get("dataset_options")).input_scale)
