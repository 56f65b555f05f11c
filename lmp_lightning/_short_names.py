"""Short names on the command line: the live registries' names as classes that jsonargparse
resolves, and the real classes put back before anything is built.

jsonargparse resolves a class path without a dot (``--model.loss lmp``, ``dataset: camvid`` in a
YAML file) among the subclasses of the parameter's type, by their ``__name__``. Each short name of
a registry (the losses' :data:`~lmp_lightning.losses.LOSSES`, the data sets'
:data:`~lmp_lightning.data.DATASETS`) is therefore an *alias*: a subclass of its registered class
named after it, held by a public module of aliases (``lmp_lightning.losses.names``,
``lmp_lightning.data.names``). :func:`sync` makes the aliases from the registries as they are when
it runs, so a loss or data set that a user's package registers before ``lmp-seg`` builds its
parser gets its short name too. Once the command line is parsed, :func:`canonicalise` puts the
registered class in place of every alias in the configuration: what is built is an instance of
the real class, and the saved ``config.yaml`` names it.

``lmp-seg`` calls :func:`sync` when it builds a parser and :func:`canonicalise` before it builds
the classes; both use public jsonargparse interfaces only.

Example:
    >>> from lmp_lightning.losses import LossMaxPooling, names
    >>> sync()
    >>> issubclass(names.lmp, LossMaxPooling), canonical_class(names.lmp(p=2.0)) is LossMaxPooling
    (True, True)
    >>> canonical_path("lmp_lightning.losses.names.lmp")
    'lmp_lightning.losses.lmp.LossMaxPooling'
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import Any

from jsonargparse import Namespace

__all__ = [
    "add_registry",
    "canonical_class",
    "canonical_path",
    "canonicalise",
    "sync",
]

_REGISTRIES: dict[str, Mapping[str, type]] = {}
"""Module of aliases -> the registry whose short names it holds."""

_ALIAS_OF = "short_name_of"
"""The class attribute of an alias that names its registered class."""


def add_registry(module: str, registry: Mapping[str, type]) -> None:
    """Makes ``module`` hold an alias for every short name of ``registry``, now and at every
    :func:`sync`.

    Args:
        module: a public module (no part of its path may start with ``_``: jsonargparse leaves
            private modules out), already imported.
        registry: short name -> registered class, read again at every :func:`sync`.
    """
    _REGISTRIES[module] = registry
    _sync_module(module, registry)


def sync() -> None:
    """Brings every module of aliases in line with its registry: an alias for each short name
    registered since (or registered again, to another class), none for a name no longer
    registered. Cheap and idempotent; ``lmp-seg`` calls it whenever it builds a parser."""
    for module, registry in _REGISTRIES.items():
        _sync_module(module, registry)


def _is_alias(value: Any) -> bool:
    return isinstance(value, type) and _ALIAS_OF in value.__dict__


def _sync_module(module_name: str, registry: Mapping[str, type]) -> None:
    module = sys.modules[module_name]
    namespace = vars(module)
    for name, alias in [(n, v) for n, v in namespace.items() if _is_alias(v)]:
        if registry.get(name) is alias.__dict__[_ALIAS_OF]:
            continue  # still the short name of the same class
        # jsonargparse skips local classes: a retired alias, which may live on among its
        # class's subclasses until it is collected, is never resolved again.
        alias.__qualname__ = f"{name}.<locals>.retired"
        delattr(module, name)
    for name, cls in registry.items():
        current = namespace.get(name)
        if (current is not None and not _is_alias(current)) or "." in name:
            continue  # never hide a name of the module itself; a dotted name is a class path
        if current is None:
            alias = type(
                name,
                (cls,),
                {
                    "__module__": module_name,
                    "__qualname__": name,
                    "__doc__": f"``{name}``: short name of :class:`{_path(cls)}`.\n\n"
                    + _arguments_section(cls),
                    _ALIAS_OF: cls,
                },
            )
            setattr(module, name, alias)


def _arguments_section(cls: type) -> str:
    """The ``Args:`` section of ``cls``'s docstring (jsonargparse's help shows an alias's
    arguments from its own docstring), or ``""``."""
    lines = (inspect.getdoc(cls) or "").splitlines()
    if "Args:" not in lines:
        return ""
    start = lines.index("Args:")
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    return "\n".join(lines[start:end]).rstrip() + "\n"


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def canonical_class(value: Any) -> type:
    """The registered class of ``value`` (a class or an instance): the class a short name's
    alias stands for, else ``value``'s own class.

    Example:
        >>> from lmp_lightning.losses import CrossEntropy
        >>> canonical_class(CrossEntropy()) is CrossEntropy
        True
    """
    cls = value if isinstance(value, type) else type(value)
    return cls.__dict__.get(_ALIAS_OF, cls)


def canonical_path(class_path: str) -> str:
    """The class path of the registered class when ``class_path`` names an alias (as
    jsonargparse resolves a short name), else ``class_path`` unchanged. A registered class
    that cannot be imported by its path (one defined inside a function) keeps its alias."""
    module, _, name = class_path.rpartition(".")
    if module not in _REGISTRIES or module not in sys.modules:
        return class_path
    alias = vars(sys.modules[module]).get(name)
    if not _is_alias(alias):
        return class_path
    real = canonical_class(alias)
    return class_path if "<locals>" in real.__qualname__ else _path(real)


def canonicalise(config: Any) -> None:
    """Puts the registered class path in place of every alias's in a parsed configuration (a
    jsonargparse ``Namespace``, dicts and lists of them), in place."""
    if isinstance(config, list):
        for item in config:
            canonicalise(item)
        return
    if isinstance(config, dict):
        items = config
    elif isinstance(config, Namespace):
        items = vars(config)
    else:
        return
    path = items.get("class_path")
    if isinstance(path, str):
        items["class_path"] = canonical_path(path)
    for value in items.values():
        canonicalise(value)
