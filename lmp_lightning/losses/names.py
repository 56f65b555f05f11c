"""The losses' short names as classes, so that jsonargparse resolves them like class names.

``--model.loss lmp``, ``loss: lmp`` in a YAML file and ``loss: {class_path: lmp, init_args: {p:
2}}`` all name :class:`~lmp_lightning.losses.LossMaxPooling`: jsonargparse resolves a class path
without a dot among the subclasses of the parameter's type by their name, and each short name of
the registry (:data:`~lmp_lightning.losses.LOSSES`) is such a subclass here, made from the
registry as it is when ``lmp-seg`` builds its parser (:mod:`lmp_lightning._short_names`), so a
loss registered by a user's package has one too. ``lmp-seg`` builds the registered class itself
(``type(module.loss) is LossMaxPooling``), and results files and model cards name it
(:func:`canonical_class`).

Example:
    >>> from lmp_lightning.losses import LossMaxPooling
    >>> issubclass(lmp, LossMaxPooling), canonical_class(lmp(p=2.0)) is LossMaxPooling
    (True, True)
"""

from lmp_lightning._short_names import add_registry, canonical_class
from lmp_lightning.losses.base import LOSSES

__all__ = ["canonical_class"]

add_registry(__name__, LOSSES)
