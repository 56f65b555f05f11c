"""The data sets' short names as classes, so that jsonargparse resolves them like class names.

``--data.dataset camvid``, ``dataset: camvid`` in a YAML file and ``dataset: {class_path: camvid,
init_args: {scale: 0.5}}`` all name :class:`lmp_lightning.data.sets.CamVid`: each short name of
the registry (:data:`~lmp_lightning.data.DATASETS`) is a subclass of its data set here, made from
the registry as it is when ``lmp-seg`` builds its parser (:mod:`lmp_lightning._short_names`), so
a data set registered by a user's package has one too. ``lmp-seg`` builds the registered class
itself, and the saved ``config.yaml`` names it.

Example:
    >>> from lmp_lightning.data.sets import CamVid
    >>> issubclass(camvid, CamVid), canonical_class(camvid(scale=0.5)) is CamVid
    (True, True)
"""

from lmp_lightning._short_names import add_registry, canonical_class
from lmp_lightning.data.registry import DATASETS

__all__ = ["canonical_class"]

add_registry(__name__, DATASETS)
