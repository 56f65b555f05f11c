"""The checks on a zoo entry's files: plain file and entry names, SHA-256 pins by file name,
and a strict reader of the zoo's JSON files (an index, a card, a network configuration).

:mod:`lmp_lightning.zoo.card` re-exports the names below.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["check_pins", "is_plain_name", "read_json"]

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_PLAIN_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, no '..'"


def is_plain_name(name: object) -> bool:
    """Whether ``name`` is a plain file or entry name: a letter or digit, then letters, digits,
    ``.``, ``_`` or ``-``, and no ``..`` (so no ``/``, ``\\``, absolute path or parent folder).

    Example:
        >>> is_plain_name("model.safetensors"), is_plain_name("../../etc/passwd")
        (True, False)
    """
    return isinstance(name, str) and bool(_PLAIN_NAME.fullmatch(name)) and ".." not in name


def check_pins(pins: object, where: str, field: str) -> dict[str, str]:
    """``pins`` if it maps plain file names (see :func:`is_plain_name`) to SHA-256 digests.

    Args:
        pins: the digests by file name (an index entry's ``sha256``, a card's
            ``weights_sha256``).
        where: what holds them, for the message (``"index.json: entry 'x'"``).
        field: their field, for the message.

    Raises:
        ValueError: not a mapping of strings to 64-digit hexadecimal digests, or a file name
            that is not plain (one line naming ``where``, ``field`` and the file).

    Example:
        >>> check_pins({"../card.json": "0" * 64}, "demo", "sha256")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: demo: sha256 pins '../card.json', not a plain file name (letters, ...
    """
    if not isinstance(pins, Mapping) or not all(
        isinstance(f, str) and isinstance(d, str) and _SHA256.fullmatch(d) for f, d in pins.items()
    ):
        raise ValueError(
            f"{where}: {field} must map file names to 64-digit hexadecimal digests, got {pins!r}"
        )
    for file in pins:
        if not is_plain_name(file):
            raise ValueError(
                f"{where}: {field} pins {file!r}, not a plain file name ({_PLAIN_RULE}): an "
                "entry's files lie in its directory"
            )
    return dict(pins)


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key named twice raises (``json`` keeps the last)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKeyError(key)
        data[key] = value
    return data


def read_json(path: str | Path) -> Any:
    """The data of a JSON file of the zoo (an index, a card, a network configuration).

    A key named twice in one object is refused (``json`` would keep the last silently, so two
    entries of one name would resolve to the second), and so is nesting too deep for the parser
    (``json`` raises ``RecursionError``).

    Raises:
        ValueError: the file is not UTF-8 JSON, names a key twice in one object, or is nested
            too deeply (one line naming the file).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "index.json"
        >>> _ = path.write_text('{"entries": {"a": 1, "a": 2}}')
        >>> read_json(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...index.json names 'a' twice in one JSON object (a duplicate key)
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique)
    except _DuplicateKeyError as error:
        raise ValueError(
            f"{path} names {error.key!r} twice in one JSON object (a duplicate key)"
        ) from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be read as JSON") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
