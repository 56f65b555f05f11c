"""Hugging Face Hub access of the model builder (encoder weights): the local cache first, the
network only when it answers. (The zoo asks ``snapshot_download(local_files_only=True)`` itself.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from huggingface_hub import constants

__all__ = ["hub_offline", "hub_reachable"]


@contextmanager
def hub_offline() -> Iterator[None]:
    """Hugging Face Hub downloads answer from the local cache only (fails at once if absent).

    Example:
        >>> with hub_offline():
        ...     constants.HF_HUB_OFFLINE
        True
    """
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection within ``timeout`` seconds."""
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True
