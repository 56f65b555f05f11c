"""The model zoo: verified entries (weights, configuration and card) found by name.

The names below are imported on first use: listing the entries and reading their cards
(:func:`list_models`, :func:`info`, :func:`read_index`, :class:`ModelCard`) does not load PyTorch.

Example:
    >>> import lmp_lightning.zoo as zoo
    >>> "camvid-lmp" in zoo.list_models()
    True
    >>> zoo.info("camvid-lmp")["num_classes"]
    11
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lmp_lightning._lazy import lazy_exports

_EXPORTS = {
    "info": "lmp_lightning.zoo.api",
    "list_models": "lmp_lightning.zoo.api",
    "load": "lmp_lightning.zoo.api",
    "ModelCard": "lmp_lightning.zoo.card",
    "sha256_file": "lmp_lightning.zoo.card",
    "export_checkpoint": "lmp_lightning.zoo.export",
    "ZooEntry": "lmp_lightning.zoo.index",
    "add_to_index": "lmp_lightning.zoo.index",
    "read_index": "lmp_lightning.zoo.index",
    "resolve": "lmp_lightning.zoo.index",
    "SegmentationModel": "lmp_lightning.zoo.model",
    "load_entry": "lmp_lightning.zoo.model",
}

__all__ = [
    "ModelCard",
    "SegmentationModel",
    "ZooEntry",
    "add_to_index",
    "export_checkpoint",
    "info",
    "list_models",
    "load",
    "load_entry",
    "read_index",
    "resolve",
    "sha256_file",
]

if TYPE_CHECKING:
    from lmp_lightning.zoo.api import info, list_models, load
    from lmp_lightning.zoo.card import ModelCard, sha256_file
    from lmp_lightning.zoo.export import export_checkpoint
    from lmp_lightning.zoo.index import ZooEntry, add_to_index, read_index, resolve
    from lmp_lightning.zoo.model import SegmentationModel, load_entry


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
