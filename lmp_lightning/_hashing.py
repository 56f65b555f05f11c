"""File digests, shared by the zoo and the packaged encoder weights (a module of its own, so
that neither imports the other)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The hexadecimal SHA-256 digest of a file, read in chunks.

    Args:
        path: the file.
        chunk_size: bytes read at a time.

    Returns:
        64 lowercase hexadecimal digits.

    Raises:
        FileNotFoundError: no such file (the message names it).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "empty.bin"
        >>> _ = path.write_bytes(b"")
        >>> sha256_file(path)[:16]
        'e3b0c44298fc1c14'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {str(path)!r}")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
