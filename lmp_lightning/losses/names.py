"""The losses' short names as classes, so that jsonargparse resolves them like class names.

``--model.loss lmp``, ``loss: lmp`` in a YAML file and ``loss: {class_path: lmp, init_args: {p:
2}}`` all name :class:`~lmp_lightning.losses.LossMaxPooling`: jsonargparse resolves a class path
without a dot among the subclasses of the parameter's type by their name, and each short name of
the registry (:data:`~lmp_lightning.losses.LOSSES`) is such a subclass here, generated from it. An
instance behaves as its loss (``isinstance(loss, LossMaxPooling)``); results files and model cards
name the loss's own class (:func:`canonical_class`).

Example:
    >>> from lmp_lightning.losses import LossMaxPooling
    >>> issubclass(lmp, LossMaxPooling), canonical_class(lmp(p=2.0)) is LossMaxPooling
    (True, True)
"""

from __future__ import annotations

from lmp_lightning.losses.base import LOSSES, SegmentationLoss

__all__ = ["canonical_class", *sorted(LOSSES)]


def canonical_class(loss: SegmentationLoss) -> type[SegmentationLoss]:
    """The registered loss class of ``loss`` (the class a short name stands for)."""
    return getattr(type(loss), "short_name_of", type(loss))


for _short, _cls in LOSSES.items():
    globals()[_short] = type(
        _short,
        (_cls,),
        {
            "__module__": __name__,
            "__doc__": f"``{_short}``: short name of :class:`{_cls.__module__}.{_cls.__name__}`.",
            "short_name_of": _cls,
        },
    )
