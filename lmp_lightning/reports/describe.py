"""What a run's loss is, for results files and model cards."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

__all__ = ["describe_loss"]


def describe_loss(loss: nn.Module) -> dict[str, Any]:
    """The registered class path of ``loss`` (a short name's class: ``lmp`` is
    ``LossMaxPooling``) and its scalar arguments, read back from the attributes its
    constructor's arguments are stored in.

    Example:
        >>> from lmp_lightning.losses import LossMaxPooling
        >>> described = describe_loss(LossMaxPooling(p=2.0))
        >>> described["class_path"], described["init_args"]["p"]
        ('lmp_lightning.losses.lmp.LossMaxPooling', 2.0)
    """
    from lmp_lightning.losses.names import canonical_class

    cls = canonical_class(loss)
    init_args = {
        name: getattr(loss, name)
        for name in inspect.signature(type(loss).__init__).parameters
        if name != "self" and isinstance(getattr(loss, name, None), int | float | str | bool)
    }
    return {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": init_args}
