"""The zoo's public functions: list the entries, read a card, load a verified model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmp_lightning.zoo.card import ModelCard
from lmp_lightning.zoo.index import ZooEntry, read_index, resolve

if TYPE_CHECKING:
    import torch

    from lmp_lightning.zoo.model import SegmentationModel

__all__ = ["info", "list_models", "load"]


def list_models(index: str | Path | None = None) -> list[str]:
    """The names of the zoo's entries (from ``zoo/index.json``).

    The index is checked as :func:`~lmp_lightning.zoo.index.read_index` checks it: every entry
    pins ``card.json``, ``config.json`` and ``model.safetensors``, names are plain and given
    once, and local entries lie inside the index's folder.

    Args:
        index: another ``index.json`` (default: the repository's, or ``$LMP_ZOO_INDEX``).

    Returns:
        The entry names, in index order.

    Raises:
        FileNotFoundError: the index does not exist.
        ValueError: the index is malformed, breaks one of those rules, or is nested too deeply
            to parse (one line naming the file).

    Example:
        >>> "camvid-base-plus" in list_models()
        True
    """
    return list(read_index(index))


def _locate(name_or_path: str | Path, index: str | Path | None) -> tuple[Path, dict[str, str]]:
    """The entry's directory and the index's pinned digests (none for a plain directory)."""
    entries = read_index(index)
    entry: ZooEntry | None = entries.get(str(name_or_path))
    if entry is not None:
        return resolve(entry), entry.sha256
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path, {}
    raise KeyError(
        f"{str(name_or_path)!r} is neither a zoo entry nor an entry directory; "
        f"valid names are {sorted(entries)}"
    )


def info(name_or_path: str | Path, index: str | Path | None = None) -> dict[str, Any]:
    """The model card of an entry, with ``path``, its local directory.

    The card's fields are checked when it is read (see
    :class:`~lmp_lightning.zoo.card.ModelCard`): a ``std`` of 0 in float32 or a ``mean`` of
    booleans fails here, not at ``segment``.

    Args:
        name_or_path: an entry name of :func:`list_models` or an entry directory.
        index: another ``index.json``.

    Returns:
        The card's fields and ``path``.

    Raises:
        KeyError: neither a name in the index nor a directory (the message lists the names).
        FileNotFoundError: the entry has no ``card.json``.
        ValueError: a malformed index (see :func:`list_models`), or a card that is not valid
            JSON or has a field out of its range (one line naming the file and the field).
        ConnectionError: a remote entry is not cached and cannot be downloaded.

    Example:
        >>> info("no-such-model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        KeyError: "'no-such-model' is neither a zoo entry nor an entry directory; valid names ..."
    """
    directory, _ = _locate(name_or_path, index)
    return {**ModelCard.load(directory).to_dict(), "path": str(directory.resolve())}


def load(
    name_or_path: str | Path, index: str | Path | None = None, dtype: torch.dtype | None = None
) -> SegmentationModel:
    """A verified zoo model in eval mode; ``model.segment(image)`` labels an RGB image.

    Args:
        name_or_path: an entry name of :func:`list_models` or an entry directory.
        index: another ``index.json``.
        dtype: the floating-point type to run the network in (default ``torch.float32``, also
            for an entry whose weights are stored as float16; ``torch.bfloat16`` is faster on a
            CPU with bf16 instructions and may change a few labels).

    Returns:
        The model (see :class:`~lmp_lightning.zoo.model.SegmentationModel`).

    Raises:
        KeyError: neither a name in the index nor a directory (the message lists the names).
        FileNotFoundError: a file of the entry is missing (the message names it).
        ValueError: a malformed index (see :func:`list_models`), a digest mismatch, a card that
            does not pin ``config.json`` and the weights, has a field out of its range, or
            disagrees with ``config.json`` or the weights (see
            :func:`~lmp_lightning.zoo.model.load_entry`).
        ConnectionError: a remote entry is not cached and cannot be downloaded.

    Example:
        >>> load("/nonexistent/entry")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        KeyError: "'/nonexistent/entry' is neither a zoo entry nor an entry directory; ..."
    """
    import torch

    from lmp_lightning.zoo.model import load_entry  # PyTorch: only when a model is loaded

    directory, expected = _locate(name_or_path, index)
    return load_entry(directory, expected, dtype or torch.float32)
