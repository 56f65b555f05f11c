"""The model zoo: verified entries (weights, configuration and card) found by name.

Example:
    >>> import lmp_lightning.zoo as zoo
    >>> isinstance(zoo.list_models(), list)
    True
"""

from lmp_lightning.zoo.api import info, list_models, load
from lmp_lightning.zoo.card import ModelCard, sha256_file
from lmp_lightning.zoo.export import export_checkpoint
from lmp_lightning.zoo.index import ZooEntry, read_index, resolve
from lmp_lightning.zoo.model import SegmentationModel, load_entry

__all__ = [
    "ModelCard",
    "SegmentationModel",
    "ZooEntry",
    "export_checkpoint",
    "info",
    "list_models",
    "load",
    "load_entry",
    "read_index",
    "resolve",
    "sha256_file",
]
