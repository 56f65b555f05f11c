"""Data that ships with the package: the zoo's in-repository entries and the recipes.

A wheel holds them as ``lmp_lightning/zoo_entries/`` and ``lmp_lightning/configs/`` (see
setup.py); a source checkout (and an editable install of it) keeps them at the repository's top
level, ``zoo/`` and ``configs/``. The functions here find whichever is there.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["config_name", "config_path", "configs_dir", "list_configs", "zoo_dir"]

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(packaged: str, in_repository: str) -> Path:
    inside = _PACKAGE / packaged
    return inside if inside.is_dir() else _PACKAGE.parent / in_repository


def zoo_dir() -> Path:
    """The folder of the zoo index and its in-repository entries.

    Example:
        >>> (zoo_dir() / "index.json").is_file()
        True
    """
    return _data_dir("zoo_entries", "zoo")


def configs_dir() -> Path:
    """The folder of the shipped recipes (``demo.yaml``, ``camvid/lmp.yaml``, ...).

    Example:
        >>> (configs_dir() / "demo.yaml").is_file()
        True
    """
    return _data_dir("configs", "configs")


def list_configs() -> list[str]:
    """The shipped recipes by the name ``--config`` accepts (``camvid/lmp``), sorted.

    Example:
        >>> "camvid/lmp" in list_configs() and "demo" in list_configs()
        True
    """
    root = configs_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def config_path(name: str) -> str:
    """What ``lmp-seg --config NAME`` reads: ``NAME`` itself when it is a file, otherwise the
    shipped recipe of that name (``camvid/lmp`` or ``camvid/lmp.yaml``), otherwise ``NAME``
    unchanged (so that the parser reports it missing).

    Example:
        >>> config_path("camvid/lmp").endswith("camvid/lmp.yaml")
        True
    """
    if Path(name).is_file():
        return name
    stem = name.removesuffix(".yaml").removeprefix("configs/")
    shipped = configs_dir() / f"{stem}.yaml"
    return str(shipped) if shipped.is_file() else name


def config_name(path: str | Path) -> str:
    """How a run started from the config file ``path`` is named: the shipped recipe's name
    (``camvid/lmp``), or the file's name without its suffix.

    Example:
        >>> config_name(config_path("camvid/lmp")), config_name("/home/me/my-run.yaml")
        ('camvid/lmp', 'my-run')
    """
    resolved = Path(path).resolve()
    root = configs_dir().resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).with_suffix("").as_posix()
    return resolved.stem
