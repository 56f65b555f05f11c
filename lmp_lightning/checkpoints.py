"""Checkpoints as data: one reader that runs nothing from the file, and writes that never leave a
half-written file under a checkpoint's name.

Every file that ``lmp-lightning`` reads with ``torch.load`` (a Lightning checkpoint, encoder
weights, cached class statistics) goes through :func:`load_checkpoint`, which unpickles with
``weights_only=True``: tensors, containers and plain values only. A pickle that names any other
Python object (``os.system``, a class of some package) is refused before anything in it runs.
Our own checkpoints need nothing beyond that: their hyper-parameters are plain values.

:class:`AtomicCheckpointIO` is Lightning's ``TorchCheckpointIO`` with both ends made safe:
a checkpoint is written to a temporary file beside its final name, flushed to disk and renamed
into place, and it is read back through :func:`load_checkpoint`. ``lmp-seg`` uses it for every
command; in your own ``Trainer``, pass ``plugins=[AtomicCheckpointIO()]``.
"""

from __future__ import annotations

import errno
import glob
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from lmp_lightning.errors import InputError

__all__ = ["AtomicCheckpointIO", "load_checkpoint"]

_GLOBAL = re.compile(r"GLOBAL [\w.]+")


def load_checkpoint(
    path: str | Path, *, what: str = "checkpoint", mmap: bool = False, map_location: Any = "cpu"
) -> Any:
    """The content of a file written by ``torch.save``, read as data (``weights_only=True``).

    Args:
        path: the file.
        what: how messages name the file (``"--ckpt_path"``, ``"init_weights"``).
        mmap: map the tensors' storage instead of reading it (to read hyper-parameters only).
        map_location: as ``torch.load``'s.

    Returns:
        What was saved (its tensors on the CPU by default).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InputError: the file is not readable as a ``torch.save`` file, or its pickle names
            Python objects beyond tensors and plain data (refused before anything runs).

    Example:
        >>> import os, tempfile
        >>> bad = os.path.join(tempfile.mkdtemp(), "evil.ckpt")
        >>> torch.save({"run": os.system}, bad)
        >>> load_checkpoint(bad)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lmp_lightning.errors.InputError: checkpoint '...evil.ckpt' holds Python objects, ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {str(path)!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        found = _GLOBAL.search(str(error))  # the refused object, as torch names it
        if found is not None:
            raise InputError(
                f"{what} {str(path)!r} holds Python objects, not only tensors and plain data "
                f"({found.group(0)}): refused, nothing in it was run"
            ) from None
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else "no detail"
        raise InputError(
            f"{what} {str(path)!r} is not a readable checkpoint (UnpicklingError: {detail})"
        ) from None
    except Exception as error:
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else "no detail"
        raise InputError(
            f"{what} {str(path)!r} is not a readable checkpoint ({type(error).__name__}: {detail})"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO``, whose writes are atomic on the checkpoint's own
    filesystem and whose reads run nothing from the file.

    A checkpoint is written to a hidden temporary file in its final folder
    (``.NAME.PID.tmp``), flushed (``fsync``) and renamed over the final name: an interrupted or
    killed write, or a full disk, leaves the previous file of that name whole and no partial
    one under a checkpoint's name (the temporary file of a killed write is removed by the next
    write of that name). (Lightning's own writer
    stages the file in ``$TMPDIR`` and copies it over when that is another filesystem.) A
    failed write is an :class:`~lmp_lightning.errors.InputError` naming the folder. Reads go
    through :func:`load_checkpoint` (``weights_only=True``).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> io = AtomicCheckpointIO()
        >>> io.save_checkpoint({"step": 3}, folder / "last.ckpt")
        >>> io.load_checkpoint(folder / "last.ckpt"), sorted(p.name for p in folder.iterdir())
        ({'step': 3}, ['last.ckpt'])
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__}.save_checkpoint takes no storage_options, got "
                f"{storage_options!r}"
            )
        if "://" in str(path):  # a remote filesystem: its own transaction
            super().save_checkpoint(checkpoint, path)
            return
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
                stale.unlink(missing_ok=True)  # left by a killed write of the same name
            with open(tmp, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as raised:
            tmp.unlink(missing_ok=True)
            # torch's zip writer reports a failed write as a RuntimeError raised while the
            # OSError (a full disk) is handled: the OSError is the cause either way
            error = raised if isinstance(raised, OSError) else raised.__context__
            if not isinstance(error, OSError):
                raise
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                reason = "no space left on the device"
            else:
                reason = error.strerror or type(error).__name__
            kept = " (the previous one is kept)" if path.is_file() else ""
            raise InputError(
                f"cannot write checkpoint {path.name!r}{kept} into {str(path.parent)!r}: {reason}"
            ) from None
        except BaseException:  # an interrupt during the write: no partial file is left
            tmp.unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return load_checkpoint(path, what="--ckpt_path", map_location=map_location)


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
